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


def test_a_choice_of_a_number_and_auto_goes_through_optuna(tmp_path):
    """`encoder_train_layers: {choice: [0, auto]}` as the driver hands it to Ray and Optuna (a
    categorical of an int and a string), start points included: every trial's config resolves."""
    from distner.config import RunConfig
    from distner.spaces import load_space
    from distner.tune.driver import _ray_domain

    path = tmp_path / "s.yaml"
    path.write_text(
        "encoder_features: e5\nembedding_dim: 384\nencoder_layers: {choice: [last4, 3-5]}\n"
        "encoder_train_layers: {choice: [0, auto]}\n"
    )
    space = load_space(path)
    start = {"encoder_layers": "3-5", "encoder_train_layers": "auto"}
    searcher = PruningAwareOptunaSearch(
        space={p.name: _ray_domain(p) for p in space.params},
        points_to_evaluate=[space.baseline_point(), start],
        metric=MONITOR,
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=0),
        epochs=10,
    )
    configs = [searcher.suggest(str(i)) for i in range(12)]
    assert configs[:2] == [{"encoder_layers": "last4", "encoder_train_layers": 0}, start]
    assert {c["encoder_train_layers"] for c in configs} == {0, "auto"}
    for i, c in enumerate(configs):
        cfg = RunConfig.from_flat({**space.base(), **c})
        auto = {"last4": 4, "3-5": 10}[c["encoder_layers"]]
        assert cfg.model.encoder_train_layers == (auto if c["encoder_train_layers"] == "auto" else 0)
        searcher.on_trial_complete(str(i), {MONITOR: 0.1 * i, "training_iteration": 10, "config": c})
    study = optuna_study(searcher)
    assert study is not None and len(study.trials) == 12
