"""tune -> best config -> retrain -> report for every cell, skipping steps whose outputs exist.

Step outputs that mark a step done: `best/<cell>.yaml` (tune), `<retrain>/<cell>/retrain.json`
(retrain). The report is cheap and always rebuilt. An interrupted pipeline reruns to completion:
an unfinished study is resumed, and retraining skips seed runs that already wrote metrics.json.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from .labels import normalize_granularity, normalize_lang
from .report import build_report
from .retrain import RetrainOptions, retrain_cell
from .tuning import TuneOptions, run_study, study_exists


def run_pipeline(
    langs: list[str],
    granularities: list[str],
    tune: TuneOptions,
    retrain: RetrainOptions,
    report_out: str = "reports",
    smoke: bool = False,
) -> dict[str, Any]:
    langs = [normalize_lang(x) for x in langs]
    granularities = [normalize_granularity(g) for g in granularities]
    for lang in langs:
        for gran in granularities:
            cell = f"{lang}-{gran}"
            best = Path(tune.best_dir) / f"{cell}.yaml"
            if best.is_file():
                print(f"pipeline: {cell}: tune  - done ({best})", file=sys.stderr)
            else:
                name = f"{cell}-smoke" if smoke else cell
                resume = study_exists(tune.storage, name)
                print(
                    f"pipeline: {cell}: tune  - {'resuming' if resume else 'starting'} study {name}",
                    file=sys.stderr,
                )
                run_study(replace(tune, lang=lang, granularity=gran, name=name, resume=resume))
            done = Path(retrain.out) / cell / "retrain.json"
            if done.is_file():
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
                        studies=tune.storage,
                    )
                )
    report = build_report(langs, granularities, retrain_dir=retrain.out, out=report_out)
    print(f"pipeline: report -> {Path(report_out).resolve() / 'report.md'}", file=sys.stderr)
    return report
