"""Experiments as files: `experiments/<name>.yaml`, the committed description of a tuning campaign.

    cells: [hi-fine, bn-fine]            # LANG-GRANULARITY, each once
    tune:                                # optional: no `tune`, and `config` names the configs to retrain
      space: tune_spaces/extended.yaml
      num_samples: 16                    # also: max_concurrent, cpus_per_trial, gpus_per_trial,
      grace_period: 3                    # reduction_factor, time_budget, seed
      cells: {hi-fine: {num_samples: 12}}   # a cell's own settings
      start_from:                        # warm starts, run right after the baseline trial
        - {config: results/best/hi-fine.yaml, set: {embedding_dim: 384}}
    config: results/pretrained/best/{cell}.yaml   # without `tune`: the config each cell retrains
    variants:                            # named overrides of the winner; `{}` is the winner itself
      winner: {}
      linear: {set: {lr_schedule: linear}, cells: [hi-fine]}
      no-crf: {set: {crf: false}, seeds: [1]}   # its own seeds: shown, never picked
    baseline: true                       # the reference baseline retrained beside them (or [cells])
    seeds: [1, 2, 3]
    runs: runs/experiments/<name>        # big outputs (git-ignored)
    publish: results/<name>              # small outputs: studies' files, best configs, records, report

This module parses and checks; workflow/experiment.py runs it. Paths are relative to the folder
distner runs in (the project root), as the committed file is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from distner.config import RunConfig, coerce, read_yaml_mapping
from distner.core.errors import DistnerError, shorten
from distner.labels import Cell
from distner.options import TuneOptions, parse_duration
from distner.spaces import resolve_space_path


@dataclass(frozen=True)
class TuneSettings:
    """The study of each cell: `distner tune`'s flags, as data."""

    space: str
    num_samples: int = 16
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    grace_period: int = 1
    reduction_factor: int = 3
    time_budget: float | None = None  # seconds (the file may say 2h, 90m, 45s)
    seed: int = 0
    start_from: tuple[Any, ...] = ()  # strings or {config|study, rank, set, cells} mappings
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)  # per cell: settings of its own

    def start_points(self, cell: str) -> list[Any]:
        """The start points of one cell: "{cell}" filled in, those of other cells left out."""
        out: list[Any] = []
        for item in self.start_from:
            if isinstance(item, str):
                out.append(item.format(cell=cell))
            elif cell in item.get("cells", [cell]):
                point = {k: v for k, v in item.items() if k != "cells"}
                for key in ("config", "study"):
                    if key in point:
                        point[key] = str(point[key]).format(cell=cell)
                out.append(point)
        return out


@dataclass(frozen=True)
class VariantSpec:
    """Named overrides applied to a cell's winner; `cells` empty: every cell."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    cells: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()  # its own seeds (an ablation on one, say); empty: the experiment's

    def applies_to(self, cell: str) -> bool:
        return not self.cells or cell in self.cells

    def sets(self) -> list[str]:
        """The overrides as `--set` items (the form retrain and records show)."""
        return [f"{k}={v}" for k, v in self.overrides.items()]

    def flag(self) -> str:
        """As `distner retrain --variant` takes it: NAME[@SEEDS]:KEY=VALUE,..."""
        own = "@" + ",".join(map(str, self.seeds)) if self.seeds else ""
        return f"{self.name}{own}:{','.join(self.sets())}"


@dataclass(frozen=True)
class Experiment:
    name: str
    source: str  # the file
    cells: tuple[Cell, ...]
    tune: TuneSettings | None = None
    config: str | None = None  # "{cell}" is filled in
    variants: tuple[VariantSpec, ...] = (VariantSpec("winner"),)
    baseline: bool | tuple[str, ...] = True  # or the cells that retrain it
    seeds: tuple[int, ...] = (1, 2, 3)
    runs: str = ""
    publish: str = ""

    def config_of(self, cell: str) -> Path:
        """Where a cell's winner is: the study's published best config, or `config`."""
        if self.config is not None:
            return Path(self.config.format(cell=cell))
        return Path(self.publish) / "best" / f"{cell}.yaml"

    def variants_of(self, cell: str) -> list[VariantSpec]:
        return [v for v in self.variants if v.applies_to(cell)]

    def baseline_of(self, cell: str) -> bool:
        return self.baseline if isinstance(self.baseline, bool) else cell in self.baseline

    def retrains(self, cell: str) -> bool:
        """A cell with no variant is only tuned (the baseline alone is no candidate)."""
        return bool(self.variants_of(cell))

    def tune_of(self, cell: str) -> TuneSettings | None:
        """The study settings of one cell (its own `cells:` entry over the shared ones)."""
        if self.tune is None:
            return None
        return replace(self.tune, **self.tune.cells.get(cell, {}), cells={})


_KEYS = {f.name for f in fields(Experiment)} - {"name", "source"}
_TUNE_KEYS = {f.name for f in fields(TuneSettings)}


def _unknown(where: str, got: dict[str, Any], known: set[str]) -> None:
    bad = next((k for k in got if k not in known), None)
    if bad is not None:
        raise DistnerError(f"{where}: unknown key {shorten(str(bad))} (known: {', '.join(sorted(known))})")


def _file(where: str, path: Any) -> str:
    if not isinstance(path, str) or not Path(path).is_file():
        raise DistnerError(f"{where}: {path}: file not found")
    return path


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DistnerError(f"{where}: expected a mapping, got {shorten(str(value))}")
    return value


def _cells(where: str, value: Any) -> tuple[Cell, ...]:
    if not isinstance(value, list) or not value:
        raise DistnerError(f"{where}: expected a list of cells, e.g. [hi-fine, bn-coarse]")
    out: list[Cell] = []
    for name in value:
        try:
            cell = Cell.parse(str(name))
        except DistnerError as e:
            raise DistnerError(f"{where}: {e}") from None
        if cell in out:
            raise DistnerError(f"{where}: cell {cell} is listed twice")
        out.append(cell)
    return tuple(out)


def _overrides(where: str, value: Any) -> dict[str, Any]:
    return {str(k): coerce(str(k), v, source=where) for k, v in _mapping(where, value).items()}


def _start(where: str, item: Any, cells: tuple[Cell, ...]) -> Any:
    """A start point: a config file, or a mapping naming a config or a finished study, "{cell}"
    filled in per cell (checked here for what a file can say; tune resolves it)."""
    if isinstance(item, str):
        for cell in cells:
            _file(where, item.split(",")[0].format(cell=cell))
        return item
    spec = _mapping(where, item)
    _unknown(where, spec, {"config", "study", "rank", "set", "cells"})
    if ("config" in spec) == ("study" in spec):
        raise DistnerError(f"{where}: name one of config or study")
    own = _cells(f"{where}: cells", spec["cells"]) if "cells" in spec else cells
    stray = next((c for c in own if c not in cells), None)
    if stray is not None:
        raise DistnerError(f"{where}: cell {stray} is not one of the experiment's cells")
    for cell in own:
        if "config" in spec:
            _file(f"{where}: config", str(spec["config"]).format(cell=cell))
        elif not Path(str(spec["study"]).format(cell=cell)).is_dir():
            raise DistnerError(f"{where}: study {str(spec['study']).format(cell=cell)}: folder not found")
    _overrides(f"{where}: set", spec.get("set", {}))
    return {**spec, "cells": list(own)} if "cells" in spec else dict(spec)


# the study settings that are numbers: whole numbers, or any (time_budget: a duration)
_WHOLE = {"num_samples", "max_concurrent", "grace_period", "reduction_factor", "seed"}
_NUMBER = {"cpus_per_trial", "gpus_per_trial"}


def _settings(where: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The number settings of `spec` as numbers (a duration in seconds), each checked here as
    `distner tune` checks its flag, so that a bad value is one line before any cell runs."""
    out = dict(spec)
    for key, value in spec.items():
        if value is None or key not in _WHOLE | _NUMBER | {"time_budget"}:
            continue
        if key == "time_budget":
            try:
                out[key] = parse_duration(str(value))
            except DistnerError as e:
                raise DistnerError(f"{where}: time_budget: {e}") from None
            continue
        whole = key in _WHOLE
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (whole and not float(value).is_integer())
        ):
            kind = "a whole number" if whole else "a number"
            raise DistnerError(f"{where}: {key}: expected {kind}, got {shorten(str(value))}")
        out[key] = int(value) if whole else float(value)
    checked = {k: v for k, v in out.items() if k in _WHOLE | _NUMBER | {"time_budget"}}
    try:
        TuneOptions(lang="en", **checked)  # the ranges `distner tune` checks (its words name the flag)
    except DistnerError as e:
        raise DistnerError(f"{where}: {e}") from None
    return out


def _tune(where: str, value: Any, cells: tuple[Cell, ...]) -> TuneSettings:
    spec = _mapping(where, value)
    _unknown(where, spec, _TUNE_KEYS)
    if "space" not in spec:
        raise DistnerError(f"{where}: no space (a search space YAML, e.g. tune_spaces/extended.yaml)")
    if not isinstance(spec["space"], str):
        _file(f"{where}: space", None)
    try:
        resolve_space_path(spec["space"])
    except DistnerError as e:
        raise DistnerError(f"{where}: space: {e}") from None
    starts = spec.get("start_from", [])
    if not isinstance(starts, list):
        raise DistnerError(f"{where}: start_from: expected a list")
    own = _mapping(f"{where}: cells", spec.get("cells", {}))
    for cell, settings in own.items():
        at = f"{where}: cells: {cell}"
        if Cell.parse(str(cell)) not in cells:
            raise DistnerError(f"{at}: not one of the experiment's cells")
        _unknown(at, _mapping(at, settings), _TUNE_KEYS - {"space", "start_from", "cells"})
    values = {
        **_settings(where, spec),
        "cells": {
            str(Cell.parse(str(c))): _settings(f"{where}: cells: {c}", dict(v)) for c, v in own.items()
        },
        "start_from": tuple(_start(f"{where}: start_from[{i}]", s, cells) for i, s in enumerate(starts)),
    }
    try:
        return TuneSettings(**values)
    except TypeError as e:
        raise DistnerError(f"{where}: {e}") from None


def _variants(where: str, value: Any, cells: tuple[Cell, ...]) -> tuple[VariantSpec, ...]:
    out: list[VariantSpec] = []
    for name, spec in _mapping(where, value).items():
        at = f"{where}: {name}"
        spec = _mapping(at, spec if spec is not None else {})
        _unknown(at, spec, {"set", "cells", "seeds"})
        own = _cells(f"{at}: cells", spec["cells"]) if "cells" in spec else ()
        stray = next((c for c in own if c not in cells), None)
        if stray is not None:
            raise DistnerError(f"{at}: cell {stray} is not one of the experiment's cells")
        if str(name) == "baseline":
            raise DistnerError(f"{at}: 'baseline' names the reference's runs; pick another name")
        seeds = _seeds(f"{at}: seeds", spec["seeds"]) if "seeds" in spec else ()
        out.append(VariantSpec(str(name), _overrides(f"{at}: set", spec.get("set", {})), own, seeds))
    if not out:
        raise DistnerError(f"{where}: no variant (`winner: {{}}` retrains the winner as it is)")
    return tuple(out)


def _seeds(where: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return tuple(range(1, value + 1))
    if (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        if len(set(value)) != len(value):
            raise DistnerError(f"{where}: a seed is listed twice")
        for s in value:
            RunConfig.from_flat({"seed": s}, source=where)  # its range
        return tuple(value)
    raise DistnerError(f"{where}: expected a count or a list of seeds, got {shorten(str(value))}")


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file: every problem is one line naming the file and key."""
    src = str(path)
    data = read_yaml_mapping(path)
    _unknown(src, data, _KEYS)
    if "cells" not in data:
        raise DistnerError(f"{src}: no cells (e.g. cells: [hi-fine])")
    cells = _cells(f"{src}: cells", data["cells"])
    tune = _tune(f"{src}: tune", data["tune"], cells) if data.get("tune") is not None else None
    config = data.get("config")
    if (tune is None) == (config is None):
        raise DistnerError(f"{src}: name either tune (a study finds each winner) or config (the winners)")
    if config is not None:
        for cell in cells:
            _file(f"{src}: config", str(config).format(cell=cell))
    name = Path(path).stem
    variants = data.get("variants", {"winner": {}})
    baseline = data.get("baseline", True)
    if isinstance(baseline, list):
        baseline = _cells(f"{src}: baseline", baseline)
        stray = next((c for c in baseline if c not in cells), None)
        if stray is not None:
            raise DistnerError(f"{src}: baseline: cell {stray} is not one of the experiment's cells")
    elif not isinstance(baseline, bool):
        raise DistnerError(f"{src}: baseline: expected true, false or a list of cells")
    return Experiment(
        name=name,
        source=src,
        cells=cells,
        tune=tune,
        config=None if config is None else str(config),
        variants=_variants(f"{src}: variants", variants, cells),
        baseline=baseline,
        seeds=_seeds(f"{src}: seeds", data.get("seeds", 3)),
        runs=str(data.get("runs", f"runs/experiments/{name}")),
        publish=str(data.get("publish", f"results/{name}")),
    )
