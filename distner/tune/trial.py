"""Inside a trial (a Ray worker): the trainable a study runs, one `distner.training.fit` on the
sampled config with a callback that reports each epoch to Tune (and a resumable checkpoint when the
trial's `CheckpointClock` says so). The driver (tune/driver.py) imports it only when a study starts.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from distner.config import RunConfig
from distner.core.errors import TrainingDiverged
from distner.data.conll import Corpus
from distner.evaluation.metrics import MONITOR
from distner.train.checkpoints import CheckpointClock
from distner.train.fit import fit


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


def run_trial(
    params: dict[str, Any],
    *,
    corpus: Corpus,
    base: dict[str, Any],
    accelerator: str,
    threads: int,
    checkpoint_every: int = 0,
) -> None:
    """The trainable: one `fit` on the sampled config, in the trial's own working directory."""
    import ray
    from ray import tune

    torch.set_num_threads(max(1, threads))
    cfg = RunConfig.from_flat({**base, **params})
    ckpt_path = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # resumed: continue after the last reported epoch
        with checkpoint.as_directory() as d:
            ckpt_path = str(Path.cwd() / "resume.ckpt")
            shutil.copy(Path(d) / "last.ckpt", ckpt_path)
    node = ray.get_runtime_context().get_node_id()
    try:
        fit(
            cfg,
            corpus,
            Path.cwd(),
            accelerator=accelerator,
            callbacks=[TuneReport(node, checkpoint_every)],
            ckpt_path=ckpt_path,
            progress=False,
            evaluate_test=False,
        )
    except TrainingDiverged:
        # A diverged trial would diverge again if retried: end it with a score of 0 instead.
        tune.report({MONITOR: 0.0, "diverged": 1.0, "node_id": node})
