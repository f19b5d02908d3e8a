"""A study's facts for a report, from its files only: trials, the best-so-far curve, how far the
winner and the baseline got, and Optuna's parameter importances; and how a report writes paths.

Reads: a study's `summary.json`, `trials.csv` and `optuna.db` (through study.StudyFiles), and the
class report's published figures (distner/reference/seed_report.json). Writes: nothing.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

from distner.core.errors import DistnerError
from distner.core.paths import is_remote
from distner.records import Report, StudyFacts
from distner.tune.study import StudyFiles


def published_scores() -> dict[str, Any]:
    """The class report's published scores (the seed report), per language and granularity."""
    return json.loads(resources.files("distner").joinpath("reference/seed_report.json").read_text())


def relative(path: str | None) -> str | None:
    """A local path as written into reports: relative to the folder distner runs in (the project
    root), so committed reports name no folder of the machine that made them."""
    if not path or is_remote(path):
        return path
    return os.path.relpath(Path(path).resolve(), Path.cwd())


def study_facts(study: str | None) -> StudyFacts:
    """Trials, best-so-far curve and Optuna importances, when the study's files are at hand."""
    out = StudyFacts(
        path=relative(study), trials=None, gpu_hours=None, best_so_far=[], importances=None, start_from=[]
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
        out["start_from"] = [{**x, "config": relative(x["config"]) or x["config"]} for x in s["start_from"]]
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
        out["importances"] = importances(files.optuna_db)
    return out


def importances(db: Path) -> dict[str, float] | None:
    """Optuna's PED-ANOVA importances of the study in `db`, largest first; None when there are too
    few trials or no parameter varied."""
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


def cell_study_facts(study: str | None, cell: str, earlier: Report | None) -> StudyFacts:
    """The study's facts from its files; Optuna's importances, which need its optuna.db (a
    published study may hold only trials.csv and summary.json), from the report written before
    when that was of the same study and winner."""
    facts = study_facts(study)
    old = None if earlier is None else earlier["cells"].get(cell)
    if facts["importances"] is None and old is not None and old["study"].get("importances"):
        if old["study"].get("best_trial") == facts.get("best_trial") is not None:
            facts["importances"] = old["study"]["importances"]
    return facts
