"""The published results under results/ hold together: every committed config trains with
`distner train --config`, report.json has at least 3 seeds per cell and no machine paths, and the
README and docs/metrics.md tables quote report.json's numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from distner.cli.main import main
from distner.config import load_config, read_yaml_mapping
from distner.report.tables import mean_std

from .helpers import ROOT

RESULTS = ROOT / "results"
CONFIGS = sorted(RESULTS.glob("best/*.yaml")) + sorted(RESULTS.glob("configs/*.yaml"))
# issue 21's winners (the extra's levers): the first study's, and the focus study's where it ran
PRETRAINED = sorted(RESULTS.glob("pretrained/best/*.yaml"))
PRETRAINED += sorted(RESULTS.glob("pretrained/focus/best/*.yaml"))
LANG_NAMES = {"Hindi": "hi", "Bengali": "bn", "English": "en"}


def _report() -> dict:
    return json.loads((RESULTS / "report.json").read_text(encoding="utf-8"))


def _cell(path: Path) -> tuple[str, str]:
    """best/<lang>-<gran>.yaml names its cell; the earlier study's configs/ were all Hindi fine."""
    name = path.stem if path.parent.name == "best" else "hi-fine"
    lang, gran = name.split("-")[:2]
    return lang, gran


def test_every_config_is_checked():
    assert {p.stem for p in RESULTS.glob("best/*.yaml")} == set(_report()["cells"])
    assert {p.name for p in CONFIGS} >= {"hi-fine.yaml", "hi-fine-levers.yaml", "lample.yaml"}
    assert {p.stem for p in PRETRAINED} >= {"hi-fine", "en-fine"}


def _label(path: Path) -> str:
    return str(path.relative_to(RESULTS).with_suffix(""))


@pytest.mark.parametrize(
    "config",
    # the pretrained configs encode whole splits with e5 and train its layers: heavy, not unit
    [*CONFIGS, *(pytest.param(p, marks=pytest.mark.heavy) for p in PRETRAINED)],
    ids=_label,
)
def test_committed_config_trains(config, small_synthetic_data, tmp_path, capsys):
    """The published config as it is (only its length cut), on the small synthetic corpus (the
    e5 features of its whole splits are most of the cost), through the command a reader would
    run (distner's `main`, in this process: the interpreter's start is not what is checked)."""
    lang, gran = _cell(config)
    out = tmp_path / "run"
    code = main([
        "train", "--lang", lang, "--granularity", gran, "--config", str(config),
        "--set", "epochs=1", "--set", "max_train_sentences=64", "--set", "max_eval_sentences=32",
        "--data-dir", str(small_synthetic_data), "--out", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err[-2000:]
    saved = read_yaml_mapping(out / "config.yaml")["config"]
    published = load_config(config).to_flat()
    # every value of the file (typed as distner reads it) reached the run, bar the three cut above
    cut = {"epochs", "max_train_sentences", "max_eval_sentences"}
    assert {k: v for k, v in saved.items() if k not in cut} == {
        k: v for k, v in published.items() if k not in cut
    }
    assert set(json.loads((out / "metrics.json").read_text())["test"]) >= {"entity_macro_f1", "per_type"}


def test_report_has_three_seeds_per_cell_and_no_machine_paths():
    report = _report()
    for cell, c in report["cells"].items():
        assert len(c["seeds"]) >= 3, cell
        for variant, runs in c["runs"].items():
            assert sorted(r["seed"] for r in runs) == sorted(c["seeds"]), (cell, variant)
        assert c["tuned"]["entity_macro_f1"]["n"] == len(c["seeds"])
    for path in RESULTS.rglob("*"):
        if path.suffix in (".json", ".md", ".csv", ".yaml", ".tsv"):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"(?<![\w.])/(work|root|home|tmp|Users)/", text), path


def _table_rows(text: str, first: str) -> dict[str, list[str]]:
    """The rows of the Markdown table whose header starts with `| first |`, by first cell."""
    block = text[text.index(f"| {first} |") :].split("\n\n")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]
    return {r[0]: r[1:] for r in rows}


def test_readme_and_metrics_doc_quote_report_json():
    cells = _report()["cells"]
    readme = _table_rows((ROOT / "README.md").read_text(encoding="utf-8"), "cell")
    metrics = _table_rows((ROOT / "docs" / "metrics.md").read_text(encoding="utf-8"), "cell")
    quoted = 0
    for name, row in readme.items():
        words = name.split()
        if words[0] not in LANG_NAMES:
            continue  # "the other N cells | queued"
        cell = f"{LANG_NAMES[words[0]]}-{words[1]}"
        c = cells[cell]
        gain = f"{100 * c['gain']['entity_macro_f1']:+.2f}"
        base, tuned = (mean_std(c[v]["entity_macro_f1"]) for v in ("baseline", "tuned"))
        assert row[:3] == [base, tuned, gain], cell
        assert metrics[cell][:3] == row[:2] + [f"**{gain}**"], cell
        quoted += 1
    assert quoted == len(cells), "every reported cell is in the README's table"
    queued = [k for k, r in metrics.items() if r[-1] == "queued"]
    assert set(queued).isdisjoint(cells), "a finished cell is still marked queued in docs/metrics.md"


def _pretrained_reports() -> tuple[dict, dict]:
    """The first study's report, and the focus study's (results/run_pretrained_focus.sh: it reports
    only a cell whose new winner beat the first round's on dev); empty where it has not run."""
    first = json.loads((RESULTS / "pretrained" / "report.json").read_text(encoding="utf-8"))
    path = RESULTS / "pretrained" / "focus" / "report.json"
    focus = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"cells": {}}
    return first, focus


def _finetuned(cell: str, report: dict) -> dict | None:
    """The results/run_finetune.sh variant dev picks for the cell (results/pretrained/finetune*/: its
    winner with e5's top layers trained, or with another lever), if any: among those with the same
    seeds as the winner's retrain, the highest mean dev macro-F1, when it beats the winner's."""
    runs = report["cells"][cell]["runs"]["tuned"]
    best, best_dev = None, sum(r["dev"]["entity_macro_f1"] for r in runs) / len(runs)
    for path in sorted((RESULTS / "pretrained").glob(f"finetune*/{cell}.json")):
        ft = json.loads(path.read_text(encoding="utf-8"))
        if sorted(r["seed"] for r in ft["runs"]) != sorted(r["seed"] for r in runs):
            continue  # seeds still to come: not a candidate yet
        if ft["dev"]["mean"] > best_dev:
            best, best_dev = ft, ft["dev"]["mean"]
    return best


def test_readme_quotes_the_pretrained_report():
    """The README's second table has one row per finished cell, quoting the model dev picks: a
    run_finetune.sh variant where one beat the winner on dev (the row name carries its label),
    else the focus study's report for a cell it holds (its winner is the better on dev), else
    results/pretrained/report.json."""
    first, focus = _pretrained_reports()
    readme = _table_rows((ROOT / "README.md").read_text(encoding="utf-8"), "pretrained cell")
    quoted = set()
    for name, row in readme.items():
        words = name.replace(",", " ").split()
        cell = f"{LANG_NAMES[words[0]]}-{words[1]}"
        report = focus if cell in focus["cells"] else first
        assert report["against"]["source"] == "results/report.json"
        f1 = report["against"]["cells"][cell]["entity_macro_f1"]
        baseline = mean_std(report["cells"][cell]["baseline"]["entity_macro_f1"])
        finetuned = _finetuned(cell, report)
        label = finetuned.get("label", "trained") if finetuned else None
        assert (label is not None and " ".join(label.replace(",", " ").split()) in " ".join(words)) or (
            label is None and "trained" not in name and "decay" not in name
        ), cell
        this = finetuned["test"] if finetuned else f1["this"]
        gain = f"{100 * (this['mean'] - f1['earlier']['mean']):+.2f}"
        assert row == [mean_std(f1["earlier"]), mean_std(this), gain, baseline], cell
        quoted.add(cell)
    assert quoted == set(first["cells"]) | set(focus["cells"]), "every reported cell is in the README"
