"""When a tuning trial saves a resumable checkpoint: the one rule for Lightning trials
(callback.TuneReport) and packed trials (packed.run_packed_trial). Light on purpose (no torch): a
packed trial's process imports only this side of distner.

A checkpoint holds weights + Adam state: 156 MB at the reference's size on Hindi, ~0.8 s to save and
copy (docs/performance.md). By default ("auto", 0) one is saved once this many seconds of the trial
ran since its last one, and never sooner than 20x the last checkpoint's own cost: checkpoints then
take at most ~5% of a trial, and --resume repeats at most about a minute of it (or one epoch, where
an epoch takes longer). A 1 s GPU epoch is never worth a 0.8 s checkpoint.
"""

from __future__ import annotations

import time

AUTO_CHECKPOINT_S = 60.0
CHECKPOINT_COST_FACTOR = 20.0


def due_for_checkpoint(epoch: int, every: int, since_s: float, last_cost_s: float) -> bool:
    """Whether a trial checkpoints after `epoch` (1-based): every `every` epochs, or with every=0
    (auto) once `since_s` seconds ran since its last checkpoint, bounded below by 20x what the last
    one cost (`last_cost_s`, 0 before the first)."""
    if every:
        return epoch % every == 0
    return since_s >= max(AUTO_CHECKPOINT_S, CHECKPOINT_COST_FACTOR * last_cost_s)


class CheckpointClock:
    """A trial's checkpoint schedule: `due(epoch)` after each epoch; `saved(started)` once a
    checkpoint that began at `started` (time.perf_counter) is written."""

    def __init__(self, every: int = 0):
        self.every = every
        self._last = time.perf_counter()  # end of the last checkpoint (or the trial's start)
        self._cost = 0.0

    def due(self, epoch: int) -> bool:
        return due_for_checkpoint(epoch, self.every, time.perf_counter() - self._last, self._cost)

    def saved(self, started: float) -> None:
        self._last = time.perf_counter()
        self._cost = self._last - started
