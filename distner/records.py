"""The files one step hands the next, as types with one reader each: a study's `summary.json`
(written by `distner tune`, read by tune on resume, retrain and report) and a cell's
`retrain.json` (written by `distner retrain`, read by report and pipeline). Light on purpose (no
torch): the report reads them without loading the training stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from .errors import DistnerError
from .fileio import read_json
from .labels import Cell

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


class StartRow(TypedDict):
    """A --start-from config and the trial that ran its values."""

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


class Variant(TypedDict):
    source: str  # the config file it came from
    config: dict[str, Any]  # flat config keys
    runs: list[SeedRun]
    test: dict[str, Stat]  # per REPORTED key


class Final(TypedDict):
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
    variants: dict[str, Variant]  # "tuned" (or "tuned-1", ...) and "baseline"
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
    if "baseline" not in variants or len(variants) < 2:
        return "damaged (needs a tuned and a baseline variant)"
    for name, v in variants.items():
        seed_runs = v.get("runs") if isinstance(v, dict) else None
        if not isinstance(seed_runs, list) or not seed_runs or not isinstance(v.get("test"), dict):
            return f"damaged (variant {name!r} has no runs or no test summary)"
    if not isinstance(data["final"].get("run_dir"), str):
        return "damaged (final has no run_dir)"
    return None
