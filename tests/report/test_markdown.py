"""report.md from a report: the committed reports' Markdown is what render_markdown writes from
their report.json, and the sections a report without a baseline, per-type scores or seed-style
scores, or with an earlier report to compare, shows."""

from __future__ import annotations

import copy

import pytest

from distner.records import read_report
from distner.report.markdown import render_markdown
from distner.report.render import _against

from ..helpers import ROOT

REPORTS = ["results", "results/pretrained", "results/pretrained/focus"]


@pytest.mark.parametrize("folder", REPORTS)
def test_the_committed_report_md_is_rendered_from_its_report_json(folder):
    d = ROOT / folder
    assert render_markdown(read_report(d / "report.json")) == (d / "report.md").read_text(encoding="utf-8")


def test_missing_scores_and_an_earlier_report_have_their_own_lines():
    report = read_report(ROOT / "results" / "report.json")
    earlier = read_report(ROOT / "results" / "pretrained" / "report.json")
    report["against"] = _against(report, earlier, "x/r.json")
    cell, c = next(iter(report["cells"].items()))
    c = report["cells"][cell] = copy.deepcopy(c)
    c["baseline"] = c["gain"] = None
    c["tuned"] = {k: v for k, v in c["tuned"].items() if not k.startswith("seed_style")}
    c["final"]["per_type"] = {}
    c["study"]["trials"] = c["study"]["gpu_hours"] = None
    c["study"]["importances"] = {"lr": 0.5, "hidden_dim": 0.25}
    md = render_markdown(report)
    row = next(line for line in md.splitlines() if line.startswith(f"| {cell} "))
    cols = [x.strip() for x in row.strip("|").split("|")]
    assert [cols[2], cols[3], cols[5], cols[6], cols[8], cols[9]] == ["-"] * 6
    assert "## Against an earlier report" in md and "the tuned models of `x/r.json`" in md
    assert f"Per-type scores need the final model's run folder (`{c['final']['run_dir']}`)" in md
    assert "Optuna parameter importances: lr 0.50, hidden_dim 0.25." in md
    assert md.index("## Against an earlier report") < md.index(f"## {cell}") < md.index("## Method")
