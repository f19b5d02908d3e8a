"""The step files' readers: a record as its step writes it is read back as it is (every committed
summary.json included); anything else is one line naming the file and what is wrong."""

from __future__ import annotations

import copy
import json

import pytest

from distner.errors import DistnerError
from distner.records import read_retrain, read_summary

from .helpers import ROOT

STAT = {"mean": 0.5, "std": 0.01, "n": 1}
SCORES = {"entity_macro_f1": 0.5}
RUN = {
    "seed": 1,
    "run_dir": "tuned/seed-1",
    "best_epoch": 1,
    "train_seconds": 1.0,
    "dev": SCORES,
    "test": SCORES,
}
RECORD = {
    "cell": "en-fine",
    "lang": "en",
    "granularity": "fine",
    "train_on": "train",
    "seeds": [1],
    "variants": {
        name: {"source": f"{name}.yaml", "config": {}, "runs": [RUN], "test": {"entity_macro_f1": STAT}}
        for name in ("tuned", "baseline")
    },
    "study": None,
    "best_meta": None,
    "final": {"run_dir": "tuned/seed-1", "selected_by": "dev entity_macro_f1", "dev_entity_macro_f1": 0.5},
}


def _damaged(edit):
    record = copy.deepcopy(RECORD)
    edit(record)
    return record


def test_a_record_reads_back_as_written(tmp_path):
    path = tmp_path / "retrain.json"
    path.write_text(json.dumps(RECORD))
    assert read_retrain(path, "en-fine") == RECORD


@pytest.mark.parametrize(
    "data, problem",
    [
        ([1, 2], "damaged (not a JSON object)"),
        (_damaged(lambda r: r.pop("variants")), "damaged (key 'variants' missing or not a dict)"),
        (_damaged(lambda r: r["variants"].pop("baseline")), "damaged (needs a tuned and a baseline variant)"),
        (_damaged(lambda r: r["variants"]["tuned"].update(runs=[])), "variant 'tuned' has no runs"),
        (_damaged(lambda r: r["final"].pop("run_dir")), "damaged (final has no run_dir)"),
        (RECORD, "holds en-fine, not hi-fine"),
    ],
)
def test_anything_else_is_one_line(tmp_path, data, problem):
    path = tmp_path / "retrain.json"
    path.write_text(json.dumps(data))
    cell = "hi-fine" if data is RECORD else "en-fine"
    with pytest.raises(DistnerError, match=None) as e:
        read_retrain(path, cell)
    assert str(e.value).startswith(f"{path}: ") and problem in str(e.value)


def test_a_missing_record_says_how_to_make_it(tmp_path):
    with pytest.raises(DistnerError) as e:
        read_retrain(tmp_path / "nope" / "retrain.json", "hi-coarse")
    assert (
        "no retrain results for hi-coarse; make them with: distner retrain --lang hi --granularity coarse"
        in str(e.value)
    )


def test_every_committed_summary_reads():
    paths = sorted((ROOT / "results").glob("**/studies/*/summary.json"))
    assert len(paths) >= 7
    for path in paths:
        summary = read_summary(path)
        assert summary is not None and summary["trials"] >= 1, path


def test_a_summary_without_a_key_every_summary_has_is_one_line(tmp_path):
    path = tmp_path / "summary.json"
    assert read_summary(path) is None  # no study results yet
    summary = json.loads(next((ROOT / "results" / "studies").glob("*/summary.json")).read_text())
    del summary["best_dev_f1"]
    path.write_text(json.dumps(summary))
    with pytest.raises(DistnerError, match=r"summary\.json: damaged \(no key 'best_dev_f1'\)"):
        read_summary(path)
    path.write_text("[1, 2]")
    with pytest.raises(DistnerError, match=r"summary\.json: damaged \(not a JSON object\)"):
        read_summary(path)
