"""core/compat.py: each private part of Ray and Optuna that distner uses, against the installed
releases. A failure here names what a new release moved (pyproject.toml bounds both).
RAY_SYSTEM_CONFIG goes to every ray.init distner makes: each integration test that runs a study
starts Ray with it."""

from __future__ import annotations

import copy
import pickle

import optuna
import pyarrow.fs
import pytest
import yaml
from ray import tune
from ray.tune.experiment import Experiment
from ray.tune.search import SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from distner.core import compat

from ..helpers import ROOT


def _searcher() -> OptunaSearch:
    return OptunaSearch(space={"lr": tune.uniform(0.001, 0.1)}, metric="m", mode="max",
                        sampler=optuna.samplers.TPESampler(seed=0))  # fmt: skip


def test_optuna_searcher_internals() -> None:
    searcher = _searcher()
    searcher.suggest("a")
    assert isinstance(compat.optuna_study(searcher), optuna.Study)
    trial = compat.optuna_trial(searcher, "a")
    assert isinstance(trial, optuna.Trial) and trial.number == 0
    told = compat.completed_trials(searcher)
    searcher.on_trial_complete("a", {"m": 0.5})
    assert told == {"a"}  # the live set, updated by Ray's searcher itself


def test_search_generator_internals(tmp_path) -> None:
    search = SearchGenerator(_searcher())
    assert compat.search_experiment(search) is None
    exp = Experiment("e", run=lambda config: None, storage_path=str(tmp_path), num_samples=3)
    search.add_configurations([exp])
    assert compat.search_experiment(search) is exp and search.total_samples == 3
    compat.set_trial_total(search, 5)
    compat.set_trial_total(search, 4)  # never lowered
    assert search.total_samples == 5
    state = search.get_state()  # what a resume restores: the count, the experiment, its storage
    assert state["total_samples"] == 5 and state["experiment"].spec["storage"] is exp.storage


def test_storage_filesystem(tmp_path) -> None:
    fs, path = compat.storage_filesystem(str(tmp_path))
    assert isinstance(fs, pyarrow.fs.LocalFileSystem) and path == str(tmp_path)


def test_cluster_config_check() -> None:
    good = yaml.safe_load((ROOT / "cluster" / "aws.yaml").read_text())
    compat.check_cluster_config(copy.deepcopy(good))
    with pytest.raises(Exception, match="max_worker"):
        compat.check_cluster_config({**copy.deepcopy(good), "max_worker": 2})


def test_a_local_study_is_restorable_exactly_when_ray_says_so(tmp_path) -> None:
    from ray.tune.impl.tuner_internal import _TUNER_PKL

    assert compat.TUNER_STATE == _TUNER_PKL
    study = tmp_path / "study"
    state = pickle.dumps({"state": list(range(100))})
    for make in (lambda: None, study.mkdir, lambda: (study / _TUNER_PKL).write_bytes(state)):
        make()
        assert compat.can_restore(str(study), remote=False) == tune.Tuner.can_restore(str(study))
    assert compat.can_restore(str(study), remote=False)


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[: len(b) // 2], lambda b: b"", lambda b: b"not a pickle"],
    ids=["truncated", "empty", "not-a-pickle"],
)
def test_a_damaged_local_state_is_not_restorable(tmp_path, damage) -> None:
    """Ray would take it (its file exists), then fail deep inside its restore: a traceback."""
    (tmp_path / compat.TUNER_STATE).write_bytes(damage(pickle.dumps({"state": list(range(100))})))
    assert tune.Tuner.can_restore(str(tmp_path)) and not compat.can_restore(str(tmp_path), remote=False)


def test_trial_results_and_a_restored_tuners_scheduler(tmp_path) -> None:
    """A Tune trial's results, read where the study keeps them (a line cut by a kill ends them);
    the scheduler a Tuner holds, made distner's ASHA in place (its settings kept)."""
    import json

    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import ASHAScheduler

    from distner.tune.scheduler import ResumableASHA

    storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="s", trial_dir_name="t")
    trial = Trial("trainable", config={}, storage=storage, trial_id="t", stub=True)
    assert compat.trial_results(trial) == []
    (tmp_path / "s" / "t").mkdir(parents=True)
    (tmp_path / "s" / "t" / "result.json").write_text(json.dumps({"training_iteration": 1}) + '\n{"tra')
    assert compat.trial_results(trial) == [{"training_iteration": 1}]

    asha = ASHAScheduler(metric="m", mode="max", max_t=9, grace_period=2, reduction_factor=3)
    tuner = tune.Tuner(lambda config: None, tune_config=tune.TuneConfig(scheduler=asha))
    before = copy.deepcopy(asha.__dict__)
    compat.resume_scheduler_as(tuner, ResumableASHA)
    assert type(asha) is ResumableASHA and asha.__dict__.keys() == before.keys()
    assert [m for m, _ in asha._brackets[0]._rungs] == [m for m, _ in before["_brackets"][0]._rungs]
