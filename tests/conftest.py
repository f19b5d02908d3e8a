from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = Path(__file__).resolve().parent / "fixtures" / "tiny"
REAL_DATA = (ROOT.parent / "shared" / "data" / "multiconer2").resolve()


@pytest.fixture
def tiny_dir() -> Path:
    return TINY


@pytest.fixture
def real_data() -> Path:
    root = Path(os.environ.get("DISTNER_TEST_DATA", REAL_DATA))
    if not (root / "hi" / "train.conll.gz").is_file():
        pytest.skip(f"real MultiCoNER II data not found under {root}")
    return root


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def ray_pids() -> set[int]:
    import subprocess

    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server|ray::"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


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
