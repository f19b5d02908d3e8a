"""The files one step hands the next, as types with one reader each: `retrain.json`, which
`distner retrain` writes per cell and `report` and `pipeline` read. Light on purpose (no torch):
the report reads it without loading the training stack.
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


RETRAIN_JSON = "retrain.json"


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
