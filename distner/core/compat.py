"""Every private part of Ray and Optuna that distner relies on, one function each, each with a
test in tests/test_compat.py: when a release moves one, that test names it. pyproject.toml bounds
Ray and Optuna to the minor releases tested. Nothing else in distner reaches into either library's
private names (subclasses call their parent's methods, not its attributes, except through here).
"""

from __future__ import annotations

import os
import pickletools
from typing import Any

# ray.init's `_system_config` (private): Ray starts workers at niceness 15 by default, so trials
# starve beside any other job; a study distner starts itself runs them at its own priority
RAY_SYSTEM_CONFIG = {"worker_niceness": 0}


def is_ray_exit_handler(handler: Any) -> bool:
    """Whether a signal handler is the one ray.init installs for SIGTERM in the driver (it exits at
    once) and leaves in place after ray.shutdown()."""
    return callable(handler) and getattr(handler, "__module__", "").startswith("ray.")


def optuna_study(searcher: Any) -> Any:
    """The optuna.Study behind a Ray OptunaSearch (live or restored): Ray keeps it only here."""
    return searcher._ot_study


def optuna_trial(searcher: Any, trial_id: str) -> Any:
    """The optuna.Trial a Ray OptunaSearch asked for Tune's trial `trial_id`."""
    return searcher._ot_trials[trial_id]


def completed_trials(searcher: Any) -> set[str]:
    """Tune trial ids a Ray OptunaSearch has already told Optuna about (a set it updates)."""
    return searcher._completed_trials


def set_trial_total(search: Any, total: int) -> None:
    """Raise the count of trials a Ray SearchGenerator creates (restored from its saved state)."""
    search._total_samples = max(search._total_samples, total)


def search_experiment(search: Any) -> Any:
    """The Experiment a Ray SearchGenerator makes new trials from (None before it is set up)."""
    return search._experiment


def trial_results(trial: Any) -> list[dict[str, Any]]:
    """Every result a Ray Tune trial reported, in order, from the `result.json` the study keeps
    (local or in a bucket); a line cut short by a kill ends the list."""
    import json

    from ray.air.constants import EXPR_RESULT_FILE

    try:
        with trial.storage.storage_filesystem.open_input_stream(f"{trial.path}/{EXPR_RESULT_FILE}") as f:
            text = f.readall().decode()
    except OSError:  # FileNotFoundError locally, OSError from some buckets: nothing reported yet
        return []
    results = []
    for line in text.splitlines():
        try:
            results.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return results


def resume_scheduler_as(tuner: Any, cls: type) -> None:
    """Make a restored Tuner's scheduler an instance of `cls`, a subclass of its class with no state
    of its own (a study pickled before distner had `cls`). Ray client mode keeps the Tuner in the
    cluster, out of reach: its scheduler stays as pickled."""
    local = tuner._local_tuner
    if local is None:
        return
    scheduler = local._tune_config.scheduler
    if isinstance(scheduler, cls.__bases__) and not isinstance(scheduler, cls):
        scheduler.__class__ = cls


def storage_filesystem(storage_path: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path on it) for a Ray storage path, local or a bucket URI."""
    from ray.train._internal.storage import get_fs_and_path

    return get_fs_and_path(storage_path, None)


# Ray Tune's saved state of an experiment (ray.tune.impl.tuner_internal._TUNER_PKL), by which
# `Tuner.can_restore` knows a restorable study: read as a file name, so that a local study's claim
# is checked before Ray is imported
TUNER_STATE = "tuner.pkl"


def can_restore(path: str, remote: bool) -> bool:
    """`ray.tune.Tuner.can_restore(path)`: a local folder by its file, without importing Ray; and,
    unlike Ray, only when that file is a whole pickle (a truncated one fails deep in Ray's restore)."""
    if not remote:
        return _whole_pickle(os.path.join(path, TUNER_STATE))
    from ray import tune

    return bool(tune.Tuner.can_restore(path))


def _whole_pickle(path: str) -> bool:
    """Whether a file is a pickle that ends where a pickle ends: its opcodes are only read
    (pickletools runs none of them), up to the STOP that closes it."""
    try:
        with open(path, "rb") as f:
            for _ in pickletools.genops(f):
                pass
    except Exception:  # OSError, or a damaged stream: ValueError, EOFError, struct.error, ...
        return False
    return True


def check_cluster_config(config: dict[str, Any]) -> None:
    """What `ray up` checks of a cluster launcher config: the schema and the provider's rules
    (raises jsonschema.ValidationError, NotImplementedError, click.ClickException, ValueError...).
    `prepare_config` fills in defaults, in place: pass a copy."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))
