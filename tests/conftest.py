from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helpers import REAL_DATA, TINY, ray_pids


@pytest.fixture
def tiny_dir() -> Path:
    return TINY


@pytest.fixture
def real_data() -> Path:
    root = Path(os.environ.get("DISTNER_TEST_DATA", REAL_DATA))
    if not (root / "hi" / "train.conll.gz").is_file():
        pytest.skip(f"real MultiCoNER II data not found under {root}")
    return root


@pytest.fixture
def no_ray_left():
    """Fails the test if Ray processes it started are still running afterwards."""
    import time

    before = ray_pids()
    yield
    deadline = time.time() + 20
    while ray_pids() - before and time.time() < deadline:
        time.sleep(0.5)
    assert not ray_pids() - before, "a test left Ray processes running"
