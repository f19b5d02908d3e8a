"""A full disk in every writer (train, predict, evaluate, retrain, report): one line naming the path,
exit 2, no traceback, every file that was there unchanged and nothing half-written left.

The disk fills through RLIMIT_FSIZE, set in the child only: every write past the limit fails with
EFBIG (Python ignores SIGXFSZ), as a write to a full disk fails with ENOSPC; distner handles both
the same way (any OSError of a write). Two variants per writer: nothing can be written at all, not
even a temporary file (0 bytes), and a write that fails part-way (a few KB: small files land, the
model or the figures do not).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import (
    CONFIG,
    DISTNER,
    ENV,
    TEST_CONLL,
    TINY,
    TINY_NET,
    distner,
    retrain_args,
    sets,
    snapshot,
    write,
)

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses

LIMITS = [0, 4000]  # bytes a file may grow to: none, or a config but not a model or a figure
SMALL_LIMITS = [0, 100]  # for the small outputs: predictions, an evaluation
# joblib (under scikit-learn) probes /dev/shm at import and warns when it cannot: with the limit
# set for the whole process the probe fails too, which a full data disk would not do
FULL_ENV = {**ENV, "JOBLIB_MULTIPROCESSING": "0"}
KEPT = {".distner.lock", "distner.json"}  # a folder's claim, written first: not a result


def full_disk(limit: int, *args: object, cwd: Path) -> subprocess.CompletedProcess:
    def limit_writes() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cmd = [*DISTNER, *map(str, args)]
    return subprocess.run(
        cmd, cwd=cwd, env=FULL_ENV, capture_output=True, timeout=300, preexec_fn=limit_writes
    )


def check(proc: subprocess.CompletedProcess, root: Path, before: dict[str, str]) -> str:
    err = proc.stderr.decode()
    lines = err.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert lines and lines[-1].startswith("distner: error: "), err
    assert all(not line.startswith("distner: error") for line in lines[:-1]), err
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing there changed
    left = {k for k, v in after.items() if k not in before and v != "<dir>" and Path(k).name not in KEPT}
    assert left == set(), left  # nothing half-written
    return lines[-1]


@pytest.mark.parametrize("limit", LIMITS)
def test_train(limit: int, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    proc = full_disk(limit, "train", "--lang", "en", "--data-dir", TINY, *sets(*TINY_NET, "epochs=1"),
                     "--out", "run", cwd=tmp_path)  # fmt: skip
    line = check(proc, tmp_path, before)
    assert "File too large" in line or "No usable temporary directory" in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("limit", SMALL_LIMITS)
def test_predict(limit: int, finished, tmp_path: Path) -> None:  # noqa: F811
    run = shutil.copytree(finished[0], tmp_path / "run")
    before = snapshot(tmp_path)
    proc = full_disk(limit, "predict", "--model", run, "--input", TEST_CONLL, "--output", "out.conll",
                     cwd=tmp_path)  # fmt: skip
    assert check(proc, tmp_path, before) == "distner: error: out.conll: cannot write (File too large)"


@pytest.mark.parametrize("limit", SMALL_LIMITS)
def test_evaluate(limit: int, finished, tmp_path: Path) -> None:  # noqa: F811
    run = shutil.copytree(finished[0], tmp_path / "run")
    before = snapshot(tmp_path)
    proc = full_disk(limit, "evaluate", "--model", run, "--split", "dev", "--data-dir", TINY, cwd=tmp_path)
    line = check(proc, tmp_path, before)
    assert line == f"distner: error: {run / 'eval-dev.json'}: cannot write (File too large)"


@pytest.mark.parametrize("limit", LIMITS)
def test_retrain(limit: int, tmp_path: Path) -> None:
    write(tmp_path / "best.yaml", CONFIG)
    before = snapshot(tmp_path)
    proc = full_disk(limit, *retrain_args(tmp_path), cwd=tmp_path)
    line = check(proc, tmp_path, before)
    assert "File too large" in line or "No usable temporary directory" in line, line
    assert not list((tmp_path / "cells").rglob("metrics.json"))


@pytest.mark.parametrize("limit", LIMITS)
def test_report_over_an_earlier_one(limit: int, cell, tmp_path: Path) -> None:  # noqa: F811
    root = shutil.copytree(cell, tmp_path / "copy")
    args = ["report", "--langs", "en", "--granularities", "fine", "--retrain-dir", root / "cells",
            "--report-dir", root / "report"]  # fmt: skip
    assert distner(*args, cwd=root).returncode == 0  # the earlier report, which must stay whole
    before = snapshot(root)
    line = check(full_disk(limit, *args, cwd=root), root, before)
    assert str(root / "report") in line and "File too large" in line, line
    assert set(os.listdir(root / "report")) - KEPT == {"en-fine-confusion.png", "report.json", "report.md"}
