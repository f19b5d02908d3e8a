"""Studies on machines of other shapes, on the 2-core machine: a local Ray started with declared
resources (16 or 64 CPUs, 8 GPUs where the code path only counts them) runs real studies, packer
sizing and resource checks as a big workstation or a GPU node would. Trials stay on CPUs
(--gpus-per-trial 0): the declared GPUs are counted, never used."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from distner.core.compat import RAY_SYSTEM_CONFIG
from distner.core.errors import DistnerError
from distner.options import TuneOptions
from distner.tune.driver import _check_resources, _cpu_packers, _gpu_count, _slots, run_study

from .helpers import SPACE, ray_left, ray_pids, write

pytestmark = pytest.mark.integration  # real Ray

SHAPES = {"16 CPUs, 8 GPUs": (16, 8), "64 CPUs": (64, 0)}


@pytest.fixture(scope="module", params=list(SHAPES))
def shape(request, tmp_path_factory):
    """A local Ray declaring the shape's CPUs and GPUs; stopped (and checked gone) after the module."""
    import ray

    cpus, gpus = SHAPES[request.param]
    before = ray_pids()
    ray.init(
        address="local",
        num_cpus=cpus,
        num_gpus=gpus,
        include_dashboard=False,
        object_store_memory=256 * 1024**2,
        log_to_driver=False,
        _system_config=RAY_SYSTEM_CONFIG,
    )
    try:
        yield cpus, gpus, tmp_path_factory.mktemp(f"shape-{cpus}")
    finally:
        ray.shutdown()
        assert not ray_left(before), "the declared-shape Ray left processes running"


def _study(tmp: Path, data: Path, name: str, **opts) -> tuple[object, list[dict]]:
    space = write(tmp / "space.yaml", SPACE % 1)
    result = run_study(
        TuneOptions(
            lang="hindi",
            space=str(space),
            storage=str(tmp / "runs"),
            best_dir=str(tmp / "best"),
            data_dir=str(data),
            name=name,
            verbose=0,
            seed=3,
            gpus_per_trial=0,  # declared GPUs are not there to train on
            **opts,
        )
    )
    rows = list(csv.DictReader(open(result.results_dir / "trials.csv")))
    return result, rows


def _finished(result, rows: list[dict], trials: int) -> None:
    """A study that ended whole: every trial in trials.csv, a summary and a best config."""
    assert len(rows) == trials
    summary = json.loads((result.results_dir / "summary.json").read_text())
    assert summary["trials"] == trials and summary["not_run"] == 0
    assert result.best_config_path.is_file()


def test_resources_are_counted_from_the_cluster(shape):
    cpus, gpus, _ = shape
    assert _cpu_packers(1) == cpus
    assert _cpu_packers(cpus / 2) == 2
    assert _gpu_count() == max(1, gpus)  # a cluster still scaling up: one packer waits for its GPU
    assert _slots(1, 0) == cpus
    if gpus:
        assert _slots(1, 0.25) == min(cpus, 4 * gpus)  # 16 CPUs bound 32 quarter-GPU slots
        assert _slots(1, 1) == gpus
    _check_resources(cpus, gpus, local=True)  # a node holds exactly that: fine
    with pytest.raises(DistnerError, match=f"largest node has {cpus} CPUs"):
        _check_resources(cpus + 1, 0, local=True)
    if gpus:
        with pytest.raises(DistnerError, match="--gpus-per-trial 9"):
            _check_resources(1, gpus + 1, local=True)


@pytest.mark.parametrize("limit", [1, 1000])
def test_max_concurrent_below_and_above_the_slots(shape, synthetic_data, limit):
    """Two trials, one or both at a time, on a machine of 16 or 64 CPU slots: fewer trials than
    slots (or packers, below) is an ordinary study that ends whole, not an interrupted one."""
    _, _, tmp = shape
    result, rows = _study(tmp, synthetic_data, f"limit-{limit}", num_samples=2, max_concurrent=limit)
    _finished(result, rows, 2)


def test_packed_trials_on_fewer_packers_than_trials_and_more(shape, synthetic_data):
    """Two packers of half the machine each, trials packed two to a packer: one trial leaves a
    packer idle, and the study still ends whole."""
    cpus, _, tmp = shape
    result, rows = _study(tmp, synthetic_data, "packed", num_samples=1, pack=2, cpus_per_trial=cpus / 2)
    _finished(result, rows, 1)
