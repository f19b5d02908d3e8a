"""tune/trust.py through the CLI: a study's Ray state is handed to Ray (which unpickles it) only when
this user's key signed it; a crafted, truncated or foreign one is one line before Ray reads it, and
a study from before signing needs --trust once."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from distner.tune.trust import SIGNATURE

from ..helpers import SPACE, one_line_error, run_cli, snapshot, write

pytestmark = pytest.mark.integration  # real Ray studies, distner in subprocesses


def _tune(folder: Path, data: Path, *extra: object, env: dict[str, str] | None = None):
    return run_cli(
        "tune", "--lang", "hi", "--space", "space.yaml", "--num-samples", 2, "--storage", "runs",
        "--best-dir", "best", "--name", "s", "--data-dir", data, "--verbose", 0, *extra, cwd=folder, env=env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory, synthetic_data) -> Path:
    """A finished two-trial study, signed by this session's key (conftest's DISTNER_KEY_DIR)."""
    folder = tmp_path_factory.mktemp("signed")
    write(folder / "space.yaml", SPACE % 1)
    proc = _tune(folder, synthetic_data)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "runs" / "s" / SIGNATURE).is_file()
    return folder


@pytest.fixture
def study(made, tmp_path) -> Path:
    return shutil.copytree(made, tmp_path / "copy")


class _Runs:
    """A pickle that makes a folder when it is loaded: code a crafted tuner.pkl would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


UNSIGNED = (
    "resuming runs code from it: add --trust if you made it or trust who did "
    "(needed once for a study from before distner signed its state, or one killed before it "
    "could sign it: SIGKILL, out of memory, power loss)"
)


@pytest.mark.parametrize("how", ["--resume", "--results-only"])
def test_a_crafted_state_never_runs(study, synthetic_data, tmp_path, how):
    """A swapped tuner.pkl used to run its code on --resume and --results-only (then a traceback)."""
    marker = tmp_path / "ran"
    (study / "runs" / "s" / "tuner.pkl").write_bytes(pickle.dumps(_Runs(marker)))
    before = snapshot(study)
    line = one_line_error(_tune(study, synthetic_data, how))
    assert line == (
        f"distner: error: {study / 'runs' / 's'}: Ray's state (tuner.pkl) changed since this user's key "
        f"signed it (tuner.pkl: replaced, damaged or truncated); {UNSIGNED}"
    )
    assert not marker.exists() and snapshot(study) == before


def test_a_truncated_state_is_one_line(study, synthetic_data):
    """It used to be a 27-line traceback from Ray's unpickler."""
    pkl = study / "runs" / "s" / "tuner.pkl"
    pkl.write_bytes(pkl.read_bytes()[:100])
    line = one_line_error(_tune(study, synthetic_data, "--resume"))
    # compat.can_restore reads its opcodes (running none) and finds it damaged before the signature
    assert "Ray's state of this study (tuner.pkl) is missing or damaged" in line


def test_an_unsigned_file_beside_the_state_is_refused(study, synthetic_data, tmp_path):
    """A searcher state added after signing: Ray would unpickle it too."""
    (study / "runs" / "s" / "searcher-state-extra.pkl").write_bytes(pickle.dumps(_Runs(tmp_path / "ran")))
    line = one_line_error(_tune(study, synthetic_data, "--resume"))
    assert "holds a file its signature does not cover (searcher-state-extra.pkl)" in line


def test_a_state_another_user_signed_is_refused(study, synthetic_data, tmp_path):
    """Another key (another user, another machine) signed it: as good as unsigned here."""
    other = {**os.environ, "DISTNER_KEY_DIR": str(tmp_path / "other-key")}
    (study / "runs" / "s" / SIGNATURE).unlink()
    assert _tune(study, synthetic_data, "--results-only", "--trust", env=other).returncode == 0
    line = one_line_error(_tune(study, synthetic_data, "--results-only"))
    state = study / "runs" / "s"
    assert (
        line
        == f"distner: error: {state}: Ray's state (tuner.pkl) is not signed by this user's key; {UNSIGNED}"
    )
    assert (tmp_path / "other-key" / "study-key").stat().st_mode & 0o777 == 0o600


def test_a_study_from_before_signing_needs_trust_once(study, synthetic_data):
    sig = study / "runs" / "s" / SIGNATURE
    sig.unlink()  # as a study an earlier distner wrote
    line = one_line_error(_tune(study, synthetic_data, "--results-only"))
    assert "is not signed by this user's key" in line
    proc = _tune(study, synthetic_data, "--results-only", "--trust")
    assert proc.returncode == 0, proc.stderr
    assert "resuming it as --trust says" in proc.stderr
    assert set(json.loads(sig.read_text())["files"]) >= {"tuner.pkl"}
    proc = _tune(study, synthetic_data, "--results-only")  # signed now: no --trust needed
    assert proc.returncode == 0, proc.stderr
