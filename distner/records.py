"""The files one step hands the next, as types with one writer and one reader each: a study's
`trials.csv` rows (`TrialRow`) and `summary.json` (written by `distner tune`, read by tune on
resume, retrain and report), a cell's `retrain.json` (written by `distner retrain`, read by report
and pipeline) and `report.json` (written by `distner report`, read by `report --against`). Light on
purpose (no torch): the report reads them without loading the training stack.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

from distner.core.errors import DistnerError, shorten
from distner.core.fileio import atomic_write_text, read_json
from distner.labels import Cell

# the scores retrain.json keeps per run (metrics.json's keys; seed_style_* are the padded-token ones)
REPORTED = (
    "entity_macro_f1",
    "entity_micro_f1",
    "token_accuracy",
    "seed_style_macro_f1",
    "seed_style_accuracy",
)


SUMMARY_JSON = "summary.json"
RETRAIN_JSON = "retrain.json"
TRIALS_CSV = "trials.csv"
REPORT_JSON = "report.json"


# ---------------------------------------------------------------- trials.csv

# trials.csv: "index", "trial", one column per searched key, then these
TRIAL_COLUMNS = ("best_dev_f1", "epochs_run", "state", "seconds", "node_id", "baseline", "error", "trial_dir")
RANKED_STATES = ("completed", "stopped_early")  # ran to the end, or stopped by ASHA: comparable


@dataclass(frozen=True)
class TrialRow:
    """One trial of a study, one row of its trials.csv."""

    index: int  # creation order: Ray's trial counter, from 1
    trial: str  # Ray's trial id
    params: dict[str, Any]  # the searched keys' values, in the space's order
    best_dev_f1: float  # NaN: never scored
    epochs_run: int
    state: str  # completed, stopped_early, failed, diverged, not_run (study.STATES)
    seconds: float
    node_id: str  # the Ray node it ran on ("" when it never ran)
    baseline: bool  # it ran the space's baseline point (the reference configuration)
    error: str  # the first line of a failed trial's error
    trial_dir: str  # its folder, inside the study folder

    @property
    def scored(self) -> bool:
        """It has a dev score that counts (not failed, not diverged)."""
        return not math.isnan(self.best_dev_f1) and self.state not in ("failed", "diverged")


def write_trials(path: Path, rows: Sequence[TrialRow], params: Sequence[str]) -> None:
    """trials.csv: one row per trial, the searched keys `params` as columns between the trial's
    id and its results."""
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(["index", "trial", *params, *TRIAL_COLUMNS])
    for r in rows:
        w.writerow(
            [r.index, r.trial, *(r.params.get(k) for k in params)]
            + [r.best_dev_f1, r.epochs_run, r.state, r.seconds, r.node_id, r.baseline, r.error, r.trial_dir]
        )
    atomic_write_text(path, text.getvalue())


def read_trials(path: Path) -> list[TrialRow]:
    """trials.csv's rows as written (a searched value back as the int, float, bool or text it was);
    anything else is one line naming the file and line."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            raw = list(reader)
            columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DistnerError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    missing = [c for c in ("index", "trial", *TRIAL_COLUMNS) if c not in columns]
    if missing:
        raise DistnerError(f"{path}: damaged (no column {missing[0]!r})")
    params = columns[columns.index("trial") + 1 : columns.index(TRIAL_COLUMNS[0])]
    rows = []
    for line, r in enumerate(raw, 2):  # line 1 is the header
        try:
            rows.append(
                TrialRow(
                    index=int(r["index"]),
                    trial=r["trial"],
                    params={k: _value(r[k]) for k in params},
                    best_dev_f1=float(r["best_dev_f1"]),
                    epochs_run=int(r["epochs_run"]),
                    state=r["state"],
                    seconds=float(r["seconds"]),
                    node_id=r["node_id"],
                    baseline=_flag(r["baseline"]),
                    error=r["error"],
                    trial_dir=r["trial_dir"],
                )
            )
        except (TypeError, ValueError):  # a short row gives None; a bad number or flag, ValueError
            raise DistnerError(f"{path}:{line}: damaged ({_row_problem(r)})") from None
    return rows


def _row_problem(r: dict[str, str | None]) -> str:
    for key, kind in (("index", int), ("best_dev_f1", float), ("epochs_run", int), ("seconds", float)):
        try:
            kind(r[key])  # type: ignore[arg-type]  # None (a short row) is a TypeError
        except (TypeError, ValueError):
            return f"{key} {r[key]!r} is not {'a whole' if kind is int else 'a'} number"
    return f"baseline {r['baseline']!r} is not True or False"


def _flag(text: str) -> bool:
    if text not in ("True", "False"):
        raise ValueError(text)
    return text == "True"


def _value(text: str | None) -> Any:
    """A searched value as it was before csv wrote it with str(): int, float, bool, None or text."""
    if text is None or text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# ---------------------------------------------------------------- summary.json


class _StartAddedLater(TypedDict, total=False):
    """What a start point with more than a config file records (absent for one without)."""

    rank: int  # a study folder's N-th best trial by dev
    source_trial: str  # that trial's id in the study it came from
    overrides: dict[str, Any]  # KEY=VALUE applied over the config


class StartRow(_StartAddedLater):
    """A --start-from start point (`config`: its config file or study folder) and the trial of
    this study that ran its values."""

    config: str
    trial: str | None
    best_dev_f1: float | None
    epochs_run: int | None


class _AddedLater(TypedDict, total=False):
    """summary.json keys that studies made by earlier versions of distner lack."""

    active_seconds: float | None  # all its runs (wall_seconds: the last run's)
    pack: int  # trials per packed process; without the key, 1


class StudySummary(_AddedLater):
    """summary.json: what a study was, how it searched, how its trials ended, what it cost."""

    study: str
    lang: str
    granularity: str
    space: str  # relative to where tune ran: summaries get committed
    searcher: str
    scheduler: str
    seed: int  # of the TPE sampler
    checkpoint_every: int | str  # epochs, or "auto"
    trials: int
    completed: int  # trials by state (study.STATES)
    stopped_early: int
    failed: int
    diverged: int
    not_run: int
    best_trial: str | None
    best_dev_f1: float | None
    baseline_dev_f1: float | None
    wall_seconds: float | None  # this run's (the last, for a resumed study)
    trial_seconds: float
    gpu_hours: float
    gpus_per_trial: float
    cpus_per_trial: float
    nodes: list[str]
    start_from: list[StartRow]


def start_spec(path: str, rank: int | None = None, overrides: dict[str, Any] | None = None) -> str:
    """A start point as --start-from spells it: `PATH[,KEY=VALUE...][,rank=N]`."""
    sets = "".join(f",{k}={v}" for k, v in (overrides or {}).items())
    return f"{path}{sets}" + (f",rank={rank}" if rank is not None else "")


def config_key(flat: dict[str, Any]) -> str:
    """One flat config (its seed included) as a key: how a record's runs are matched to configs."""
    return json.dumps(flat, sort_keys=True)


def start_label(row: StartRow) -> str:
    """A summary.json start_from row as --start-from spells it (what reports show)."""
    return start_spec(row["config"], row.get("rank"), row.get("overrides"))


def read_summary(path: Path) -> StudySummary | None:
    """A study's summary.json (None when there is none yet), checked for the keys every summary
    has; anything else is one line naming the file."""
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, dict):
        raise DistnerError(f"{path}: damaged (not a JSON object)")
    missing = [k for k in StudySummary.__required_keys__ if k not in data]
    if missing:
        raise DistnerError(f"{path}: damaged (no key {sorted(missing)[0]!r})")
    checked: StudySummary = data  # type: ignore[assignment]  # keys checked above
    return checked


class Stat(TypedDict):
    """One score over a variant's seeds."""

    mean: float
    std: float
    n: int


class SeedRun(TypedDict):
    seed: int
    run_dir: str  # inside the cell folder
    best_epoch: int
    train_seconds: float
    dev: dict[str, float]  # the REPORTED keys
    test: dict[str, float]


class _VariantDev(TypedDict, total=False):
    dev: dict[str, Stat]  # per REPORTED key (records written before variants had it: from runs)


class Variant(_VariantDev):
    source: str  # the config file it came from
    config: dict[str, Any]  # flat config keys
    runs: list[SeedRun]
    test: dict[str, Stat]  # per REPORTED key


SELECTED_BY = "dev entity_macro_f1, mean over seeds"


class _FinalVariant(TypedDict, total=False):
    variant: str  # the variant picked (records written before variants: the best seed run's)


def summarise(seed_runs: Sequence[SeedRun], split: Literal["dev", "test"]) -> dict[str, Stat]:
    """Mean, std and count over seed runs of each REPORTED score of one split."""
    out: dict[str, Stat] = {}
    for key in REPORTED:
        if not all(key in r[split] for r in seed_runs):  # records of runs that kept only some scores
            continue
        vals = [r[split][key] for r in seed_runs]
        out[key] = Stat(
            mean=statistics.fmean(vals), std=statistics.stdev(vals) if len(vals) > 1 else 0.0, n=len(vals)
        )
    return out


class Final(_FinalVariant):
    run_dir: str
    selected_by: str
    dev_entity_macro_f1: float


class RetrainRecord(TypedDict):
    """retrain.json: one cell's retraining, written once all its runs are done (read by report
    and pipeline through `read_retrain`)."""

    cell: str
    lang: str
    granularity: str
    train_on: str
    seeds: list[int]
    variants: dict[str, Variant]  # "tuned" (or "tuned-1", ..., or named variants) and "baseline"
    study: str | None
    best_meta: dict[str, Any] | None  # the best config's _meta: which study and trial
    final: Final


def read_retrain(path: Path, cell: str) -> RetrainRecord:
    """A cell's retrain.json, checked field by field: anything else is one line naming the file."""
    if not path.is_file():
        c = Cell.parse(cell)
        raise DistnerError(
            f"{path}: no retrain results for {cell}; make them with: "
            f"distner retrain --lang {c.lang} --granularity {c.granularity}"
        )
    data = read_json(path)
    problem = _retrain_problem(data, cell)
    if problem:
        raise DistnerError(f"{path}: {problem}")
    checked: RetrainRecord = data  # read_json gives Any; _retrain_problem checked the fields
    return checked


def _retrain_problem(data: Any, cell: str) -> str | None:
    """What is wrong with a retrain.json for `cell`, or None."""
    if not isinstance(data, dict):
        return "damaged (not a JSON object)"
    for key, kind in (
        ("cell", str),
        ("lang", str),
        ("granularity", str),
        ("variants", dict),
        ("final", dict),
    ):
        if not isinstance(data.get(key), kind):
            return f"damaged (key {key!r} missing or not a {kind.__name__})"
    if data["cell"] != cell:
        return f"holds {data['cell']}, not {cell}"
    variants = data["variants"]
    if not any(name != "baseline" for name in variants):
        return "damaged (needs a variant besides the baseline)"
    for name, v in variants.items():
        seed_runs = v.get("runs") if isinstance(v, dict) else None
        if not isinstance(seed_runs, list) or not seed_runs or not isinstance(v.get("test"), dict):
            return f"damaged (variant {name!r} has no runs or no test summary)"
    if not isinstance(data["final"].get("run_dir"), str):
        return "damaged (final has no run_dir)"
    return None


# ---------------------------------------------------------------- report.json


class _StudyFactsFound(TypedDict, total=False):
    """What StudyFacts holds when the study's files were at hand."""

    best_trial: str | None
    best_dev_f1: float | None
    baseline_dev_f1: float | None
    wall_seconds: float | None
    active_seconds: float | None
    trial_seconds: float | None
    best_epochs_run: int  # how far the winner got before ASHA stopped it (or the end)
    baseline_epochs_run: int


class StudyFacts(_StudyFactsFound):
    """A cell's study as the report tells it (from summary.json, trials.csv and optuna.db)."""

    path: str | None  # relative to the project root
    trials: int | None  # None: the study's files were not at hand
    gpu_hours: float | None
    best_so_far: list[float]  # per trial, in creation order
    importances: dict[str, float] | None  # Optuna's PED-ANOVA, largest first
    start_from: list[StartRow]


class Published(TypedDict):
    accuracy: float
    macro_f1: float


class FinalModel(TypedDict):
    run_dir: str | None
    per_type: dict[str, dict[str, float]]  # precision, recall, f1, support per entity type
    coarse_confusion: dict[str, Any] | None  # labels, matrix; None (and per_type {}): folder not here


class Candidate(TypedDict):
    """One variant a cell's final model was picked among: its scores over seeds, per REPORTED key."""

    dev: dict[str, Stat]
    test: dict[str, Stat]
    set: dict[str, Any]  # the config keys where it differs from the first variant


class _Picked(TypedDict, total=False):
    selected: str  # the variant picked on dev (reports written before variants: "tuned")
    candidates: dict[str, Candidate]  # every variant but the baseline


class CellReport(_Picked):
    """One cell of report.json: test scores of the selected and baseline variants over seeds."""

    lang: str
    granularity: str
    seeds: list[int]
    train_on: str
    tuned: dict[str, Stat]  # the selected variant's, per REPORTED key
    baseline: dict[str, Stat] | None  # None: retrained without the baseline
    gain: dict[str, float] | None  # tuned mean - baseline mean, entity macro and micro F1
    published_seed_style: Published  # the reference's padded-token numbers
    hyperparameters: dict[str, dict[str, Any]]  # "tuned", "baseline": flat configs
    final: FinalModel
    study: StudyFacts
    runs: dict[str, list[SeedRun]]  # per variant; run_dir relative to the project root
    figures: list[str]


class Comparison(TypedDict):
    this: Stat
    earlier: Stat
    gain: float  # of the means


class Against(TypedDict):
    source: str | None  # the earlier report.json
    cells: dict[str, dict[str, Comparison]]  # per cell in both, per COMPARED key


class _ReportAddedLater(TypedDict, total=False):
    against: Against  # with `report --against`


class Report(_ReportAddedLater):
    """report.json: every reported cell, the method and the reference's source."""

    cells: dict[str, CellReport]
    method: str
    published_source: str


COMPARED = ("entity_macro_f1", "entity_micro_f1")  # what --against compares


def read_report(path: Path) -> Report:
    """A report.json, checked as far as a later report compares with it (each cell's tuned
    COMPARED mean and std); anything else is one line naming the file."""
    data = read_json(path)
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, dict):
        raise DistnerError(f"{path}: not a distner report.json (no 'cells' mapping)")
    for cell, c in cells.items():
        for key in COMPARED:
            for stat in ("mean", "std"):
                try:
                    value = c["tuned"][key][stat]
                except (KeyError, TypeError):
                    raise DistnerError(
                        f"{path}: cell {cell}: no tuned {'/'.join(COMPARED)} mean and std"
                    ) from None
                # a JSON number, as a report writes it: "0.5" or NaN would reach the comparison
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise DistnerError(
                        f"{path}: cell {cell}: tuned.{key}.{stat} is not a finite number ({shorten(value)})"
                    )
    checked: Report = data  # the fields a comparison reads were checked above
    return checked
