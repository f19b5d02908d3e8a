"""distner's searcher (Ray's OptunaSearch with real Optuna, driven as Tune drives it): a trial
ASHA stopped is told to Optuna as pruned, valued at its last epoch."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState
from ray import tune

from distner.evaluation.metrics import MONITOR
from distner.tune.searcher import PruningAwareOptunaSearch, optuna_study


def test_stopped_trials_are_pruned_completed_ones_complete():
    searcher = PruningAwareOptunaSearch(
        space={"lr": tune.uniform(1e-3, 1e-1), "epochs": tune.choice([2, 3])},
        metric=MONITOR,
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=0),
        epochs=3,
    )
    configs = {t: searcher.suggest(t) for t in ("stopped", "done", "diverged", "short", "failed")}

    def epochs(trial: str, scores: list[float], **last: float) -> None:
        for i, f1 in enumerate(scores[:-1], 1):
            searcher.on_trial_result(trial, {MONITOR: f1, "training_iteration": i})
        final = {MONITOR: scores[-1], "training_iteration": len(scores), "config": configs[trial], **last}
        searcher.on_trial_complete(trial, final)

    epochs("stopped", [0.2])  # ASHA stopped it after epoch 1 of its 3 or 2
    epochs("done", [0.3, 0.5, 0.6][: configs["done"]["epochs"]])
    epochs("diverged", [0.0], diverged=1.0)
    configs["short"] = {**configs["short"], "epochs": 2}  # a searched `epochs` is the trial's own
    epochs("short", [0.4, 0.45])
    searcher.on_trial_complete("failed", None, error=True)

    study = optuna_study(searcher)
    assert study is not None
    got = {t.number: (t.state, t.value) for t in study.trials}
    assert got == {
        0: (TrialState.PRUNED, 0.2),
        1: (TrialState.COMPLETE, 0.6 if configs["done"]["epochs"] == 3 else 0.5),
        2: (TrialState.COMPLETE, 0.0),  # a diverged trial is a result (score 0), not a stop
        3: (TrialState.COMPLETE, 0.45),
        4: (TrialState.FAIL, None),
    }
