"""`distner pipeline --experiment FILE`: an experiment's steps, each declaring what it reads and writes.

Per cell: `tune` (when the experiment has a study; its files and best config are published), then
`retrain` of every variant x seed (one record per cell, published), then one `report` over the
cells. A step is done when its published outputs hold what it would make, so a fresh clone of the
project knows what is done without the git-ignored run folders; a retrain reuses the seed runs its
published record holds and trains only the missing ones.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from distner.config import load_config
from distner.core import manifest
from distner.core.errors import DistnerError
from distner.core.fileio import read_json, write_json
from distner.core.paths import check_output_dir
from distner.experiments import Experiment, TuneSettings, VariantSpec
from distner.labels import Cell
from distner.options import (
    SMOKE_EPOCHS,
    SMOKE_SAMPLES,
    SMOKE_SEEDS,
    SMOKE_SPACE,
    ReportOptions,
    RetrainOptions,
    TuneOptions,
)
from distner.records import REPORT_JSON, RETRAIN_JSON, config_key, start_spec
from distner.report.render import build_report
from distner.tune.driver import run_study, study_exists

STUDY_FILES = ("trials.csv", "summary.json", "optuna.db")


@dataclass(frozen=True)
class Step:
    """One unit of work: `done` from the published files, what it reads and what it writes."""

    name: str
    done: bool
    reads: tuple[str, ...]
    writes: tuple[str, ...]

    def line(self) -> str:
        state = "done" if self.done else "todo"
        return f"{state}  {self.name}  reads {', '.join(self.reads)}  writes {', '.join(self.writes)}"


def for_smoke(exp: Experiment) -> Experiment:
    """The same cells and variants on a data sample with the smoke space, few trials (at most the
    experiment's), seeds and epochs, into `<runs>/smoke` (published there too): never into the
    experiment's own outputs."""
    root = Path(exp.runs) / "smoke"
    tune = None
    if exp.tune is not None:
        # never more trials than the experiment asks for
        samples = min(SMOKE_SAMPLES, exp.tune.num_samples)
        tune = replace(exp.tune, space=SMOKE_SPACE, num_samples=samples, cells={})
    return replace(
        exp, tune=tune, seeds=exp.seeds[:SMOKE_SEEDS], runs=str(root), publish=str(root / "published")
    )


def _study_dir(exp: Experiment, cell: Cell) -> Path:
    return Path(exp.runs) / "studies" / cell


def _published_study(exp: Experiment, cell: Cell) -> Path:
    return Path(exp.publish) / "studies" / cell


def _record(exp: Experiment, cell: Cell) -> Path:
    return Path(exp.publish) / "retrain" / cell / RETRAIN_JSON


def _tune_done(exp: Experiment, cell: Cell) -> bool:
    return exp.config_of(cell).is_file() and (_published_study(exp, cell) / "summary.json").is_file()


def _seed_configs(
    exp: Experiment, cell: Cell, v: VariantSpec, smoke: bool
) -> dict[int, dict[str, Any]] | None:
    """Each seed's flat config of a variant, or None while the winner is not known yet."""
    if not exp.config_of(cell).is_file():
        return None
    sets = v.sets() + ([f"epochs={SMOKE_EPOCHS}"] if smoke else [])
    cfg = load_config(exp.config_of(cell), sets)
    return {s: cfg.replace(seed=s).to_flat() for s in v.seeds or exp.seeds}


def _recorded_seeds(exp: Experiment, cell: Cell) -> set[str]:
    """The configs (with their seed) of every seed run the published record holds."""
    path = _record(exp, cell)
    data = read_json(path) if path.is_file() else None
    out: set[str] = set()
    if isinstance(data, dict):
        for v in (data.get("variants") or {}).values():
            for run in v.get("runs") or []:
                out.add(config_key({**v["config"], "seed": run["seed"]}))
    return out


def plan(exp: Experiment, smoke: bool = False) -> list[Step]:
    """Every step of the experiment, in order, each marked done or todo from the published files."""
    steps: list[Step] = []
    for cell in exp.cells:
        winner = str(exp.config_of(cell))
        if exp.tune is not None:
            steps.append(
                Step(
                    f"tune {cell}",
                    _tune_done(exp, cell),
                    (exp.tune.space, *(_spelled(s) for s in exp.tune.start_points(cell))),
                    (winner, str(_published_study(exp, cell))),
                )
            )
        recorded = _recorded_seeds(exp, cell)
        for v in exp.variants_of(cell):
            configs = _seed_configs(exp, cell, v, smoke)
            for s in v.seeds or exp.seeds:
                done = configs is not None and config_key(configs[s]) in recorded
                where = Path(exp.runs) / "retrain" / cell / v.name / f"seed-{s}"
                steps.append(
                    Step(f"retrain {cell} {v.name} seed {s}", done, (winner, *v.sets()), (str(where),))
                )
        if exp.baseline_of(cell) and exp.retrains(cell):
            steps.append(
                Step(
                    f"retrain {cell} baseline seeds {','.join(map(str, exp.seeds))}",
                    _record(exp, cell).is_file() and "baseline" in _recorded_variants(exp, cell),
                    ("tune_spaces/baseline.yaml",),
                    (str(Path(exp.runs) / "retrain" / cell / "baseline"),),
                )
            )
    report = Path(exp.publish) / REPORT_JSON
    steps.append(
        Step(
            "report",
            all(s.done for s in steps) and _reported(report, exp),
            tuple(str(_record(exp, c)) for c in exp.cells if exp.retrains(c)),
            (str(report), str(Path(exp.publish) / "report.md")),
        )
    )
    return steps


def _recorded_variants(exp: Experiment, cell: Cell) -> set[str]:
    data = read_json(_record(exp, cell))
    return set(data.get("variants") or {}) if isinstance(data, dict) else set()


def _reported(report: Path, exp: Experiment) -> bool:
    """report.json holds every cell, with the candidates its record holds."""
    data = read_json(report) if report.is_file() else None
    if not isinstance(data, dict):
        return False
    cells = data.get("cells") or {}
    return all(
        c in cells and set(cells[c].get("candidates") or {}) == _recorded_variants(exp, c) - {"baseline"}
        for c in exp.cells
        if exp.retrains(c)
    )


@dataclass(frozen=True)
class Where:
    """Where an experiment runs, which its file does not say: the data, a Ray cluster to join, and
    whether to trust a study's Ray state this user's key did not sign."""

    data_dir: str | None = None
    address: str | None = None
    trust: bool = False


def run_experiment(exp: Experiment, where: Where, smoke: bool = False, dry_run: bool = False) -> None:
    """Run every step not done yet (or, with `dry_run`, only say which are), then the report."""
    if smoke:
        exp = for_smoke(exp)
    steps = plan(exp, smoke)
    if dry_run:
        for step in steps:
            print(step.line())
        return
    for folder, what in ((exp.runs, "runs"), (exp.publish, "publish")):
        check_output_dir(folder, f"{exp.source}: {what}")
    done = sum(s.done for s in steps)
    print(f"experiment {exp.name}: {done} of {len(steps)} steps done", file=sys.stderr)
    for cell in exp.cells:
        _adopt_published(exp, cell)
        settings = exp.tune_of(cell)
        if settings is not None and not _tune_done(exp, cell):
            _tune(exp, settings, cell, where)
        if not all(s.done for s in plan(exp, smoke) if s.name.startswith(f"retrain {cell} ")):
            _retrain(exp, cell, where, smoke)
    if all(s.done for s in plan(exp, smoke)):
        print(f"experiment {exp.name}: every step done", file=sys.stderr)
        return
    cells = tuple(str(c) for c in exp.cells if exp.retrains(c))
    build_report(
        ReportOptions(only=cells, retrain_dir=str(Path(exp.runs) / "retrain"), report_dir=exp.publish)
    )
    print(f"experiment {exp.name}: report -> {Path(exp.publish) / 'report.md'}", file=sys.stderr)


def _spelled(item: Any) -> str:
    """A start point of the file as `distner tune --start-from` takes it."""
    if isinstance(item, str):
        return item
    return start_spec(item.get("config") or item["study"], item.get("rank"), item.get("set"))


def _tune(exp: Experiment, t: TuneSettings, cell: Cell, where: Where) -> None:
    storage, best_dir = Path(exp.runs) / "studies", Path(exp.runs) / "best"
    resume = study_exists(str(storage), cell)
    print(f"experiment {exp.name}: tune {cell} ({'resuming' if resume else 'starting'})", file=sys.stderr)
    opts = TuneOptions(
        lang=cell.lang,
        granularity=cell.granularity,
        space=t.space,
        num_samples=t.num_samples,
        max_concurrent=t.max_concurrent,
        cpus_per_trial=t.cpus_per_trial,
        gpus_per_trial=t.gpus_per_trial,
        grace_period=t.grace_period,
        reduction_factor=t.reduction_factor,
        time_budget=t.time_budget,
        seed=t.seed,
        start_from=tuple(_spelled(s) for s in t.start_points(cell)),
        storage=str(storage),
        name=cell,
        resume=resume,
        best_dir=str(best_dir),
        data_dir=where.data_dir,
        address=where.address,
        trust=where.trust,
    )
    run_study(opts)
    # publish the small outputs: the winner and the study's own files
    study, out = _study_dir(exp, cell), _published_study(exp, cell)
    out.mkdir(parents=True, exist_ok=True)
    for name in STUDY_FILES:
        if (study / name).is_file():
            shutil.copy2(study / name, out / name)
    exp.config_of(cell).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(best_dir / f"{cell}.yaml", exp.config_of(cell))


def _adopt_published(exp: Experiment, cell: Cell) -> None:
    """A clone has the published record but not the run folders: the record goes where retrain
    and report read it, so its seed runs are reused, not trained again."""
    cell_dir, published = Path(exp.runs) / "retrain" / cell, _record(exp, cell)
    if published.is_file() and not (cell_dir / RETRAIN_JSON).is_file():
        manifest.write(cell_dir, manifest.Manifest("retrain-cell", cell, {"train_on": "train"}))
        shutil.copy2(published, cell_dir / RETRAIN_JSON)


def _retrain(exp: Experiment, cell: Cell, where: Where, smoke: bool) -> None:
    cell_dir, published = Path(exp.runs) / "retrain" / cell, _record(exp, cell)
    variants = exp.variants_of(cell)
    if not variants:
        raise DistnerError(f"{exp.source}: cell {cell}: the baseline alone is no candidate; add a variant")
    from distner.workflow.retrain import retrain_cell

    print(f"experiment {exp.name}: retrain {cell} ({len(variants)} variant(s))", file=sys.stderr)
    retrain_cell(
        RetrainOptions(
            lang=cell.lang,
            granularity=cell.granularity,
            config=str(exp.config_of(cell)),
            seeds=exp.seeds,
            variants=tuple(v.flag() for v in variants),
            no_baseline=not exp.baseline_of(cell),
            retrain_dir=str(Path(exp.runs) / "retrain"),
            data_dir=where.data_dir,
            address=where.address,
            overrides=(f"epochs={SMOKE_EPOCHS}",) if smoke else (),
        )
    )
    record = read_json(cell_dir / RETRAIN_JSON)
    if _published_study(exp, cell).is_dir():  # the study a clone has: the published copy
        record["study"] = str(_published_study(exp, cell))
    published.parent.mkdir(parents=True, exist_ok=True)
    write_json(published, record)
