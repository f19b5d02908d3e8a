"""A report written whole or not at all, whatever the stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..helpers import DISTNER, ENV, as_in_a_terminal, distner, snapshot, stdout_full

# ------------------------------------------------ a report is written whole, or not at all (issue 43)


def _report_args(cell: Path, out: Path) -> list[object]:
    return ["report", "--langs", "en", "--granularities", "fine", "--retrain-dir", cell / "cells",
            "--report-dir", out]  # fmt: skip


@pytest.fixture
def earlier(cell: Path, tmp_path: Path) -> Path:
    """A report folder holding an earlier report, and a file of the user's."""
    out = tmp_path / "report"
    assert distner(*_report_args(cell, out), cwd=tmp_path).returncode == 0
    (out / "notes.txt").write_text("mine\n")
    return out


@pytest.mark.integration  # distner in subprocesses
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_report_stopped_while_drawing_is_not_written_and_says_so(cell, earlier, tmp_path, sig):
    """SIGTERM used to leave its .staged-XXXX/ folder (a 0-byte PNG in it) and its lock."""
    before = snapshot(earlier)
    proc = subprocess.Popen(
        [*DISTNER, *map(str, _report_args(cell, earlier))], cwd=tmp_path, env=ENV,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_in_a_terminal,
    )  # fmt: skip
    deadline = time.time() + 60
    while not list(earlier.glob(".staged-*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the report ended before it drew"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err.decode(), err.decode()
    assert err.decode().strip().splitlines()[-1] == (
        f"distner: interrupted: report not written; {earlier} is as it was"
    )
    assert snapshot(earlier) == before  # no staging folder, no lock, the earlier report


@pytest.mark.integration  # distner in subprocesses
def test_a_stop_once_the_report_is_in_place_finds_it_written(cell, earlier, tmp_path):
    """Ctrl-C while the report's line is printed (stdout full): it used to exit 130 and say
    nothing, though the report had been replaced. Now: exit 0, and a line saying it is written."""
    (earlier / "report.md").write_text("an earlier report\n")
    r, w = stdout_full()
    proc = subprocess.Popen(
        [*DISTNER, *map(str, _report_args(cell, earlier))], cwd=tmp_path, env=ENV,
        stdout=w, stderr=subprocess.PIPE, preexec_fn=as_in_a_terminal,
    )  # fmt: skip
    os.close(w)
    try:
        deadline = time.time() + 60
        while (earlier / "report.md").read_text() == "an earlier report\n" and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # into the blocked print
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert err.decode().strip().splitlines()[-1] == (
        f"distner: the stop came after the report was in place; {earlier} holds the new one"
    )
    assert (earlier / "report.md").read_text().startswith("#")
    assert not list(earlier.glob(".*"))  # no staging folder, no lock


@pytest.mark.integration  # distner in subprocesses
def test_a_report_removes_the_staging_folders_of_a_killed_one(cell, earlier, tmp_path):
    """`kill -9` of a report leaves its staging folder; the next report (under the lock) removes it."""
    stale = earlier / ".staged-a1b2c3d4"
    stale.mkdir()
    (stale / "en-fine-f1.png").touch()
    (earlier / ".staged-notmine").mkdir()  # not a name report makes: left alone
    assert distner(*_report_args(cell, earlier), cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in earlier.glob(".*")) == [".staged-notmine"]
