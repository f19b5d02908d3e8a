"""A retrain cell keeps its word: finished runs are replaced only with --overwrite, its results are
never left disagreeing with its run folders, it names its final model relative to itself (so a
copy is self-contained), and report refuses another cell's results."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from distner.core import manifest
from distner.records import RetrainRecord, SeedRun, Variant, read_retrain

from ..helpers import (
    CONFIG,
    DISTNER,
    ENV,
    TINY,
    as_in_a_terminal,
    distner,
    retrain_args,
    snapshot,
    write,
)

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()
    return lines[0]


def test_the_cell_says_what_it_is_and_names_its_runs_relative_to_itself(cell: Path) -> None:
    folder = cell / "cells" / "en-fine"
    m = manifest.read(folder)
    assert m is not None and (m.kind, m.cell, m.made_from) == (
        "retrain-cell",
        "en-fine",
        {"train_on": "train"},
    )
    final = json.loads((folder / "final.json").read_text())["run_dir"]
    record = json.loads((folder / "retrain.json").read_text())
    # what the writer wrote is what the type says, key for key, and its one reader takes it
    assert set(record) == set(RetrainRecord.__annotations__)
    for v in record["variants"].values():
        assert set(v) == set(Variant.__annotations__) and set(v["runs"][0]) == set(SeedRun.__annotations__)
    assert read_retrain(folder / "retrain.json", "en-fine") == record
    runs = record["variants"]
    assert final == "tuned/seed-1" and {r["run_dir"] for v in runs.values() for r in v["runs"]} == {
        "tuned/seed-1",
        "baseline/seed-1",
    }


def test_a_finished_run_with_another_config_needs_overwrite(cell: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(cell, root)
    before = snapshot(root)
    args = retrain_args(root, "--set", "lr=0.002")
    line = one_line(distner(*args, cwd=root))
    assert line == (
        f"distner: error: {root / 'cells' / 'en-fine' / 'baseline' / 'seed-1'}: finished with lr=0.01, "
        "asked for lr=0.002; add --overwrite to retrain it, or use another --retrain-dir"
    )
    assert snapshot(root) == before
    proc = distner(*args, "--overwrite", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    recorded = json.loads((root / "cells" / "en-fine" / "retrain.json").read_text())
    assert all(v["config"]["lr"] == 0.002 for v in recorded["variants"].values())
    # the same config again: every run is skipped, nothing changes
    after = snapshot(root / "cells" / "en-fine" / "tuned")
    assert distner(*args, cwd=root).returncode == 0
    assert snapshot(root / "cells" / "en-fine" / "tuned") == after


def test_a_copied_cell_evaluates_its_own_model(cell: Path, tmp_path: Path) -> None:
    copy = tmp_path / "moved"
    shutil.copytree(cell / "cells" / "en-fine", copy)
    original = snapshot(cell)
    proc = distner("evaluate", "--model", copy, "--data-dir", TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (copy / "tuned" / "seed-1" / "eval-test.json").is_file() and snapshot(cell) == original


def test_report_refuses_another_cells_results(cell: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(cell, root)
    shutil.copytree(root / "cells" / "en-fine", root / "cells" / "hi-fine")  # en-fine's, under hi-fine
    before = snapshot(root)
    args = ["report", "--langs", "hi", "--granularities", "fine", "--retrain-dir", root / "cells"]
    line = one_line(distner(*args, "--report-dir", root / "report", cwd=root))
    assert (
        line == f"distner: error: {root / 'cells' / 'hi-fine' / 'retrain.json'}: holds en-fine, not hi-fine"
    )
    # and retrain will not write into it either
    line = one_line(distner(*retrain_args(root, "--lang", "hi"), cwd=root))
    assert line.endswith(
        "hi-fine: holds en-fine, not hi-fine (distner.json); retrain into another --retrain-dir"
    )
    assert snapshot(root) == before


@pytest.mark.parametrize("damage", ["[]", '{"cell": "en-fine"}', "{"])
def test_report_says_what_is_wrong_with_a_damaged_retrain_json(
    cell: Path, tmp_path: Path, damage: str
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(cell, root)
    (root / "cells" / "en-fine" / "retrain.json").write_text(damage)
    before = snapshot(root)
    args = ["report", "--langs", "en", "--granularities", "fine", "--retrain-dir", root / "cells"]
    line = one_line(distner(*args, "--report-dir", root / "report", cwd=root))
    assert line.startswith(f"distner: error: {root / 'cells' / 'en-fine' / 'retrain.json'}: damaged")
    assert snapshot(root) == before


def test_a_folder_of_files_is_not_taken_for_a_cell(tmp_path: Path) -> None:
    write(tmp_path / "best.yaml", CONFIG)
    (tmp_path / "cells" / "en-fine").mkdir(parents=True)
    write(tmp_path / "cells" / "en-fine" / "notes.txt", "mine\n")
    before = snapshot(tmp_path)
    line = one_line(distner(*retrain_args(tmp_path), cwd=tmp_path))
    assert "holds files but no distner.json, so it is not a retrain cell" in line
    assert snapshot(tmp_path) == before


def test_an_interrupted_retrain_leaves_no_results_that_disagree(cell: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(cell, root)
    folder = root / "cells" / "en-fine"
    args = retrain_args(root, "--set", "epochs=300")  # long enough to be stopped mid-run
    proc = subprocess.Popen(
        [*DISTNER, *map(str, args), "--overwrite"],
        cwd=root,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=as_in_a_terminal,
    )
    deadline = time.time() + 120
    while (folder / "retrain.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert not (folder / "retrain.json").exists(), "the retrain never started its runs"
    # Ctrl-C once the seed's fit is running (its staging folder holds TensorBoard events). Sent
    # during the imports before it, the retrain once could exit by the signal (-2) instead of 130:
    # the CLI now installs the policy before those imports (tests/cli/test_main.py checks that phase).
    staged = "*/.seed-*.tmp-*/tb/events.out.tfevents.*"
    while not list(folder.glob(staged)) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert list(folder.glob(staged)), "the seed's fit never started"
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert not (folder / "retrain.json").exists() and not (folder / "final.json").exists()
    args = ["report", "--langs", "en", "--granularities", "fine", "--retrain-dir", root / "cells"]
    line = one_line(distner(*args, "--report-dir", root / "report", cwd=root))
    assert "no retrain results for en-fine" in line


def test_a_report_that_fails_part_way_changes_nothing(cell: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(cell, root)
    cells = root / "cells"
    shutil.copytree(cells / "en-fine", cells / "en-coarse")  # a second cell: en-fine's, relabelled
    recorded = json.loads((cells / "en-coarse" / "retrain.json").read_text())
    recorded.update(cell="en-coarse", granularity="coarse")
    (cells / "en-coarse" / "retrain.json").write_text(json.dumps(recorded))
    args = ["report", "--langs", "en", "--granularities", "fine,coarse", "--retrain-dir", cells]
    proc = distner(*args, "--report-dir", root / "report", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    before = snapshot(root / "report")
    # en-fine's figures would now come out different; en-coarse's final model lost its metrics
    metrics = cells / "en-fine" / "tuned" / "seed-1" / "metrics.json"
    m = json.loads(metrics.read_text())
    m["test"]["coarse_confusion"]["matrix"][0][0] += 5
    metrics.write_text(json.dumps(m))
    (cells / "en-coarse" / "tuned" / "seed-1" / "metrics.json").unlink()
    line = one_line(distner(*args, "--report-dir", root / "report", cwd=root))
    assert line.endswith("en-coarse/tuned/seed-1/metrics.json: file not found")
    assert snapshot(root / "report") == before  # no figure replaced, no staging folder left


def test_report_against_an_earlier_report(cell: Path, tmp_path: Path) -> None:
    args = ["report", "--langs", "en", "--granularities", "fine", "--retrain-dir", cell / "cells"]
    assert distner(*args, "--report-dir", tmp_path / "first", cwd=tmp_path).returncode == 0
    earlier = json.loads((tmp_path / "first" / "report.json").read_text())
    now = earlier["cells"]["en-fine"]["tuned"]["entity_macro_f1"]["mean"]
    earlier["cells"]["en-fine"]["tuned"]["entity_macro_f1"]["mean"] = now - 0.1  # 10 points worse
    earlier["cells"]["hi-fine"] = earlier["cells"]["en-fine"]  # a cell this report does not have
    write(tmp_path / "earlier.json", json.dumps(earlier))
    proc = distner(*args, "--report-dir", tmp_path / "second", "--against", "earlier.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads((tmp_path / "second" / "report.json").read_text())
    against = report["against"]
    assert against["source"] == "earlier.json" and list(against["cells"]) == ["en-fine"]
    assert against["cells"]["en-fine"]["entity_macro_f1"]["gain"] == pytest.approx(0.1)
    assert against["cells"]["en-fine"]["entity_micro_f1"]["gain"] == 0
    md = (tmp_path / "second" / "report.md").read_text()
    assert "## Against an earlier report" in md and "| en-fine |" in md and "| +10.00 |" in md
    write(tmp_path / "bad.json", '{"cells": {"en-fine": {"tuned": {}}}}')
    line = one_line(distner(*args, "--report-dir", tmp_path / "third", "--against", "bad.json", cwd=tmp_path))
    assert (
        line
        == "distner: error: bad.json: cell en-fine: no tuned entity_macro_f1/entity_micro_f1 mean and std"
    )
    assert not (tmp_path / "third").exists()


def test_variants_and_a_seed_list_make_one_record_that_outlives_its_run_folders(tmp_path: Path) -> None:
    """Named variants of the config, a seed list and no baseline go into one retrain.json with
    dev and test means; a variant on fewer seeds is never the final model; and once the run
    folders are gone (git-ignored, another machine), a rerun reuses the recorded runs."""
    write(tmp_path / "best.yaml", CONFIG)
    # the last --seeds wins over retrain_args' own "--seeds 1"
    args = retrain_args(tmp_path, "--seeds", "2,5", "--variant", "a:", "--variant", "b@5:word_dropout=0.1")
    proc = distner(*args, "--no-baseline", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    folder = tmp_path / "cells" / "en-fine"
    record = json.loads((folder / "retrain.json").read_text())
    assert record["seeds"] == [2, 5] and set(record["variants"]) == {"a", "b"}
    a, b = record["variants"]["a"], record["variants"]["b"]
    assert [r["seed"] for r in a["runs"]] == [2, 5] and [r["seed"] for r in b["runs"]] == [5]
    assert b["config"]["word_dropout"] == 0.1 and a["config"]["word_dropout"] == 0.0
    dev = [r["dev"]["entity_macro_f1"] for r in a["runs"]]
    assert a["dev"]["entity_macro_f1"]["mean"] == pytest.approx(sum(dev) / 2)
    assert record["final"]["variant"] == "a" and record["final"]["run_dir"].startswith("a/")
    assert read_retrain(folder / "retrain.json", "en-fine") == record
    for name in ("a", "b"):
        shutil.rmtree(folder / name)
    again = distner(*args, "--no-baseline", cwd=tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    assert b"epoch" not in again.stderr and not (folder / "a").exists()
    assert json.loads((folder / "retrain.json").read_text())["variants"] == record["variants"]
