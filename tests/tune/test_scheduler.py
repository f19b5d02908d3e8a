"""tune/scheduler.py: a resumed study's ASHA judges each trial as the uninterrupted study's would.
Real Ray Trials with their results on disk, real ASHA brackets, driven as Tune drives them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from distner.evaluation.metrics import MONITOR
from distner.tune.scheduler import ResumableASHA

# dev scores per epoch: a reference trial that ran out, a strong trial that ran out, and one still
# running (4 epochs done) when the study stopped. Rungs at epochs 2 and 6 (grace 2, factor 3).
HISTORY = {
    "ref": [0.65, 0.65, 0.72, 0.75, 0.77, 0.78, 0.79, 0.80, 0.81, 0.81],
    "strong": [0.70, 0.74, 0.78, 0.80, 0.82, 0.83, 0.83, 0.84, 0.84, 0.84],
    "running": [0.60, 0.70, 0.75, 0.79],
}


def _asha(cls: type) -> ASHAScheduler:
    return cls(time_attr="training_iteration", metric=MONITOR, mode="max", max_t=10, grace_period=2,
               reduction_factor=3)  # fmt: skip


def _trial(root: Path, trial_id: str, scores: list[float]) -> Trial:
    """A restored trial as Tune hands it over: its results in the study folder, its last one known."""
    storage = StorageContext(storage_path=str(root), experiment_dir_name="study", trial_dir_name=trial_id)
    trial = Trial("trainable", config={}, storage=storage, trial_id=trial_id, stub=True)
    rows = [{"training_iteration": i, MONITOR: s} for i, s in enumerate(scores, 1)]
    Path(trial.path).mkdir(parents=True, exist_ok=True)
    Path(trial.path, "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if rows:
        trial.run_metadata.last_result = rows[-1]
    return trial


def _report(asha: ASHAScheduler, trial: Trial, epoch: int, score: float) -> str:
    return asha.on_trial_result(None, trial, {"training_iteration": epoch, MONITOR: score})


@pytest.mark.parametrize("score", [0.60, 0.69, 0.72, 0.79, 0.85])
def test_a_resumed_asha_decides_as_the_uninterrupted_one(tmp_path, score):
    """The uninterrupted study's ASHA saw every epoch live; the resumed one was handed the restored
    trials (as Tune does on --resume), then the running trial's next epochs. A new trial's epoch-2
    score gets the same decision from both. Ray's own ASHA, restored with empty rungs, puts the
    running trial's epoch 5 into rung 2 alone and stops a new trial the live one keeps (0.72, 0.79)."""
    live, resumed, plain = _asha(ASHAScheduler), _asha(ResumableASHA), _asha(ASHAScheduler)
    trials = {name: _trial(tmp_path, name, scores) for name, scores in HISTORY.items()}
    for name, trial in trials.items():
        live.on_trial_add(None, trial)
        for epoch, s in enumerate(HISTORY[name], 1):
            _report(live, trial, epoch, s)
        resumed.on_trial_add(None, trial)
        plain.on_trial_add(None, trial)
    new = _trial(tmp_path, "new", [])
    decisions = []
    for asha in (live, resumed, plain):
        for epoch, s in ((5, 0.81), (6, 0.82)):  # the running trial goes on from its checkpoint
            assert _report(asha, trials["running"], epoch, s) == TrialScheduler.CONTINUE
        asha.on_trial_add(None, new)
        decisions.append(_report(asha, new, 2, score))
    assert decisions[0] == decisions[1], decisions
    kept = score >= np.nanpercentile([0.65, 0.74, 0.70], 100 * 2 / 3)  # rung 2 of the live study
    assert decisions[1] == (TrialScheduler.CONTINUE if kept else TrialScheduler.STOP)
    if kept and score < 0.81:
        assert decisions[2] == TrialScheduler.STOP  # what distner fixes


def test_a_trial_without_results_is_added_as_in_ray(tmp_path):
    asha = _asha(ResumableASHA)
    asha.on_trial_add(None, _trial(tmp_path, "fresh", []))
    assert TrialScheduler.STOP not in _report(asha, _trial(tmp_path, "fresh", []), 2, 0.0)
