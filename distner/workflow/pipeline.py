"""tune -> best config -> retrain -> report for every cell, skipping steps whose outputs exist.

Step outputs that mark a step done: `best/<cell>.yaml` (tune), `<retrain>/<cell>/retrain.json`
(retrain). The report is cheap and always rebuilt. An interrupted pipeline reruns to completion:
an unfinished study is resumed, and retraining skips seed runs that already wrote metrics.json.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from distner.core.fileio import read_json
from distner.core.paths import check_output_dir, is_remote
from distner.labels import Cell, normalize_granularity, normalize_lang
from distner.options import ReportOptions, RetrainOptions, TuneOptions
from distner.records import Report
from distner.report.render import build_report
from distner.tune.driver import run_study, study_exists
from distner.tune.study import best_meta
from distner.workflow.retrain import retrain_cell


def _made_by(best: Path, study_name: str) -> bool:
    """best/<cell>.yaml exists and came from this study (not, say, an earlier smoke study)."""
    if not best.is_file():
        return False
    study = (best_meta(best) or {}).get("study", "")
    return Path(study).name == study_name


def _retrained_from(done: Path, best: Path) -> bool:
    """retrain.json was made from the current best config (same study and trial)."""
    done_meta = read_json(done)
    return isinstance(done_meta, dict) and done_meta.get("best_meta") == best_meta(best)


def run_pipeline(
    tune: TuneOptions,
    retrain: RetrainOptions,
    report: ReportOptions,
    smoke: bool = False,
    preset_samples: bool = False,
) -> Report:
    """Every cell of `report` (its langs x granularities), then the report over them. Each cell's
    tune and retrain options are `tune` and `retrain` with the cell filled in. `preset_samples`:
    tune.num_samples is a preset (--smoke's), not asked for: a resumed study keeps its own count."""
    langs = [normalize_lang(x) for x in report.langs]
    granularities = [normalize_granularity(g) for g in report.granularities]
    report_out = report.report_dir
    # every step checks its own outputs; checking all of them first fails before hours of tuning
    if not is_remote(tune.storage):
        check_output_dir(tune.storage, "--storage")
    check_output_dir(tune.best_dir, "--best-dir")
    check_output_dir(retrain.retrain_dir, "--retrain-dir")
    check_output_dir(report_out, "--report-dir")
    for lang in langs:
        for gran in granularities:
            cell = Cell(lang, gran)
            best = Path(tune.best_dir) / f"{cell}.yaml"
            name = f"{cell}-smoke" if smoke else cell
            if _made_by(best, name):
                print(f"pipeline: {cell}: tune  - done ({best})", file=sys.stderr)
            else:
                resume = study_exists(tune.storage, name)
                print(
                    f"pipeline: {cell}: tune  - {'resuming' if resume else 'starting'} study {name}",
                    file=sys.stderr,
                )
                count = None if resume and preset_samples else tune.num_samples
                run_study(
                    replace(tune, lang=lang, granularity=gran, name=name, resume=resume, num_samples=count)
                )
            done = Path(retrain.retrain_dir) / cell / "retrain.json"
            if done.is_file() and _retrained_from(done, best):
                print(f"pipeline: {cell}: retrain - done ({done})", file=sys.stderr)
            else:
                print(
                    f"pipeline: {cell}: retrain - {retrain.seeds} seeds, tuned and baseline", file=sys.stderr
                )
                retrain_cell(
                    replace(
                        retrain,
                        lang=lang,
                        granularity=gran,
                        config=None,
                        best_dir=tune.best_dir,
                        storage=tune.storage,
                    )
                )
    result = build_report(
        replace(
            report, langs=tuple(langs), granularities=tuple(granularities), retrain_dir=retrain.retrain_dir
        )
    )
    print(f"pipeline: report -> {Path(report_out).resolve() / 'report.md'}", file=sys.stderr)
    return result
