"""Final reports from files only: retrain results, study results and the class report's table.

Reads `<retrain>/<cell>/retrain.json` (+ the final model's metrics.json), the study's files
(report/facts.py), and with --keep-reported the report.json already in `<out>` (cells retrained
elsewhere); writes `<out>/report.md` (report/markdown.py), `<out>/report.json` and PNG figures
(report/figures.py), all staged and moved into place together.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distner.core.errors import DistnerError
from distner.core.fileio import atomic_write_text, staged_files, write_json
from distner.core.interrupts import stop_requests
from distner.core.locks import folder_lock
from distner.core.paths import check_output_dir, check_output_file, check_within
from distner.model import runs
from distner.options import ReportOptions
from distner.records import (
    COMPARED,
    REPORT_JSON,
    RETRAIN_JSON,
    Against,
    Candidate,
    CellReport,
    Report,
    RetrainRecord,
    read_report,
    read_retrain,
    summarise,
)
from distner.report.facts import cell_study_facts, published_scores, relative
from distner.report.figures import figures
from distner.report.markdown import METHOD, render_markdown


def build_report(opts: ReportOptions) -> Report:
    """Collect every cell, write report.json, report.md and figures; returns the report.
    With `finished_only`, cells without retrain results are left out instead of being an error."""
    rdir, odir = Path(opts.retrain_dir).resolve(), check_output_dir(opts.report_dir, "--report-dir").resolve()
    for name in ("report.md", REPORT_JSON):
        check_output_file(check_within(odir / name, odir), "--out")  # no link out of the folder
    # one writer per report folder: two would mix their figures and files
    with folder_lock(odir, f"--out {odir}"):
        # a stop is acted on between cells and before the swap (the earlier report untouched: 130);
        # one held back during the swap, or later, finds the report written (exit 0, said)
        try:
            with stop_requests() as stop:
                report = _build_report(opts, rdir, odir, stop.check)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"report not written; {odir} is as it was") from None
        if stop.received is not None:
            stopped_after(odir)
        return report


def stopped_after(odir: Path) -> None:
    """A stop that came once the new report was in place: the report is written, and said so."""
    print(f"distner: the stop came after the report was in place; {odir} holds the new one", file=sys.stderr)


def _build_report(opts: ReportOptions, rdir: Path, odir: Path, check: Callable[[], None]) -> Report:
    cells, published = [str(c) for c in opts.cells], published_scores()
    kept = (
        _kept_cells(odir, [c for c in cells if not (rdir / c / RETRAIN_JSON).is_file()])
        if opts.keep_reported
        else {}
    )
    if opts.finished_only:
        cells = [c for c in cells if (rdir / c / RETRAIN_JSON).is_file() or c in kept] or cells[:1]
    # fail before writing
    loaded = {cell: read_retrain(rdir / cell / RETRAIN_JSON, cell) for cell in cells if cell not in kept}
    earlier = (read_report(Path(opts.against)), opts.against) if opts.against else None
    with staged_files(odir) as stage:  # figures, report.json and report.md land together or not at all
        report = _write_report(loaded, published, rdir, stage, earlier, kept, cells, check)
        check()  # a stop asked for while drawing: nothing moves into place
    return report


def _kept_cells(odir: Path, cells: list[str]) -> dict[str, CellReport]:
    """`cells`' entries in the report.json already in `odir` (--keep-reported), each checked to
    hold what a report writes and to have its figures beside it."""
    path = odir / REPORT_JSON
    if not path.is_file():
        return {}
    have = read_report(path)["cells"]
    out: dict[str, CellReport] = {}
    for cell in (c for c in cells if c in have):
        c = have[cell]
        missing = [k for k in CellReport.__required_keys__ if k not in c]
        if missing:
            raise DistnerError(f"{path}: cell {cell}: no {missing[0]!r}; it cannot be kept (--keep-reported)")
        gone = [f for f in c["figures"] if not (odir / f).is_file()]
        if gone:
            raise DistnerError(
                f"{path}: cell {cell}: its figure {odir / gone[0]} is missing (--keep-reported)"
            )
        out[cell] = c
    return out


def _against(report: Report, earlier: Report, source: str) -> Against:
    """Per cell in both: this report's tuned scores, the earlier one's, and the gain of the means."""
    out = Against(source=relative(source), cells={})
    for cell, c in report["cells"].items():
        old = earlier["cells"].get(cell)
        if old is None:
            continue
        out["cells"][cell] = {
            key: {
                "this": c["tuned"][key],
                "earlier": old["tuned"][key],
                "gain": c["tuned"][key]["mean"] - old["tuned"][key]["mean"],
            }
            for key in COMPARED
        }
    return out


def _write_report(
    loaded: dict[str, RetrainRecord],
    published: dict[str, Any],
    rdir: Path,
    odir: Path,
    earlier: tuple[Report, str] | None,
    kept: dict[str, CellReport],
    order: list[str],
    check: Callable[[], None],
) -> Report:
    report = Report(cells={}, method=METHOD, published_source=published["source"])
    odir_report = _earlier_report(odir)
    for cell in order:  # the cells asked for, each loaded here or kept
        check()
        if cell in kept:  # as the earlier report has it; its figures stay where they are
            report["cells"][cell] = kept[cell]
            continue
        r = loaded[cell]
        lang, gran = r["lang"], r["granularity"]
        selected = _selected(r)
        tuned, base = r["variants"][selected], r["variants"].get("baseline")
        final_dir = runs.inside_cell(rdir / cell, r["final"]["run_dir"], rdir / cell / RETRAIN_JSON)
        final_metrics = _final_test_metrics(final_dir, cell, odir_report)
        pub = published["results"][lang][gran]
        c = CellReport(
            lang=lang,
            granularity=gran,
            seeds=r["seeds"],
            train_on=r["train_on"],
            tuned=tuned["test"],
            baseline=None if base is None else base["test"],
            gain=None
            if base is None
            else {k: tuned["test"][k]["mean"] - base["test"][k]["mean"] for k in COMPARED},
            published_seed_style={"accuracy": pub["accuracy"], "macro_f1": pub["macro"]["f1"]},
            hyperparameters={"tuned": tuned["config"], "baseline": {} if base is None else base["config"]},
            final={
                "run_dir": relative(str(final_dir)),
                "per_type": final_metrics["per_type"],
                "coarse_confusion": final_metrics["coarse_confusion"],
            },
            study=cell_study_facts(r["study"], cell, odir_report),
            runs={
                n: [{**run, "run_dir": str(relative(str(rdir / cell / run["run_dir"])))} for run in v["runs"]]
                for n, v in r["variants"].items()
            },
            figures=[],
            selected=selected,
            candidates=_candidates(r),
        )
        c["figures"] = figures(cell, c, odir)
        report["cells"][cell] = c
    if earlier is not None:
        report["against"] = _against(report, *earlier)
    write_json(odir / REPORT_JSON, report)
    atomic_write_text(odir / "report.md", render_markdown(report))
    return report


def _earlier_report(stage: Path) -> Report | None:
    """The report.json this one replaces (the stage is inside the report folder), if readable."""
    for path in (stage / REPORT_JSON, stage.parent / REPORT_JSON):
        if path.is_file():
            try:
                return read_report(path)
            except DistnerError:
                return None
    return None


def _final_test_metrics(final_dir: Path, cell: str, earlier: Report | None) -> dict[str, Any]:
    """The final model's test metrics from its run folder. A folder this machine does not have (a
    clone holds the published records, not the git-ignored runs) is taken from the report written
    before when that names the same run, else has no per-type scores; a folder that is here but
    damaged is one line naming the file."""
    if final_dir.exists():
        return dict(runs.read_metrics(final_dir)["test"])
    old = None if earlier is None else earlier["cells"].get(cell)
    if old is not None and old["final"]["run_dir"] == relative(str(final_dir)):
        return {"per_type": old["final"]["per_type"], "coarse_confusion": old["final"]["coarse_confusion"]}
    return {"per_type": {}, "coarse_confusion": None}


def _selected(r: RetrainRecord) -> str:
    """The variant the record picked; records written before variants name the run instead."""
    if "variant" in r["final"]:
        return r["final"]["variant"]
    run = r["final"]["run_dir"]
    names = [n for n in r["variants"] if n != "baseline"]
    return next((n for n in names if any(x["run_dir"] == run for x in r["variants"][n]["runs"])), names[0])


def _candidates(r: RetrainRecord) -> dict[str, Candidate]:
    """Every variant but the baseline, with what it sets beside the first and its dev and test means."""
    names = [n for n in r["variants"] if n != "baseline"]
    first = r["variants"][names[0]]["config"]
    out: dict[str, Candidate] = {}
    for n in names:
        v = r["variants"][n]
        out[n] = Candidate(
            dev=v.get("dev") or summarise(v["runs"], "dev"),
            test=v["test"],
            set={k: x for k, x in v["config"].items() if first.get(k) != x and k != "seed"},
        )
    return out
