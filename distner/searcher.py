"""The study's searcher: Ray Tune's OptunaSearch (TPE), with trials that ASHA stopped early told to
Optuna as pruned. Ray's class keeps its Optuna study and trials in private attributes; this module
is the one place distner touches them (the study's optuna.db is exported from `optuna_study`).
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch


class PruningAwareOptunaSearch(OptunaSearch):
    """A trial ASHA stopped before its last epoch is told as PRUNED (Optuna keeps its last epoch's
    score as its value, its rule for pruned trials), not as COMPLETE with that early, lower score:
    TPE then weighs it by how far it got, as with Optuna's own pruners. Ray's OptunaSearch tells
    every trial that reported a score as COMPLETE. A diverged trial stays COMPLETE with score 0."""

    def __init__(self, *args: Any, epochs: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._epochs = epochs  # the space's fixed epochs; a searched `epochs` is in the config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        result = result or {}
        ran = int(result.get("training_iteration", 0))
        epochs = int(result.get("config", {}).get("epochs", self._epochs))
        stopped = not error and not result.get("diverged") and 0 < ran < epochs
        study = optuna_study(self)
        if not stopped or study is None or trial_id in self._completed_trials:
            super().on_trial_complete(trial_id, result or None, error)
            return
        trial = self._ot_trials[trial_id]
        if self.metric in result:  # Tune hands a trial's last result only here, not to on_trial_result
            trial.report(result[self.metric], ran)
        study.tell(trial, state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)


def optuna_study(searcher: OptunaSearch) -> optuna.Study | None:
    """The Optuna study behind a Ray OptunaSearch (restored or live)."""
    return searcher._ot_study  # noqa: SLF001 - Ray keeps the study only here
