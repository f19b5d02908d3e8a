"""Final reports from files only: retrain results, study results and the class report's table.

Reads `<retrain>/<cell>/retrain.json` (+ the final model's metrics.json), the study's `trials.csv`,
`summary.json` and `optuna.db` (through study.StudyFiles), and with --keep-reported the
report.json already in `<out>` (cells retrained elsewhere); writes `<out>/report.md`,
`<out>/report.json` and PNG figures.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from distner.config import REFERENCE_SEQ_LEN
from distner.core.errors import DistnerError
from distner.core.fileio import atomic_write_text, staged_files, write_json, write_output
from distner.core.interrupts import stop_requests
from distner.core.locks import folder_lock
from distner.core.paths import check_output_dir, check_output_file, check_within, is_remote
from distner.model import runs
from distner.options import ReportOptions
from distner.records import (
    COMPARED,
    REPORT_JSON,
    RETRAIN_JSON,
    SELECTED_BY,
    Against,
    Candidate,
    CellReport,
    Report,
    RetrainRecord,
    StudyFacts,
    read_report,
    read_retrain,
    summarise,
)
from distner.report.tables import candidates_table, markdown_table, mean_std, tuning_bought_table
from distner.tune.study import StudyFiles

METHOD = f"""\
**Method.** Each cell (language x granularity) was tuned on the dev split only: a Ray Tune study
in which Optuna's TPE sampler proposed configurations (the class report's configuration, the
reference, was always trial one) and ASHA stopped weak trials early, all scored by dev entity
macro-F1. The best configuration and the reference baseline were then retrained from scratch with
several seeds and each run's best-dev-epoch model was scored once on the test split; tables show
mean +- standard deviation over seeds. Test data never influenced a choice. **Entity macro-F1** is
the official MultiCoNER measure: exact-match spans (type and both boundaries), F1 per entity type,
averaged over types; micro-F1 pools all spans. **Padded-token** numbers reproduce the class
report's method: token-level scikit-learn scores with every sentence padded or truncated to
{REFERENCE_SEQ_LEN} tokens and padded positions counted as a class of their own. Most positions are
padding or `O`, which any model gets right, so accuracy sits near 0.9 even for a model that finds
no entity at all: those numbers are inflated and are shown only to put ours beside the published
ones. The published figures come from a different test split (the official one), so compare them only loosely.
"""


def _published() -> dict[str, Any]:
    return json.loads(resources.files("distner").joinpath("reference/seed_report.json").read_text())


def _rel(path: str | None) -> str | None:
    """A local path as written into reports: relative to the folder distner runs in (the project
    root), so committed reports name no folder of the machine that made them."""
    if not path or is_remote(path):
        return path
    return os.path.relpath(Path(path).resolve(), Path.cwd())


def study_facts(study: str | None) -> StudyFacts:
    """Trials, best-so-far curve and Optuna importances, when the study's files are at hand."""
    out = StudyFacts(
        path=_rel(study), trials=None, gpu_hours=None, best_so_far=[], importances=None, start_from=[]
    )
    if not study or is_remote(study) or not Path(study).is_dir():
        return out
    files = StudyFiles(Path(study))
    s = files.summary()
    if s is not None:
        out["trials"], out["gpu_hours"] = s["trials"], s["gpu_hours"]
        out["best_trial"], out["best_dev_f1"] = s["best_trial"], s["best_dev_f1"]
        out["baseline_dev_f1"], out["trial_seconds"] = s["baseline_dev_f1"], s["trial_seconds"]
        out["wall_seconds"], out["active_seconds"] = s["wall_seconds"], s.get("active_seconds")
        # the warm-start trials: e.g. another cell's winner, transferred unchanged
        out["start_from"] = [{**x, "config": _rel(x["config"]) or x["config"]} for x in s["start_from"]]
    if files.has_trials():
        rows = files.trials()
        best, curve = -math.inf, list[float]()
        for row in rows:
            v = row.best_dev_f1
            if not math.isnan(v):
                best = max(best, v)
            curve.append(best if best > -math.inf else float("nan"))
        out["best_so_far"] = curve
        # how far the winner and the reference baseline got before ASHA stopped them (or the end)
        best_id = s.get("best_trial") if s else None
        winner = next((r for r in rows if r.trial == best_id), None)
        baseline = next((r for r in rows if r.baseline), None)
        if winner is not None:
            out["best_epochs_run"] = winner.epochs_run
        if baseline is not None:
            out["baseline_epochs_run"] = baseline.epochs_run
    if files.optuna_db is not None:
        out["importances"] = _importances(files.optuna_db)
    return out


def _importances(db: Path) -> dict[str, float] | None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{db}"
    try:
        name = optuna.get_all_study_names(storage)[0]
        study = optuna.load_study(study_name=name, storage=storage)
        # PED-ANOVA named, not left to Optuna's default (fANOVA before 5.0); ties ordered by name,
        # as Optuna lists tied parameters in an order that changes between processes
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
        )
        return {k: float(v) for k, v in sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))}
    except (RuntimeError, ValueError, IndexError):  # too few trials, or no parameter varied
        return None
    except Exception as e:  # SQLAlchemy's errors: not a SQLite file, or not Optuna's tables
        if type(e).__module__.startswith("sqlalchemy"):
            raise DistnerError(f"{db}: not an Optuna study database ({type(e).__name__})") from None
        raise


def _figures(cell: str, c: CellReport, out: Path) -> list[str]:
    # Figure objects, not pyplot: no backend is chosen for the process and nothing global is kept
    import matplotlib.ticker
    from matplotlib.figure import Figure

    names = []
    curve = c["study"]["best_so_far"]
    if curve:
        fig = Figure(figsize=(6, 3.5))
        ax = fig.subplots()
        ax.plot(range(1, len(curve) + 1), [100 * v for v in curve], marker="o", label="best so far")
        baseline = c["study"].get("baseline_dev_f1")
        if baseline is not None:
            ax.axhline(
                100 * baseline,
                color="grey",
                ls="--",
                label="reference baseline (trial 1)",
            )
        ax.set(xlabel="trial", ylabel="dev entity macro-F1 (%)", title=f"{cell}: study progress")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.legend(loc="lower right")
        fig.tight_layout()
        names.append(_save(fig, out / f"{cell}-study.png"))
    imp = c["study"]["importances"]
    if imp:
        fig = Figure(figsize=(6, 0.4 * len(imp) + 1.2))
        ax = fig.subplots()
        keys = list(imp)[::-1]
        ax.barh(keys, [imp[k] for k in keys])
        ax.set(xlabel="importance (Optuna PED-ANOVA)", title=f"{cell}: what mattered")
        fig.tight_layout()
        names.append(_save(fig, out / f"{cell}-importance.png"))
    cm = c["final"]["coarse_confusion"]
    if cm is None:  # the final model's run folder is not on this machine
        return names
    m = [[v / max(1, sum(row)) for v in row] for row in cm["matrix"]]
    fig = Figure(figsize=(5.5, 4.8))
    ax = fig.subplots()
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cm["labels"])), cm["labels"], rotation=45, ha="right")
    ax.set_yticks(range(len(cm["labels"])), cm["labels"])
    for i, row in enumerate(cm["matrix"]):
        for j, v in enumerate(row):
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if m[i][j] > 0.5 else "black",
            )
    ax.set(xlabel="predicted", ylabel="gold", title=f"{cell}: token confusion, coarse groups (test)")
    fig.colorbar(im, ax=ax, fraction=0.046, label="row share")
    fig.tight_layout()
    names.append(_save(fig, out / f"{cell}-confusion.png"))
    return names


def _save(fig: Any, path: Path) -> str:
    write_output(path, lambda f: fig.savefig(f, format="png", dpi=110))
    return path.name


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
    cells, published = [str(c) for c in opts.cells], _published()
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
    out = Against(source=_rel(source), cells={})
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
                "run_dir": _rel(str(final_dir)),
                "per_type": final_metrics["per_type"],
                "coarse_confusion": final_metrics["coarse_confusion"],
            },
            study=_study_facts(r["study"], cell, odir_report),
            runs={
                n: [{**run, "run_dir": str(_rel(str(rdir / cell / run["run_dir"])))} for run in v["runs"]]
                for n, v in r["variants"].items()
            },
            figures=[],
            selected=selected,
            candidates=_candidates(r),
        )
        c["figures"] = _figures(cell, c, odir)
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


def _study_facts(study: str | None, cell: str, earlier: Report | None) -> StudyFacts:
    """The study's facts from its files; Optuna's importances, which need its optuna.db (a
    published study may hold only trials.csv and summary.json), from the report written before
    when that was of the same study and winner."""
    facts = study_facts(study)
    old = None if earlier is None else earlier["cells"].get(cell)
    if facts["importances"] is None and old is not None and old["study"].get("importances"):
        if old["study"].get("best_trial") == facts.get("best_trial") is not None:
            facts["importances"] = old["study"]["importances"]
    return facts


def _final_test_metrics(final_dir: Path, cell: str, earlier: Report | None) -> dict[str, Any]:
    """The final model's test metrics from its run folder. A folder this machine does not have (a
    clone holds the published records, not the git-ignored runs) is taken from the report written
    before when that names the same run, else has no per-type scores; a folder that is here but
    damaged is one line naming the file."""
    if final_dir.exists():
        return dict(runs.read_metrics(final_dir)["test"])
    old = None if earlier is None else earlier["cells"].get(cell)
    if old is not None and old["final"]["run_dir"] == _rel(str(final_dir)):
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


def render_markdown(report: Report) -> str:
    rows = [
        [
            "cell",
            "tuned macro-F1",
            "baseline macro-F1",
            "gain",
            "tuned micro-F1",
            "baseline micro-F1",
            "padded-token acc / macro-F1, ours* ",
            "published acc / macro-F1*",
            "trials",
            "GPU-h",
        ]
    ]
    for cell, c in report["cells"].items():
        ss, pub, st, base, gain = c["tuned"], c["published_seed_style"], c["study"], c["baseline"], c["gain"]
        rows.append(
            [
                cell,
                mean_std(c["tuned"]["entity_macro_f1"]),
                "-" if base is None else mean_std(base["entity_macro_f1"]),
                "-" if gain is None else f"{100 * gain['entity_macro_f1']:+.2f}",
                mean_std(c["tuned"]["entity_micro_f1"]),
                "-" if base is None else mean_std(base["entity_micro_f1"]),
                # a variant whose runs kept only entity scores (older records) has none
                f"{100 * ss['seed_style_accuracy']['mean']:.1f} / "
                f"{100 * ss['seed_style_macro_f1']['mean']:.1f}"
                if "seed_style_accuracy" in ss
                else "-",
                f"{100 * pub['accuracy']:.0f} / {100 * pub['macro_f1']:.0f}",
                "-" if st["trials"] is None else str(st["trials"]),
                "-" if st["gpu_hours"] is None else f"{st['gpu_hours']:.3f}",
            ]
        )
    parts = [
        "# distner report",
        "",
        "Test-split entity-level scores, mean +- std over retraining seeds (percent).",
        "",
        markdown_table(rows),
        "",
        "\\* inflated token-level numbers (padding counted); published ones are the class report's "
        f"({report['published_source']}), on a different test split.",
        "",
    ]
    if report.get("against"):
        a = report["against"]
        rows = [
            ["cell", "tuned macro-F1", "earlier tuned", "gain", "tuned micro-F1", "earlier tuned", "gain"]
        ]
        for cell, g in a["cells"].items():
            rows.append(
                [cell]
                + [
                    x
                    for key in COMPARED
                    for x in (
                        mean_std(g[key]["this"]),
                        mean_std(g[key]["earlier"]),
                        f"{100 * g[key]['gain']:+.2f}",
                    )
                ]
            )
        parts += [
            "## Against an earlier report",
            "",
            f"This report's tuned models against the tuned models of `{a['source']}` (test, entity level, "
            "mean +- std over seeds; the gain is the difference of the means).",
            "",
            markdown_table(rows),
            "",
        ]
    for cell, c in report["cells"].items():
        parts += [
            f"## {cell}",
            "",
            f"Seeds {c['seeds']}, trained on {c['train_on']}; final model: `{c['final']['run_dir']}`.",
            "",
        ]
        keys = [k for k in c["hyperparameters"]["tuned"] if not k.startswith("max_")]
        hp = [["hyperparameter", "tuned", "reference baseline"]]
        tuned_hp, base_hp = c["hyperparameters"]["tuned"], c["hyperparameters"]["baseline"]
        hp += [
            [k, str(tuned_hp[k]), str(base_hp.get(k, "-"))]
            for k in keys
            if tuned_hp[k] != base_hp.get(k) or k in ("epochs", "lr")
        ]
        parts += ["### Winning hyperparameters", "", markdown_table(hp), ""]
        if len(c.get("candidates", {})) > 1:
            parts += [
                f"### Candidates (picked on {SELECTED_BY}: {c.get('selected')})",
                "",
                candidates_table(c["candidates"], c.get("selected")),
                "",
            ]
        pt = [["type", "precision", "recall", "F1", "support"]]
        pt += [
            [
                t,
                f"{100 * v['precision']:.1f}",
                f"{100 * v['recall']:.1f}",
                f"{100 * v['f1']:.1f}",
                str(v["support"]),
            ]
            for t, v in sorted(c["final"]["per_type"].items())
        ]
        if c["final"]["per_type"]:
            parts += ["### Per type (final model, test)", "", markdown_table(pt), ""]
        else:
            parts += [
                f"Per-type scores need the final model's run folder (`{c['final']['run_dir']}`), "
                "which is not on the machine that wrote this report.",
                "",
            ]
        bought = tuning_bought_table(c["study"])
        if bought:
            parts += ["### What tuning this cell bought (dev, inside the study)", "", bought, ""]
        if c["study"]["importances"]:
            imp = ", ".join(f"{k} {v:.2f}" for k, v in c["study"]["importances"].items())
            parts += [f"Optuna parameter importances: {imp}.", ""]
        parts += [f"![{f}]({f})" for f in c["figures"]] + [""]
    parts += ["## Method", "", report["method"]]
    return "\n".join(parts)
