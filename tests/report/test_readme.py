"""`distner tables`: a Markdown file's result tables are written from experiments' report.json,
each cell's row the dev pick across the experiments shown, and `--check` sees any difference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distner.cli.main import main
from distner.core.errors import DistnerError
from distner.report.readme import sync

from ..helpers import write

pytestmark = pytest.mark.unit


def _stat(mean: float) -> dict:
    return {"mean": mean, "std": 0.01, "n": 3}


def _cell(picks: dict[str, tuple[float, float]], selected: str, baseline: float | None) -> dict:
    """A report.json cell: candidates by name, (dev, test) means."""
    candidates = {
        n: {
            "dev": {"entity_macro_f1": _stat(d)},
            "test": {"entity_macro_f1": _stat(t), "entity_micro_f1": _stat(t)},
            "set": {} if n == "winner" else {"lr_schedule": "linear"},
        }
        for n, (d, t) in picks.items()
    }
    return {
        "selected": selected,
        "candidates": candidates,
        "tuned": candidates[selected]["test"],
        "baseline": None if baseline is None else {"entity_macro_f1": _stat(baseline)},
    }


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """Two experiments (rounds) of hi-fine and one earlier to compare with, their reports written."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "best/hi-fine.yaml", "hidden_dim: 8\n")
    reports = {
        "one": {"hi-fine": _cell({"winner": (0.80, 0.75), "linear": (0.82, 0.74)}, "linear", 0.60)},
        "two": {"hi-fine": _cell({"winner": (0.81, 0.79)}, "winner", None)},
        "old": {"hi-fine": _cell({"winner": (0.70, 0.70)}, "winner", 0.60)},
    }
    for name, cells in reports.items():
        write(
            tmp_path / f"experiments/{name}.yaml",
            f"cells: [hi-fine]\nconfig: best/{{cell}}.yaml\npublish: out/{name}\n",
        )
        write(tmp_path / f"out/{name}/report.json", json.dumps({"cells": cells}))
    return tmp_path


README = """\
# Results

<!-- distner table: experiments/one.yaml experiments/two.yaml
     against experiments/old.yaml -->
stale
<!-- end distner table -->

Text after it stays.
"""


def test_the_table_is_the_dev_pick_across_experiments(project):
    path = write(project / "README.md", README)
    assert sync(path, check=True) == [
        "experiments/one.yaml experiments/two.yaml against experiments/old.yaml"
    ]
    assert path.read_text() == README  # --check changes nothing
    assert sync(path) != [] and sync(path, check=True) == []
    text = path.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| Hindi fine")]
    # one's pick (linear, dev 82) beats two's (winner, dev 81) on dev, though two's test is higher
    assert rows == [
        "| Hindi fine | one: linear (lr_schedule=linear) | 82.00 +- 1.00 | 74.00 +- 1.00 | 70.00 +- 1.00 "
        "| +4.00 | 60.00 +- 1.00 | +14.00 |"
    ]
    assert text.startswith("# Results\n") and text.endswith("Text after it stays.\n")


def test_the_command_rewrites_or_checks(project, capsys):
    path = write(project / "README.md", README)
    assert main(["tables", str(path), "--check"]) == 1
    assert "differs from its reports" in capsys.readouterr().err
    assert main(["tables", str(path)]) == 0 and main(["tables", str(path), "--check"]) == 0


@pytest.mark.parametrize(
    "text, says",
    [
        ("<!-- distner table: experiments/one.yaml -->\nno end\n", "README.md:1: a table with no"),
        (
            "<!-- distner table: experiments/gone.yaml -->\n<!-- end distner table -->\n",
            "gone.yaml: file not found",
        ),
        (
            "<!-- distner table: against experiments/one.yaml -->\n<!-- end distner table -->\n",
            "at least one",
        ),
    ],
)
def test_a_bad_table_is_one_line(project, text, says):
    path = write(project / "README.md", text)
    with pytest.raises(DistnerError, match=None) as e:
        sync(path)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_an_experiment_without_a_report_names_the_command(project):
    (project / "out/two/report.json").unlink()
    path = write(project / "README.md", README)
    with pytest.raises(DistnerError, match="run distner pipeline --experiment experiments/two.yaml"):
        sync(path)
