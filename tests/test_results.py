"""The published results under results/ hold together: every committed config trains with
`distner train --config`, report.json has at least 3 seeds per cell and no machine paths, and the
README and docs/metrics.md tables are the experiments' reports, each row the dev pick."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from distner.cli.main import main
from distner.config import load_config, read_yaml_mapping
from distner.experiments import load_experiment
from distner.report.readme import END, START, sync

from .helpers import ROOT, broken_links

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
        for variant in (c["selected"], "baseline"):  # an ablation variant may run fewer seeds
            assert sorted(r["seed"] for r in c["runs"][variant]) == sorted(c["seeds"]), (cell, variant)
        assert c["tuned"]["entity_macro_f1"]["n"] == len(c["seeds"])
    for path in RESULTS.rglob("*"):
        if path.suffix in (".json", ".md", ".csv", ".yaml", ".tsv"):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"(?<![\w.])/(work|root|home|tmp|Users)/", text), path


def test_readme_and_metrics_doc_tables_are_the_reports(monkeypatch):
    """The result tables are what `distner tables` writes from the experiments' report.json."""
    monkeypatch.chdir(ROOT)  # experiment files name paths relative to the project root
    for doc in ("README.md", "docs/metrics.md"):
        assert sync(doc, check=True) == [], f"{doc}: run distner tables {doc}"


def _tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(experiment files, rows) of every distner table in a Markdown text."""
    out = []
    for m in START.finditer(text):
        files = m.group("spec").split(" against ")[0].split()  # the experiments shown
        block = text[m.end() : text.index(END, m.end())]
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]
        out.append((files, rows))
    return out


def _dev_mean(variant: dict) -> float:
    return statistics.fmean(r["dev"]["entity_macro_f1"] for r in variant["runs"])


def test_each_published_row_is_the_dev_pick_of_its_experiments(monkeypatch):
    """Each row names an experiment and variant, and that variant is, of every variant trained on
    all the seeds in those experiments' published records, the best on dev (computed here from
    the records, not from the reports that picked it)."""
    monkeypatch.chdir(ROOT)
    tables = _tables((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(tables) == 2
    for files, rows in tables:
        exps = {e.name: e for e in map(load_experiment, files)}
        for row in rows:
            lang, gran = row[0].split()
            cell = f"{LANG_NAMES[lang]}-{gran}"
            name, variant = row[1].split(" (")[0].split(": ")
            candidates = {}
            for exp in exps.values():
                path = Path(exp.publish) / "retrain" / cell / "retrain.json"
                if not path.is_file():
                    continue
                record = json.loads(path.read_text(encoding="utf-8"))
                for v, rec in record["variants"].items():
                    seeds = {r["seed"] for r in rec["runs"]}
                    if (
                        v != "baseline"
                        and seeds >= set(record["seeds"])
                        and all(r["dev"] for r in rec["runs"])
                    ):
                        candidates[exp.name, v] = _dev_mean(rec)
            assert max(candidates, key=candidates.__getitem__) == (name, variant), (cell, candidates)


def test_every_experiment_behind_a_table_is_done(monkeypatch, capsys):
    """`distner pipeline --experiment F --dry-run` says every step done for each of them (the
    experiments a table compares against are shown in a table of their own)."""
    monkeypatch.chdir(ROOT)
    files = {
        f
        for doc in ("README.md", "docs/metrics.md")
        for fs, _ in _tables((ROOT / doc).read_text())
        for f in fs
    }
    assert files == {
        "experiments/six-cells.yaml",
        "experiments/pretrained.yaml",
        "experiments/pretrained-focus.yaml",
    }
    for f in sorted(files):
        assert main(["pipeline", "--experiment", f, "--dry-run"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines and all(line.startswith("done  ") for line in lines), (
            f,
            [x for x in lines if "todo" in x],
        )


# A measured number typed into prose: a decimal (a score, std, ratio, version of a run's figure) or
# an integer with a unit of time, throughput, size or share. Code blocks (commands) and link
# targets are not prose. Configuration in prose is written without decimals (`encoder_lr` 1e-4).
TYPED_NUMBER = re.compile(
    r"\d+\.\d+|\d[\d,]*\s?(?:%|ms\b|s\b|min\b|minutes?\b|hours?\b|h\b|tokens/s|MB\b|GB\b|MiB\b)"
)


def _typed_numbers(text: str) -> list[str]:
    """'line: number' for each measured-looking number in a Markdown text's prose."""
    found, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            prose = re.sub(r"\]\([^)]*\)", "]", line)  # a link's target is a path, not prose
            found += [f"{n}: {m.group()}" for m in TYPED_NUMBER.finditer(prose)]
    return found


def test_hand_written_results_notes_type_no_measured_number():
    """Issue 42: no number in results/ is typed by hand. The notes there (everything but the
    report.md files `distner report` writes) point to the file that holds a score, gain, std or
    time (report.md, report.json, a record, a study's files, timings.tsv, a benchmark's JSON
    lines) instead of quoting it, so the prose cannot drift from the files."""
    pages = sorted(RESULTS.rglob("*.md"))
    written = [p for p in pages if p.name == "report.md"]
    notes = [p for p in pages if p.name != "report.md"]
    assert {"README.md", "pretrained/README.md", "performance/README.md"} <= {
        str(p.relative_to(RESULTS)) for p in notes
    }
    for page in written:  # generated, so free to hold numbers
        assert page.read_text(encoding="utf-8").startswith("# distner report\n"), page
    typed = {
        str(p.relative_to(ROOT)): hits
        for p in notes
        if (hits := _typed_numbers(p.read_text(encoding="utf-8")))
    }
    assert typed == {}, f"point to the file that holds these numbers instead: {typed}"


def test_hand_written_results_notes_link_to_what_exists():
    """Their pointers lead somewhere: every relative link's file, and its heading if it names one."""
    for page in (p for p in RESULTS.rglob("*.md") if p.name != "report.md"):
        assert broken_links(page) == [], page


def test_typed_number_check_catches_a_quoted_score():
    text = (
        "Hindi fine scored 75.66 +- 0.19.\n\n```text\ndistner x --set lr=0.01\n```\n[a](b/1.2.md) in 1,129 s"
    )
    assert _typed_numbers(text) == ["1: 75.66", "1: 0.19", "6: 1,129 s"]
