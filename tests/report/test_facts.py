"""The report's parameter importances: Optuna's PED-ANOVA, in an order that does not change
between processes (ties by name)."""

from __future__ import annotations

import optuna

from distner.report.facts import importances


def _study(db) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=f"sqlite:///{db}", direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        y = trial.suggest_float("y", 0.0, 1.0)
        # one-value parameters: no importance, so they tie
        for name in ("zeta", "alpha", "mid"):
            trial.suggest_categorical(name, ["only"])
        return x + 0.05 * y

    study.optimize(objective, n_trials=40)
    return study


def test_importances_are_ped_anova_largest_first_ties_by_name(tmp_path):
    study = _study(tmp_path / "optuna.db")
    got = importances(tmp_path / "optuna.db")
    assert got is not None
    # PED-ANOVA chosen explicitly (Optuna's default was fANOVA before 5.0)
    expected = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
    )
    assert got.keys() == expected.keys()
    assert all(abs(got[k] - expected[k]) < 1e-12 for k in got)
    assert list(got)[0] == "x"  # the parameter that drives the score comes first
    tied = [k for k in got if got[k] == got["alpha"]]
    assert tied == ["alpha", "mid", "zeta"]
    assert list(got.values()) == sorted(got.values(), reverse=True)
