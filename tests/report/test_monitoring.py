import subprocess
import time
import urllib.request

import pytest

from ..helpers import DISTNER, run_cli

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses


def test_board_serves_a_study_folder(tmp_path):
    (tmp_path / "study").mkdir()
    proc = subprocess.Popen(
        [*DISTNER, "board", str(tmp_path / "study"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = None
        deadline = time.time() + 60
        while time.time() < deadline and url is None:
            line = proc.stdout.readline()
            if line.startswith("TensorBoard at "):
                url = line.split()[2]
        assert url and url.startswith("http://localhost:")
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_board_missing_folder(tmp_path):
    proc = run_cli("board", tmp_path / "nope")
    assert proc.returncode == 2 and "no such study or run folder" in proc.stderr
