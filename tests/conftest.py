from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from distner.core.signing import KEY_DIR_ENV
from distner.evaluation.evaluate import predict_file

from .helpers import (
    CONFIG,
    ENV,
    RAY_TMPDIR_ENV,
    SESSION_ENV,
    SPACE,
    TEST_CONLL,
    TINY,
    distner,
    has_real_data,
    ray_left,
    ray_pids,
    real_data_dir,
    retrain_args,
    study_options,
    tiny_config,
    write,
    write_corpus,
)

# Mark every process this test session starts (CLI subprocesses, Ray's raylet, GCS server and
# workers inherit the environment), so that `no_ray_left` counts only those, whatever else runs
# Ray on this machine. Ray's own folder is this session's too: its agents are told apart by it,
# and a bare ray.init() can never join another user's `ray start` cluster.
os.environ[SESSION_ENV] = uuid.uuid4().hex
os.environ[RAY_TMPDIR_ENV] = tempfile.mkdtemp(prefix="distner-tests-", dir="/tmp")  # short: socket paths
atexit.register(shutil.rmtree, os.environ[RAY_TMPDIR_ENV], ignore_errors=True)  # --collect-only too
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# The encoder's feature cache of this test session: never the user's, shared by every test (and
# process) that only reads features, so each split x spec is encoded once per session; tests of the
# cache itself give themselves a fresh one
os.environ["DISTNER_CACHE"] = ENV["DISTNER_CACHE"] = tempfile.mkdtemp(prefix="distner-tests-cache-")
atexit.register(shutil.rmtree, os.environ["DISTNER_CACHE"], ignore_errors=True)
# The key that signs a study's Ray state (core/signing.py): one for this test session, never the
# user's own in ~/.config; ENV (what the CLI subprocesses get) was copied before, so it is set there too
os.environ[KEY_DIR_ENV] = ENV[KEY_DIR_ENV] = tempfile.mkdtemp(prefix="distner-key-")
atexit.register(shutil.rmtree, os.environ[KEY_DIR_ENV], ignore_errors=True)

SYNTHETIC_SEED = 13


@pytest.fixture
def tiny_dir() -> Path:
    return TINY


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """A MultiCoNER-format data root ({en,hi,bn}/{train,dev,test}.conll.gz) from tests/synthetic.py."""
    return write_corpus(tmp_path_factory.mktemp("multiconer-synthetic"), seed=SYNTHETIC_SEED)


@pytest.fixture(scope="session")
def small_synthetic_data(tmp_path_factory) -> Path:
    """The synthetic corpus at a sixth of its size: for tests whose cost grows with the data (e5
    features of whole splits) and whose check does not."""
    sizes = {"train": 64, "dev": 24, "test": 24}
    return write_corpus(tmp_path_factory.mktemp("multiconer-small"), seed=SYNTHETIC_SEED, sizes=sizes)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real MultiCoNER II data, for the `slow` tests only: $DISTNER_TEST_DATA, else
    shared/data/multiconer2 beside this checkout."""
    root = real_data_dir()
    if not has_real_data(root):
        pytest.skip(f"real MultiCoNER II data not found under {root} (set DISTNER_TEST_DATA)")
    return root


@pytest.fixture(params=["synthetic", pytest.param("real", marks=pytest.mark.slow)])
def data_root(request) -> Path:
    """A test that means something on both: fast on the synthetic corpus, once (slow) on the real data."""
    return request.getfixturevalue(f"{request.param}_data")


@pytest.fixture
def no_ray_left():
    """Fails the test if Ray processes it started are still running afterwards."""
    before = ray_pids()
    yield
    assert not ray_left(before), "a test left Ray processes running"


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs, no dashboard) for the tests of a module that only need a running Ray:
    distner's driver joins it (init_ray leaves a running Ray alone) instead of starting and stopping
    its own for every study. Stopped after the module's last test, every process of it checked gone;
    the SIGTERM handler ray.init installs is put back."""
    import signal

    import ray

    from distner.core.compat import RAY_SYSTEM_CONFIG

    before, term = ray_pids(), signal.getsignal(signal.SIGTERM)
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _system_config=RAY_SYSTEM_CONFIG,
    )
    try:
        yield
    finally:
        ray.shutdown()
        signal.signal(signal.SIGTERM, term)
        assert not ray_left(before), "the module's Ray left processes running"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tiers (pyproject.toml): a test that starts Ray (`no_ray_left`, `local_ray`) is integration
    too; every test neither integration, heavy nor slow is unit."""
    for item in items:
        if "slow" in item.keywords:
            continue
        if {"no_ray_left", "local_ray"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        if "integration" not in item.keywords and "heavy" not in item.keywords:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One finished tiny run (tiny_config(): TINY_NET, one epoch, on the tiny fixture's en-fine), as
    `distner train` writes it (fit_into), trained in this process once per session. Read-only for
    every test that gets it: copy it (shutil.copytree) to change it."""
    from distner.data.conll import Corpus
    from distner.train.fit import fit_into

    out = tmp_path_factory.mktemp("finished") / "run"
    fit_into(tiny_config(), Corpus.load(TINY, "en", "fine"), out, accelerator="cpu", progress=False)
    return out


@pytest.fixture(scope="session")
def finished(finished_run: Path) -> tuple[Path, bytes]:
    """The session's finished run (read-only for the cases) and its predictions of the test fixture."""
    pred = finished_run.parent / "pred.conll"
    predict_file(finished_run, TEST_CONLL, pred)
    return finished_run, pred.read_bytes()


@pytest.fixture(scope="session")
def cell(tmp_path_factory) -> Path:
    """One finished retrain cell (cells/en-fine, one seed, by `distner retrain` in a subprocess),
    built once per session: read-only for every test that gets it (copy it to change it)."""
    root = tmp_path_factory.mktemp("retrain")
    write(root / "best.yaml", CONFIG)
    proc = distner(*retrain_args(root), cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    return root


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory) -> Path:
    """One finished two-trial study of en-fine on the tiny fixture (SPACE % 1, seed 3), run in this
    process once per session and signed by this session's key; returns the folder holding runs/
    (runs/en-fine) and space.yaml. Read-only for every test that gets it: a test that changes it
    works on a copy (shutil.copytree). tests/core/test_manifest.py and tests/tune/test_trust.py
    resume, damage and re-sign copies of it."""
    from distner.tune.driver import run_study

    root = tmp_path_factory.mktemp("study")
    write(root / "space.yaml", SPACE % 1)
    run_study(study_options(root))
    return root
