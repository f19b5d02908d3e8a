"""The Lightning callback of a trial (tune/trial.py): after each epoch, validation included, it
reports the epoch's metrics to Tune, with a resumable checkpoint when the trial's `CheckpointClock`
says so. Loaded inside the trial only (it imports Lightning).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from distner.train.checkpoints import CheckpointClock


class TuneReport(pl.Callback):
    """After each epoch (validation included) report metrics to Tune; a resumable checkpoint goes
    with the report when the trial's `CheckpointClock` says so."""

    def __init__(self, node_id: str, checkpoint_every: int = 0):
        self.node_id, self.clock = node_id, CheckpointClock(checkpoint_every)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        from ray import tune

        epoch = trainer.current_epoch + 1
        metrics: dict[str, Any] = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics.update(epoch=epoch, node_id=self.node_id)
        if not self.clock.due(epoch):
            tune.report(metrics)
            return
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            trainer.save_checkpoint(Path(d) / "last.ckpt")
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        self.clock.saved(start)
