"""A study's output files: written once from Ray's results, and read back by retrain, report and
the pipeline through one reader (`StudyFiles`, `best_meta`).

Writes, per study: `trials.csv` (one row per trial: searched values, best dev score, epochs, state),
`summary.json` and `optuna.db` (the searcher's Optuna study as SQLite) in the study folder, or in
`runs/<name>/` when storage is remote; and `<best_dir>/<lang>-<granularity>.yaml`, the winner's full
config with a `_meta` block naming its study and trial.
Reads: Ray Tune's ResultGrid and trial folders (writing); the files above (reading).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distner.config import AUTO, FIELD_TYPES, RunConfig, read_yaml_mapping
from distner.core import manifest
from distner.core.errors import DistnerError
from distner.core.fileio import write_json, write_output, write_yaml
from distner.core.paths import check_within, is_remote
from distner.evaluation.metrics import MONITOR
from distner.labels import Cell
from distner.options import STORAGE
from distner.records import (
    RANKED_STATES,
    SUMMARY_JSON,
    TRIALS_CSV,
    StudySummary,
    TrialRow,
    read_summary,
    read_trials,
    write_trials,
)
from distner.spaces import Space, load_space

STATES = ("completed", "stopped_early", "failed", "diverged", "not_run")


def storage_root(storage: str) -> str:
    """--storage as Ray needs it: an absolute path when local (trials run in other folders), else
    the URI."""
    return storage if is_remote(storage) else str(Path(storage).resolve())


def study_path(storage: str, name: str) -> str:
    """Ray's experiment folder of study `name` under `storage`."""
    return f"{storage_root(storage).rstrip('/')}/{name}"


@dataclass(frozen=True)
class Study:
    """One study: its name, its cell and where its files go."""

    name: str
    lang: str
    granularity: str
    storage: str  # --storage as given: a local folder or a URI
    best_dir: str

    @property
    def cell(self) -> Cell:
        return Cell(self.lang, self.granularity)

    @property
    def path(self) -> str:
        return study_path(self.storage, self.name)

    @property
    def results_dir(self) -> Path:
        """Where trials.csv, summary.json and optuna.db go: the study folder, or runs/<name> (the
        default storage) on this machine when the study lives in remote storage."""
        return Path(self.path) if not is_remote(self.storage) else Path(STORAGE, self.name).resolve()

    @property
    def best_path(self) -> Path:
        return Path(self.best_dir).resolve() / f"{self.cell}.yaml"

    @property
    def as_given(self) -> str:
        """The study as best/*.yaml names it: as given (relative paths stay relative, so committed
        best configs name no folder of the machine that made them)."""
        return (
            str(Path(self.storage, self.name))
            if not is_remote(self.storage)
            else f"{self.storage}/{self.name}"
        )


@dataclass
class StudyResult:
    name: str
    study_path: str
    results_dir: Path
    best_config_path: Path
    summary: StudySummary
    rows: list[TrialRow] = field(default_factory=list)
    # seconds of the driver's steps (imports, ray, packers, trials, outputs): where a study's wall goes
    phases: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- writing


def write_outputs(study: Study, rows: list[TrialRow], summary: StudySummary, space: Space) -> StudyResult:
    """Write trials.csv, summary.json, optuna.db and best/<cell>.yaml of a study."""
    folder = study.results_dir
    folder.mkdir(parents=True, exist_ok=True)
    for name in (TRIALS_CSV, SUMMARY_JSON, "optuna.db"):  # a received study: nothing outside it written
        check_within(folder / name, folder)
    write_trials(folder / TRIALS_CSV, rows, [p.name for p in space.params])
    write_json(folder / SUMMARY_JSON, summary, within=folder)
    _export_optuna(study.path, folder / "optuna.db", study.name)
    best_path = _write_best(rows, space, study)
    return StudyResult(study.name, study.path, study.results_dir, best_path, summary, rows)


def drop_ended_checkpoints(folder: Path, rows: Sequence[TrialRow]) -> tuple[int, int]:
    """Remove the resumable checkpoints (`checkpoint_*/`) of the trials in `folder` that ended
    without failing: nothing reads them once the study's outputs are written (retrain trains from
    the config; a failed trial keeps its own, which --resume retries from). Returns how many
    trials had some and their bytes."""
    trials, size = 0, 0
    for row in rows:
        if row.state == "failed" or not row.trial_dir:
            continue
        found = [d for d in (folder / row.trial_dir).glob("checkpoint_*") if d.is_dir()]
        for d in found:
            size += sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            shutil.rmtree(d)
        trials += bool(found)
    return trials, size


def trial_rows(grid: Any, space: Space) -> list[TrialRow]:
    """One row per trial of a Ray ResultGrid, in creation order: the searched values, best dev
    score, epochs, state (completed, stopped_early, failed, diverged, not_run) and where it ran."""
    baseline = space.baseline_point()
    rows = []
    for r in grid:
        df = r.metrics_dataframe
        last = r.metrics or {}
        params = r.config or _params_on_disk(r.path)  # None: the trial never reported (time budget)
        cfg = {p.name: params.get(p.name) for p in space.params}
        f1s = df[MONITOR].dropna().tolist() if df is not None and MONITOR in df else []
        epochs = int(df["training_iteration"].max()) if df is not None and len(df) else 0
        if r.error is not None:
            state = "failed"
        elif last.get("diverged"):
            state = "diverged"
        elif epochs == 0:
            state = "not_run"
        elif epochs < int(params.get("epochs", space.base()["epochs"])):
            state = "stopped_early"
        else:
            state = "completed"
        trial_dir = Path(r.path).name if r.path else ""
        rows.append(
            TrialRow(
                index=_trial_index(trial_dir),
                trial=str(last.get("trial_id", trial_dir)),
                params=cfg,
                best_dev_f1=max(f1s) if f1s else float("nan"),
                epochs_run=epochs,
                state=state,
                seconds=round(float(last.get("time_total_s", 0.0)), 2),
                node_id=str(last.get("node_id", "")),
                baseline=cfg == baseline,
                error=str(r.error).splitlines()[0][:200] if r.error else "",
                trial_dir=trial_dir,
            )
        )
    rows.sort(key=lambda row: row.index)
    return rows


def _params_on_disk(path: str | None) -> dict[str, Any]:
    p = Path(path or "", "params.json")
    return json.loads(p.read_text()) if path and p.is_file() else {}


def _trial_index(trial_dir_name: str) -> int:
    """Creation order: Ray names trial folders `<trainable>_<id>_<n>_<params>_<date>`, n from 1."""
    m = re.match(r".*?_[0-9a-f]{8}_(\d+)_", trial_dir_name)
    return int(m.group(1)) if m else 0


def active_seconds(grid: Any) -> float:
    """Seconds in which at least one trial was running an epoch: the union of every reported
    epoch's [end - duration, end] over all trials. Unlike one `Tuner.fit`'s wall time, it spans
    every run of a resumed study (even one that was killed) and leaves out the time between."""
    spans = []
    for r in grid:
        df = r.metrics_dataframe
        if df is not None and {"timestamp", "time_this_iter_s"} <= set(df.columns):
            ends, took = df["timestamp"].astype(float), df["time_this_iter_s"].astype(float)
            spans += list(zip(ends - took, ends))
    total, reach = 0.0, -math.inf
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def summarise(
    rows: Sequence[TrialRow],
    study: Study,
    space: Space,
    search: tuple[str, str, int, int | str],
    resources: tuple[float, float, int],
    wall: float,
    active: float = math.nan,
) -> StudySummary:
    """summary.json: the study, how it searched (`search`: searcher, scheduler, sampler seed,
    checkpoint_every), trial counts by state, best and baseline dev scores, time and `resources`
    (gpus_per_trial, cpus_per_trial, pack). `wall` is this run's (the last, for a resumed study);
    `active` spans all its runs. Its start_from rows are filled in by the caller."""
    best = max((r for r in rows if r.scored), key=lambda r: r.best_dev_f1, default=None)
    base = next((r for r in rows if r.baseline), None)
    count = {s: sum(r.state == s for r in rows) for s in STATES}
    searcher, scheduler, seed, checkpoint_every = search
    gpus_per_trial, cpus_per_trial, pack = resources
    return StudySummary(
        study=study.name,
        lang=study.lang,
        granularity=study.granularity,
        space=os.path.relpath(space.source),  # relative: summaries get committed
        searcher=searcher,
        scheduler=scheduler,
        seed=seed,
        checkpoint_every=checkpoint_every,
        trials=len(rows),
        completed=count["completed"],
        stopped_early=count["stopped_early"],
        failed=count["failed"],
        diverged=count["diverged"],
        not_run=count["not_run"],
        best_trial=best.trial if best else None,
        best_dev_f1=best.best_dev_f1 if best else None,
        baseline_dev_f1=base.best_dev_f1 if base else None,
        wall_seconds=None if math.isnan(wall) else round(wall, 1),
        active_seconds=None if math.isnan(active) else round(active, 1),
        trial_seconds=round(sum(r.seconds for r in rows), 1),
        gpu_hours=round(sum(r.seconds for r in rows) * gpus_per_trial / 3600, 4),
        gpus_per_trial=gpus_per_trial,
        cpus_per_trial=cpus_per_trial,
        pack=pack,
        nodes=sorted({r.node_id for r in rows if r.node_id}),
        start_from=[],
    )


def _export_optuna(study_path: str, db: Path, name: str) -> None:
    """Copy the searcher's Optuna study into SQLite, so reports can use optuna's own tools."""
    import optuna

    from distner.tune.searcher import PruningAwareOptunaSearch, optuna_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = PruningAwareOptunaSearch(epochs=0)
    searcher.restore_from_dir(study_path)
    study = optuna_study(searcher)
    if study is None:
        raise DistnerError(f"{study_path}: the searcher saved no Optuna study")
    # SQLite writes only to a path: built in a private folder, then written by the output policy
    with tempfile.TemporaryDirectory(prefix="distner-optuna-") as d:
        tmp = Path(d, "optuna.db")
        out = optuna.create_study(storage=f"sqlite:///{tmp}", study_name=name, direction="maximize")
        out.add_trials([t for t in study.trials if t.state.is_finished()])
        del out
        write_output(db, lambda f: f.write(tmp.read_bytes()), within=db.parent)


def _write_best(rows: list[TrialRow], space: Space, study: Study) -> Path:
    scored = [r for r in rows if r.scored]
    if not scored:
        raise DistnerError(
            f"study {study.name}: no trial produced a dev score; see {study.storage}/{study.name}"
        )
    best = max(scored, key=lambda r: r.best_dev_f1)
    flat = {**space.base(), **{p.name: best.params[p.name] for p in space.params}}
    cfg = RunConfig.from_flat(flat)  # validates, normalises types
    path, lang, gran = study.best_path, study.lang, study.granularity
    header = (
        f"# Best config of study {study.name!r} ({lang}-{gran}): trial {best.trial},\n"
        f"# dev entity macro-F1 {best.best_dev_f1:.4f} after {best.epochs_run} epochs.\n"
        f"# Train it: distner train --lang {lang} --granularity {gran} --config {os.path.relpath(path)}\n"
    )
    meta = {
        "study": study.as_given,
        "trial": best.trial,
        "dev_entity_macro_f1": best.best_dev_f1,
        "epochs_run": best.epochs_run,
    }
    write_yaml(path, {**cfg.to_flat(), "_meta": meta}, header=header)
    return path


# ---------------------------------------------------------------- reading


def best_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """The `_meta` block of a best config (study, trial, dev score, epochs); None when the file or
    the block is missing (a config written by hand)."""
    p = Path(path)
    if not p.is_file():
        return None
    meta = read_yaml_mapping(p).get("_meta")
    return meta if isinstance(meta, dict) else None


@dataclass(frozen=True)
class StudyFiles:
    """A study folder's files as written above, read through records.py's one reader each."""

    folder: Path

    def trials(self) -> list[TrialRow]:
        """trials.csv's rows in creation order."""
        path = self.folder / TRIALS_CSV
        if not path.is_file():
            raise DistnerError(
                f"{path}: study results not found; run distner tune for {self.folder.name} first"
            )
        return read_trials(path)

    def ranked(self) -> list[TrialRow]:
        """Trials that ran to the end or were stopped early by ASHA, best dev score first."""
        rows = [r for r in self.trials() if r.state in RANKED_STATES]
        return sorted(rows, key=lambda r: -r.best_dev_f1)

    def trial_config(self, row: TrialRow) -> tuple[RunConfig, Path]:
        """A trial's full config, from the config.yaml its run wrote in its trial folder."""
        path = self.folder / row.trial_dir / "config.yaml"
        return RunConfig.from_flat(read_yaml_mapping(path)["config"], str(path)), path

    def trial_flat(self, row: TrialRow) -> tuple[dict[str, Any], str]:
        """A trial's full config as flat keys, and where it was read: the config.yaml its run
        wrote in its trial folder or, where the trial folders are gone (a study's files copied for
        publication: trials.csv and summary.json), the space summary.json names (as that file is
        now; refused when the study's manifest says the space differed) with the trial's searched
        values. A searched `auto` stays auto."""
        path = self.folder / row.trial_dir / "config.yaml"
        autos = {k: v for k, v in row.params.items() if v == AUTO}
        if row.trial_dir and path.is_file():
            return {**read_yaml_mapping(path)["config"], **autos}, str(path)
        summary = self.summary()
        if summary is None:
            raise DistnerError(
                f"{self.folder}: trial {row.trial}'s folder and the study's {SUMMARY_JSON} are missing; "
                "its config cannot be read or rebuilt"
            )
        space = load_space(summary["space"])
        made = manifest.read(self.folder)
        recorded = made.made_from.get("space_sha256") if made is not None else None
        if recorded is not None and recorded != space.sha256():
            raise DistnerError(
                f"{self.folder}: trial {row.trial}'s folder is missing and {summary['space']} is not the "
                "space the study searched (it changed since); its config cannot be rebuilt"
            )
        values = {k: "" if v is None and FIELD_TYPES.get(k) is str else v for k, v in row.params.items()}
        return {**space.base(), **values}, str(self.folder / TRIALS_CSV)

    def summary(self) -> StudySummary | None:
        return read_summary(self.folder / SUMMARY_JSON)

    def recorded_wall(self) -> float:
        """summary.json's wall_seconds; NaN when there is none to keep (absent, damaged, null)."""
        try:
            s = self.summary()
        except DistnerError:
            return math.nan
        wall = s["wall_seconds"] if s is not None else None
        return float(wall) if isinstance(wall, (int, float)) else math.nan

    def has_trials(self) -> bool:
        return (self.folder / TRIALS_CSV).is_file()

    @property
    def optuna_db(self) -> Path | None:
        db = self.folder / "optuna.db"
        return db if db.is_file() else None
