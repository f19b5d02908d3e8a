"""Every study folder says what it is (distner.json): a resume that would change the study, a
folder that lost Ray's state, a folder of files that is not a study, all refused with one line and
nothing changed; a folder an older distner made is adopted once its own files agree."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from distner import __version__
from distner.core import manifest
from distner.core.errors import DistnerError
from distner.options import TuneOptions
from distner.spaces import load_space
from distner.tune.driver import run_study

from ..helpers import SPACE, TINY, distner, snapshot, study_options, write

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses


@pytest.fixture
def study(finished_study: Path) -> Path:
    """conftest's finished two-trial study of en-fine (one per session): the folder holding runs/
    and space.yaml. The tests that change it work on a copy."""
    return finished_study


def options(root: Path, **kw: object) -> TuneOptions:
    return study_options(root, **kw)


def tune_args(root: Path, *extra: object, seed: int = 3, samples: int = 2) -> list[object]:
    return ["tune", "--lang", "en", "--space", root / "space.yaml", "--num-samples", samples,
            "--seed", seed, "--storage", root / "runs", "--best-dir", root / "best", "--data-dir", TINY,
            "--verbose", 0, *extra]  # fmt: skip


def test_a_new_study_writes_its_manifest_first(study: Path) -> None:
    m = manifest.read(study / "runs" / "en-fine")
    assert m is not None and (m.kind, m.cell) == ("study", "en-fine")
    assert m.made_from["seed"] == 3 and m.made_from["num_samples"] == 2
    assert m.made_from["space_sha256"] == load_space(study / "space.yaml").sha256()
    assert m.made_from["space"] == str(study / "space.yaml")  # as given, never resolved further


@pytest.mark.parametrize(
    ("extra", "kw", "line"),
    [
        (["--granularity", "coarse", "--name", "en-fine", "--resume"], {}, "holds en-fine, not en-coarse"),
        (["--resume"], {"seed": 4}, "seed was 3, now 4; a resumed study keeps how it was started"),
        (["--resume"], {"samples": 1}, "num_samples was 2, now 1; a resumed study may add trials, not drop"),
        (["--resume", "--grace-period", 2], {}, "grace_period was 1, now 2"),
        ([], {}, "study exists; add --resume to continue it, or --name NEW"),
    ],
)
def test_a_resume_that_would_change_the_study_is_refused(
    study: Path, extra: list, kw: dict, line: str
) -> None:
    before = snapshot(study)
    proc = distner(*tune_args(study, *extra, **kw), cwd=study)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and line in lines[0], proc.stderr.decode()
    assert snapshot(study) == before


def test_a_resume_may_add_trials(study: Path, tmp_path: Path, local_ray: None) -> None:
    """--num-samples up on --resume: the study's trials stay as they were and more are added
    (Ray alone would restore the count it was started with and add none)."""
    root = tmp_path / "copy"
    shutil.copytree(study, root)
    folder = root / "runs" / "en-fine"
    before = (folder / "trials.csv").read_text().splitlines()
    original = snapshot(study)
    result = run_study(options(root, space=str(root / "space.yaml"), resume=True, num_samples=3))
    after = (folder / "trials.csv").read_text().splitlines()
    assert len(before) == 3 and len(after) == 4 and result.summary["trials"] == 3
    assert set(before[1:]) <= set(after[1:])  # the two earlier trials, as they were
    assert snapshot(study) == original  # the new trial ran in the copy, not where it was copied from
    m = manifest.read(folder)
    assert m is not None and m.made_from["num_samples"] == 3
    # resumed again without --num-samples: the study's own count now, nothing to add
    again = run_study(replace(options(root, space=str(root / "space.yaml"), resume=True), num_samples=None))
    assert again.summary["trials"] == 3 and (folder / "trials.csv").read_text().splitlines() == after


def test_a_study_of_an_older_distner_cannot_add_trials(study: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(study, root)
    folder = root / "runs" / "en-fine"
    m = manifest.read(folder)
    assert m is not None
    made = {k: v for k, v in m.made_from.items() if k != "grows"}  # as written before StudySearch
    manifest.write(folder, replace(m, made_from=made))
    before = snapshot(root)
    proc = distner(*tune_args(root, "--resume", samples=4), cwd=root)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr.decode()
    assert "num_samples was 2, now 4; this study was started by an older distner" in lines[0]
    assert snapshot(root) == before


def test_a_changed_space_is_refused_on_resume(study: Path, tmp_path: Path) -> None:
    other = write(tmp_path / "space.yaml", (SPACE % 1).replace("[35, 64]", "[35, 48]"))
    before = snapshot(study)
    with pytest.raises(
        DistnerError, match=r"space_sha256 was \w+\.\.\., now \w+\.\.\.; a resumed study keeps"
    ):
        run_study(options(study, space=str(other), resume=True))
    assert snapshot(study) == before


def test_a_study_that_lost_rays_state_is_neither_resumed_nor_restarted(study: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(study, root)
    (root / "runs" / "en-fine" / "tuner.pkl").unlink()
    before = snapshot(root)
    with pytest.raises(DistnerError, match=r"tuner\.pkl\) is missing or damaged, so it cannot be resumed"):
        run_study(options(root, space=str(root / "space.yaml"), resume=True))
    with pytest.raises(DistnerError, match="study exists; add --resume"):
        run_study(options(root, space=str(root / "space.yaml")))
    assert snapshot(root) == before


def _copy(study: Path, tmp_path: Path) -> tuple[Path, Path]:
    root = shutil.copytree(study, tmp_path / "copy")
    return root, root / "runs" / "en-fine"


def test_a_truncated_rays_state_is_the_one_line_of_a_missing_one(study: Path, tmp_path: Path) -> None:
    """A cut tuner.pkl passed for restorable (its file exists) and failed deep in Ray: 27 lines."""
    root, folder = _copy(study, tmp_path)
    state = (folder / "tuner.pkl").read_bytes()
    (folder / "tuner.pkl").write_bytes(state[: len(state) // 2])
    before = snapshot(root)
    for extra in (["--resume"], ["--results-only"]):
        proc = distner(*tune_args(root, *extra), cwd=root)
        lines = proc.stderr.decode().strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr.decode()
        assert f"{folder}: Ray's state of this study (tuner.pkl) is missing or damaged" in lines[0]
    assert snapshot(root) == before


def test_a_study_made_by_a_newer_distner_is_refused(study: Path, tmp_path: Path) -> None:
    root, folder = _copy(study, tmp_path)
    m = manifest.read(folder)
    assert m is not None
    manifest.write(folder, replace(m, version="9.9.9"))
    before = snapshot(root)
    proc = distner(*tune_args(root, "--resume"), cwd=root)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr.decode()
    assert lines[0] == (
        f"distner: error: {folder / 'distner.json'}: made by distner 9.9.9, this is {__version__}; "
        "use distner 9.9.9 or newer with this folder"
    )
    assert snapshot(root) == before


def test_smoke_does_not_grow_a_resumed_study(study: Path, tmp_path: Path) -> None:
    """--smoke's 4 trials are a default, not a request: on --resume the study keeps its own count
    (2 here); before, it grew to 4."""
    root, folder = _copy(study, tmp_path)
    before = (folder / "trials.csv").read_text().splitlines()
    args = tune_args(root, "--resume", "--smoke", "--name", "en-fine")
    at = args.index("--num-samples")
    proc = distner(*args[:at], *args[at + 2 :], cwd=root)  # no --num-samples
    assert proc.returncode == 0, proc.stderr.decode()
    assert "2 -> 4 trials" not in proc.stderr.decode()
    assert (folder / "trials.csv").read_text().splitlines() == before
    m = manifest.read(folder)
    assert m is not None and m.made_from["num_samples"] == 2


def test_a_folder_of_files_without_a_manifest_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "space.yaml", SPACE % 1)
    folder = tmp_path / "runs" / "en-fine"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    proc = distner(*tune_args(tmp_path), cwd=tmp_path)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1
    assert lines[0] == (
        f"distner: error: {folder}: holds files but no distner.json, so it is not a study of this "
        "distner; move it away or use --name NEW"
    )
    assert snapshot(tmp_path) == before


DAMAGED = [
    "not json",
    "[1, 2]",
    '{"kind": "study"}',
    '{"kind": "x", "cell": "en", "version": "1", "made_from": {}}',
    '{"kind": "study", "cell": "en-fine", "version": "new", "made_from": {}}',
]


@pytest.mark.parametrize("damage", DAMAGED)
def test_a_damaged_manifest_is_one_line(study: Path, tmp_path: Path, damage: str) -> None:
    root = tmp_path / "copy"
    shutil.copytree(study, root)
    (root / "runs" / "en-fine" / "distner.json").write_text(damage)
    before = snapshot(root)
    with pytest.raises(DistnerError, match=r"distner\.json: damaged"):
        run_study(options(root, space=str(root / "space.yaml"), resume=True))
    assert snapshot(root) == before


def test_an_older_study_is_adopted_only_if_its_summary_agrees(
    study: Path, tmp_path: Path, local_ray: None
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(study, root)
    folder = root / "runs" / "en-fine"
    (folder / "distner.json").unlink()  # as a study from before manifests
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "lang": "hi"}))
    with pytest.raises(DistnerError, match=r"holds hi-fine \(its summary.json\), not en-fine"):
        run_study(options(root, space=str(root / "space.yaml"), results_only=True))
    assert not (folder / "distner.json").exists()
    (folder / "summary.json").write_text(json.dumps(summary))
    run_study(options(root, space=str(root / "space.yaml"), results_only=True))
    m = manifest.read(folder)
    assert m is not None and m.cell == "en-fine" and m.made_from["seed"] == 3


def test_a_damaged_summary_or_optuna_db_is_one_line(study: Path, tmp_path: Path) -> None:
    from distner.report.facts import study_facts

    root = tmp_path / "copy"
    shutil.copytree(study, root)
    folder = root / "runs" / "en-fine"
    (folder / "optuna.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(DistnerError, match=r"optuna\.db: not an Optuna study database"):
        study_facts(str(folder))
    (folder / "summary.json").write_text("[1, 2]")
    with pytest.raises(DistnerError, match=r"summary\.json: damaged \(not a JSON object\)"):
        study_facts(str(folder))
