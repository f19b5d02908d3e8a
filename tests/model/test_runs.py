"""model/runs.py: the run folder's files, written by a real fit and read back through its one reader."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from distner.core.errors import DistnerError
from distner.model import runs
from distner.model.runs import is_run_dir

from ..helpers import tiny_config


@pytest.fixture(scope="module")
def run(finished_run):
    """conftest's session run: a real fit of tiny_config() (read-only here; the cases copy it)."""
    return finished_run, tiny_config()


def test_a_fit_writes_the_files_runs_names_and_reads_them_back(run):
    out, cfg = run
    assert all((out / f).is_file() for f in runs.RUN_FILES) and is_run_dir(out)
    assert runs.finished_config(out) == cfg.to_flat()
    metrics = runs.read_metrics(out)
    assert metrics["config"] == cfg.to_flat() and {"dev", "test"} <= set(metrics)
    weights = out / runs.WEIGHTS
    assert set(runs.read_weights(weights)) == set(torch.load(weights, weights_only=True))


def test_an_unfinished_or_damaged_run_is_told_apart(run, tmp_path):
    out, _ = run
    copy = shutil.copytree(out, tmp_path / "copy")
    (copy / runs.METRICS).unlink()
    assert runs.finished_config(copy) is None  # no metrics.json: not finished
    (copy / runs.METRICS).write_text(json.dumps({"dev": {}}))
    with pytest.raises(DistnerError, match=r"metrics\.json: damaged \(no 'test' scores\)"):
        runs.read_metrics(copy)
    (copy / runs.CONFIG).write_text("lang: en\n")
    with pytest.raises(DistnerError, match=r"config\.yaml: damaged \(no 'config' mapping\)"):
        runs.finished_config(copy)


def test_a_run_from_before_a_key_existed_reads_with_its_default(run, tmp_path):
    """A run folder written before lr_schedule existed (its config.yaml lacks the key) still counts
    as finished with today's default config: retrain does not ask to overwrite it."""
    out, cfg = run
    copy = shutil.copytree(out, tmp_path / "old")
    saved = yaml.safe_load((copy / runs.CONFIG).read_text())
    del saved["config"]["lr_schedule"]
    (copy / runs.CONFIG).write_text(yaml.safe_dump(saved))
    assert runs.finished_config(copy) == cfg.to_flat()
    assert runs.finished_config(copy) != cfg.replace(lr_schedule="linear").to_flat()


def test_a_cell_folder_means_its_final_run(run, tmp_path):
    out, _ = run
    cell = tmp_path / "cell"
    shutil.copytree(out, cell / "tuned" / "seed-1")
    (cell / runs.FINAL).write_text(json.dumps({"run_dir": "tuned/seed-1"}))
    assert runs.resolve_final(cell) == cell / "tuned" / "seed-1"
    assert runs.resolve_final(out) == out  # a run folder is itself
