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

from ..helpers import TINY, one_line_error, run_cli, snapshot

pytestmark = pytest.mark.integration  # real Ray studies, distner in subprocesses


def _tune(folder: Path, *extra: object, env: dict[str, str] | None = None):
    """`distner tune` of conftest's finished study (en-fine on the tiny fixture), run in `folder`."""
    return run_cli(
        "tune", "--lang", "en", "--space", "space.yaml", "--num-samples", 2, "--seed", 3, "--storage", "runs",
        "--best-dir", "best", "--data-dir", TINY, "--verbose", 0, *extra, cwd=folder, env=env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def made(finished_study: Path) -> Path:
    """conftest's finished two-trial study, signed by this session's key (conftest's DISTNER_KEY_DIR)."""
    assert (_state(finished_study) / SIGNATURE).is_file()
    return finished_study


def _state(study: Path) -> Path:
    """The study's own folder (Ray's state, its signature) under the folder the tests run in."""
    return study / "runs" / "en-fine"


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
def test_a_crafted_state_never_runs(study, tmp_path, how):
    """A swapped tuner.pkl used to run its code on --resume and --results-only (then a traceback)."""
    marker = tmp_path / "ran"
    (_state(study) / "tuner.pkl").write_bytes(pickle.dumps(_Runs(marker)))
    before = snapshot(study)
    line = one_line_error(_tune(study, how))
    assert line == (
        f"distner: error: {_state(study)}: Ray's state (tuner.pkl) changed since this user's key "
        f"signed it (tuner.pkl: replaced, damaged or truncated); {UNSIGNED}"
    )
    assert not marker.exists() and snapshot(study) == before


def test_a_truncated_state_is_one_line(study):
    """It used to be a 27-line traceback from Ray's unpickler."""
    pkl = _state(study) / "tuner.pkl"
    pkl.write_bytes(pkl.read_bytes()[:100])
    line = one_line_error(_tune(study, "--resume"))
    # compat.can_restore reads its opcodes (running none) and finds it damaged before the signature
    assert "Ray's state of this study (tuner.pkl) is missing or damaged" in line


def test_an_unsigned_file_beside_the_state_is_refused(study, tmp_path):
    """A searcher state added after signing: Ray would unpickle it too."""
    (_state(study) / "searcher-state-extra.pkl").write_bytes(pickle.dumps(_Runs(tmp_path / "ran")))
    line = one_line_error(_tune(study, "--resume"))
    assert "holds a file its signature does not cover (searcher-state-extra.pkl)" in line


def test_a_state_another_user_signed_is_refused(study, tmp_path):
    """Another key (another user, another machine) signed it: as good as unsigned here."""
    other = {**os.environ, "DISTNER_KEY_DIR": str(tmp_path / "other-key")}
    (_state(study) / SIGNATURE).unlink()
    assert _tune(study, "--results-only", "--trust", env=other).returncode == 0
    line = one_line_error(_tune(study, "--results-only"))
    state = _state(study)
    assert (
        line
        == f"distner: error: {state}: Ray's state (tuner.pkl) is not signed by this user's key; {UNSIGNED}"
    )
    assert (tmp_path / "other-key" / "study-key").stat().st_mode & 0o777 == 0o600


def test_a_study_from_before_signing_needs_trust_once(study):
    sig = _state(study) / SIGNATURE
    sig.unlink()  # as a study an earlier distner wrote
    line = one_line_error(_tune(study, "--results-only"))
    assert "is not signed by this user's key" in line
    proc = _tune(study, "--results-only", "--trust")
    assert proc.returncode == 0, proc.stderr
    assert "resuming it as --trust says" in proc.stderr
    assert set(json.loads(sig.read_text())["files"]) >= {"tuner.pkl"}
    proc = _tune(study, "--results-only")  # signed now: no --trust needed
    assert proc.returncode == 0, proc.stderr
