"""The step files' readers: a record as its step writes it is read back as it is (every committed
trials.csv and summary.json included); anything else is one line naming the file and what is wrong."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import pytest

from distner.core.errors import DistnerError
from distner.records import (
    REPORTED,
    TrialRow,
    read_report,
    read_retrain,
    read_summary,
    read_trials,
    summarise,
    write_trials,
)
from distner.tune.study import drop_ended_checkpoints

from .helpers import ROOT, report_fits_its_type

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


def test_a_record_without_the_baseline_reads_back(tmp_path):
    """The baseline is optional (retrain --no-baseline); a variant besides it is not."""
    record = _damaged(lambda r: r["variants"].pop("baseline"))
    path = tmp_path / "retrain.json"
    path.write_text(json.dumps(record))
    assert read_retrain(path, "en-fine") == record


def test_summarise_gives_mean_std_and_count_per_split():
    runs = [{**RUN, "dev": {k: x for k in REPORTED}} for x in (0.5, 0.7)]
    got = summarise(runs, "dev")["entity_macro_f1"]
    assert (
        got["n"] == 2 and got["mean"] == pytest.approx(0.6) and got["std"] == pytest.approx(0.1414, abs=1e-4)
    )
    assert summarise(runs[:1], "dev")["entity_macro_f1"]["std"] == 0.0


@pytest.mark.parametrize(
    "data, problem",
    [
        ([1, 2], "damaged (not a JSON object)"),
        (_damaged(lambda r: r.pop("variants")), "damaged (key 'variants' missing or not a dict)"),
        (_damaged(lambda r: r["variants"].pop("tuned")), "damaged (needs a variant besides the baseline)"),
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


ROW = TrialRow(
    index=1,
    trial="a1b2c_00000",
    params={"hidden_dim": 520, "lr": 1e-05, "dropout": 0.0, "bidi": True, "pool": "mean", "crf": None},
    best_dev_f1=0.5123,
    epochs_run=3,
    state="completed",
    seconds=12.5,
    node_id="abc123",
    baseline=True,
    error="",
    trial_dir="trainable_a1b2c_00000_1_hidden_dim=520",
)


def test_trial_rows_read_back_as_written(tmp_path):
    path = tmp_path / "trials.csv"
    error = "RuntimeError: CUDA out of memory, tried 2, 3"  # commas and a colon survive the CSV
    unscored = replace(ROW, index=2, best_dev_f1=math.nan, state="failed", baseline=False, error=error)
    write_trials(path, [ROW, unscored], list(ROW.params))
    first, second = read_trials(path)
    assert first == ROW and first.scored
    assert math.isnan(second.best_dev_f1) and not second.scored
    assert replace(second, best_dev_f1=0.0) == replace(unscored, best_dev_f1=0.0)


def test_every_committed_trials_csv_reads_and_writes_back_the_same(tmp_path):
    paths = sorted((ROOT / "results").glob("**/studies/*/trials.csv"))
    assert len(paths) >= 7
    for path in paths:
        rows = read_trials(path)
        assert rows and sum(r.baseline for r in rows) <= 1, path
        again = tmp_path / "trials.csv"
        write_trials(again, rows, list(rows[0].params))
        assert again.read_bytes() == path.read_bytes(), path


def _edit(text: str, column: str, value: str) -> str:
    header, first, *rest = text.splitlines()
    cells = dict(zip(header.split(","), first.split(",")))
    cells[column] = value
    return "\n".join([header, ",".join(cells.values()), *rest]) + "\n"


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda t: t.replace("best_dev_f1", "best_dev"), ":2: damaged (no column 'best_dev_f1')"),
        (lambda t: _edit(t, "epochs_run", "ten"), ":2: damaged (epochs_run 'ten' is not a whole number)"),
        (lambda t: _edit(t, "best_dev_f1", ""), ":2: damaged (best_dev_f1 '' is not a number)"),
        (lambda t: _edit(t, "baseline", "yes"), ":2: damaged (baseline 'yes' is not True or False)"),
        (lambda t: t.rsplit(",", 3)[0] + "\n", ":2: damaged (baseline None is not True or False)"),
    ],
    ids=["column-missing", "not-numeric", "empty", "baseline", "short-row"],
)
def test_a_hand_edited_trials_csv_is_one_line(tmp_path, damage, problem):
    path = tmp_path / "trials.csv"
    write_trials(path, [ROW], list(ROW.params))
    path.write_text(damage(path.read_text()))
    with pytest.raises(DistnerError) as e:
        read_trials(path)
    assert str(e.value) == f"{path}{problem}".replace(":2: damaged (no column", ": damaged (no column")


def test_every_committed_report_reads_as_its_type():
    paths = sorted((ROOT / "results").glob("**/report.json"))
    assert len(paths) >= 2
    for path in paths:
        assert report_fits_its_type(read_report(path)), path


def _report(mean: str, std: str) -> str:
    """report.json text of one cell whose tuned entity_macro_f1 mean and std are these JSON values."""
    stat = f'{{"mean": {mean}, "std": {std}, "n": 3}}'
    good = '{"mean": 0.6, "std": 0.01, "n": 3}'
    return (
        f'{{"cells": {{"en-fine": {{"tuned": {{"entity_macro_f1": {stat}, "entity_micro_f1": {good}}}}}}}}}'
    )


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[]", "not a distner report.json (no 'cells' mapping)"),
        (
            '{"cells": {"en-fine": {"tuned": {}}}}',
            "cell en-fine: no tuned entity_macro_f1/entity_micro_f1 mean and std",
        ),
        ("{", "damaged JSON"),
        # numbers as strings: a TypeError traceback in the comparison before; NaN printed nan +- nan
        (
            _report('"0.61"', "0.01"),
            "cell en-fine: tuned.entity_macro_f1.mean is not a finite number ('0.61')",
        ),
        (_report("0.61", "NaN"), "cell en-fine: tuned.entity_macro_f1.std is not a finite number (nan)"),
        (
            _report("Infinity", "0.01"),
            "cell en-fine: tuned.entity_macro_f1.mean is not a finite number (inf)",
        ),
        (_report("true", "0.01"), "cell en-fine: tuned.entity_macro_f1.mean is not a finite number (True)"),
    ],
)
def test_a_report_a_comparison_cannot_read_is_one_line(tmp_path, text, problem):
    path = tmp_path / "report.json"
    path.write_text(text)
    with pytest.raises(DistnerError) as e:
        read_report(path)
    assert str(e.value).startswith(f"{path}: {problem}")


def test_drop_ended_checkpoints_keeps_those_a_resume_needs(tmp_path):
    """Trials that ended lose their checkpoint folders; a failed trial (--resume retries it from
    its checkpoint) keeps its own, and every other file of a trial stays."""
    states = {"t1": "completed", "t2": "stopped_early", "t3": "failed", "t4": "diverged"}
    rows = []
    for name, state in states.items():
        ckpt = tmp_path / name / "checkpoint_000001"
        ckpt.mkdir(parents=True)
        (ckpt / "last.ckpt").write_bytes(b"x" * 1000)
        (tmp_path / name / "result.json").write_text("{}\n")
        rows.append(replace(ROW, state=state, trial_dir=name))
    rows.append(replace(ROW, state="not_run", trial_dir="t5"))  # never reported: no folder

    assert drop_ended_checkpoints(tmp_path, rows) == (3, 3000)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == [
        "t1/result.json",
        "t2/result.json",
        "t3/checkpoint_000001/last.ckpt",
        "t3/result.json",
        "t4/result.json",
    ]
    assert drop_ended_checkpoints(tmp_path, rows) == (0, 0)  # nothing left to remove
