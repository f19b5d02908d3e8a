"""The study's searcher: Ray Tune's OptunaSearch (TPE), with trials that ASHA stopped early told to
Optuna as pruned, inside a search algorithm whose trial count a resume may raise. Ray's classes keep
the Optuna study, its trials and the trial count in private attributes, reached through core/compat.py
(the study's optuna.db is exported from `optuna_study`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import ConcurrencyLimiter, SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from distner.core import compat

# what a resumed study is to reach and where it is now (`resumed_as`); read when Ray restores it
_RESUME: ContextVar[tuple[int, str, str] | None] = ContextVar("distner_resume", default=None)


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
        told = compat.completed_trials(self)
        if not stopped or study is None or trial_id in told:
            super().on_trial_complete(trial_id, result or None, error)
            return
        trial = compat.optuna_trial(self, trial_id)
        if self.metric in result:  # Tune hands a trial's last result only here, not to on_trial_result
            trial.report(result[self.metric], ran)
        study.tell(trial, state=TrialState.PRUNED)
        told.add(trial_id)


def optuna_study(searcher: OptunaSearch) -> optuna.Study | None:
    """The Optuna study behind a Ray OptunaSearch (restored or live)."""
    study: optuna.Study | None = compat.optuna_study(searcher)
    return study


class StudySearch(SearchGenerator):
    """Ray's own wrapping of a searcher (SearchGenerator over a ConcurrencyLimiter), with two fixes
    to what a resume restores from the saved state:
    - the trial count may be raised: Ray restores the one the study started with, and
      `Tuner.restore` takes no new one;
    - trials created after the resume go to the study's folder as it is now: Ray restores the
      storage path the study started in, so a moved or copied study wrote its new trials into the
      old place (Ray updates the restored trials' paths, not the searcher's).
    Pickled into the study's tuner.pkl, so only studies started with it have them."""

    def __init__(self, searcher: OptunaSearch, max_concurrent: int | None):
        super().__init__(ConcurrencyLimiter(searcher, max_concurrent) if max_concurrent else searcher)

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        resume, experiment = _RESUME.get(), compat.search_experiment(self)
        if resume is None or experiment is None:
            return
        total, storage_path, name = resume
        compat.set_trial_total(self, total)
        storage = copy.copy(experiment.storage)  # as TuneController._restore_trials does
        storage.storage_filesystem, storage.storage_fs_path = compat.storage_filesystem(storage_path)
        storage.experiment_dir_name = name
        experiment.storage = experiment.spec["storage"] = storage  # new trials are made from spec


@contextlib.contextmanager
def resumed_as(total: int, storage_path: str, name: str) -> Iterator[None]:
    """Within: a StudySearch that Ray restores creates trials until there are `total`, in
    `storage_path`/`name` (the study's folder now)."""
    token = _RESUME.set((total, storage_path, name))
    try:
        yield
    finally:
        _RESUME.reset(token)
