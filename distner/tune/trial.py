"""Inside a trial (a Ray worker): the trainable a study runs, one `distner.train.fit` on the
sampled config with a callback that reports each epoch to Tune (tune/callback.py). The driver
(tune/driver.py) imports this module to hand Ray the trainable, so torch and Lightning load inside
the trial, not here: a study's driver never needs them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from distner.config import RunConfig
from distner.core.errors import TrainingDiverged
from distner.data.conll import Corpus
from distner.evaluation.metrics import MONITOR


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
    import torch
    from ray import tune

    from distner.train.fit import fit
    from distner.tune.callback import TuneReport

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
