"""A study's start points: configs whose searched keys run as trials right after the baseline
(`distner tune --start-from`, repeatable; an experiment's list of them). One start point is

    PATH[,KEY=VALUE...][,rank=N]

PATH a config YAML (e.g. another cell's best/<cell>.yaml), or a finished study's folder (its
trials.csv and summary.json), whose N-th best trial by dev (default 1) gives its full config.
KEY=VALUE pairs override keys of that config, parsed as --set parses them; a value may hold commas
(`extra_train_langs=bn,en`: a comma-separated part without `=` continues the value before it, or
the path). The same as a mapping (an experiment file's form):

    {config: PATH, set: {KEY: VALUE, ...}}
    {study: DIR, rank: N, set: {KEY: VALUE, ...}}

Everything wrong with one is a one-line DistnerError naming it. Light on import: no Ray.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distner.config import RunConfig, coerce, load_config, parse_overrides
from distner.core.errors import DistnerError, shorten
from distner.records import TRIALS_CSV, StartRow, TrialRow, start_spec
from distner.spaces import Space
from distner.tune.study import StudyFiles

SOURCE = "--start-from"
MAPPING_KEYS = ("config", "study", "rank", "set")
MAX_SPEC = 500  # characters of a start point echoed in an error


@dataclass(frozen=True)
class StartPoint:
    """One start point: a config file or a study folder (`path`), the study's trial by dev rank
    (None: a config file, or a study's best), and keys set over its config (parsed values)."""

    path: str
    rank: int | None = None
    overrides: tuple[tuple[str, Any], ...] = ()
    spec: str = ""  # as given (errors name it); default: describe()
    source: str = SOURCE  # where it was given: the flag, or an experiment file's key

    def describe(self) -> str:
        """One line, as --start-from spells it: `PATH[,KEY=VALUE...][,rank=N]` (the rank of a
        study folder always shown)."""
        rank = self.rank if self.rank is not None or not self.is_study else 1
        return start_spec(self.path, rank, dict(self.overrides))

    @property
    def where(self) -> str:
        """What errors about it start with: the source and the start point as given."""
        return f"{self.source} {_show(self.spec or self.describe())}"

    @property
    def is_study(self) -> bool:
        return Path(self.path).is_dir()

    def trial(self) -> TrialRow | None:
        """The study's trial it picks (its N-th best by dev); None for a config file."""
        path = Path(self.path)
        if not path.exists():
            raise DistnerError(f"{self.where}: {self.path}: no config file or study folder there")
        if not path.is_dir():
            if self.rank is not None:
                raise DistnerError(
                    f"{self.where}: rank={self.rank} picks a study's trial; {self.path} is a file"
                )
            return None
        if not (path / TRIALS_CSV).is_file():
            raise DistnerError(
                f"{self.where}: {self.path} is a folder without {TRIALS_CSV} (not a finished study)"
            )
        try:
            ranked = StudyFiles(path).ranked()
        except DistnerError as e:
            raise DistnerError(f"{self.where}: {e}") from None
        n = self.rank or 1
        if n > len(ranked):
            raise DistnerError(
                f"{self.where}: rank={n}, but study {self.path} has {len(ranked)} finished trial(s)"
            )
        return ranked[n - 1]

    def resolve(self) -> RunConfig:
        """Its full config: the file's, or the picked trial's, with the overrides set. A config's
        `encoder_train_layers: auto` (a file's, or a trial's searched value) is resolved after
        them, with encoder_layers as they leave it."""
        row = self.trial()
        over = dict(self.overrides)
        try:
            if row is None:
                return load_config(self.path, over, overrides_source=self.where)
            # a trial's searched auto is still auto here; a number it ran with stays that number
            flat, read_from = StudyFiles(Path(self.path)).trial_flat(row)
            return RunConfig.from_flat({**flat, **over}, source=read_from if not over else self.where)
        except DistnerError as e:
            message = str(e)
            raise DistnerError(
                message if message.startswith(self.where) else f"{self.where}: {message}"
            ) from None


def parse_start(
    spec: str | Mapping[str, Any], relative_to: str | os.PathLike | None = None, source: str = SOURCE
) -> StartPoint:
    """A start point from its string form or its mapping form (module docstring). Relative paths
    are taken from `relative_to` (an experiment file's folder) when given, else the working folder.
    Checks the spelling only; StartPoint.resolve reads the files."""
    if isinstance(spec, str):
        return _parse_text(spec, relative_to, source)
    if isinstance(spec, Mapping):
        return _parse_mapping(spec, relative_to, source)
    raise DistnerError(f"{source} {shorten(spec)}: expected PATH[,KEY=VALUE...][,rank=N] or a mapping")


def resolve_start_points(
    specs: Sequence[str | Mapping[str, Any]],
    relative_to: str | os.PathLike | None = None,
    source: str = SOURCE,
) -> list[tuple[StartPoint, RunConfig]]:
    """Each start point (string or mapping form) parsed and resolved to its full config, in order."""
    points = [parse_start(s, relative_to, source) for s in specs]  # every spelling checked first
    return [(p, p.resolve()) for p in points]


def start_rows(
    rows: Sequence[TrialRow], space: Space, starts: Sequence[tuple[StartPoint, RunConfig]]
) -> list[StartRow]:
    """Each start point with the trial of this study that ran its values (found by value, so a
    resumed study given the same start points finds them too): what it scored on this cell."""
    out = []
    for start, cfg in starts:
        point = space.start_point(cfg, start.where)
        row = next((r for r in rows if all(_same(r.params.get(k), v) for k, v in point.items())), None)
        recorded = StartRow(
            config=start.path,
            trial=row.trial if row else None,
            best_dev_f1=row.best_dev_f1 if row else None,
            epochs_run=row.epochs_run if row else None,
        )
        if start.is_study:
            source = start.trial()
            recorded["rank"] = start.rank or 1
            if source is not None:
                recorded["source_trial"] = source.trial
        if start.overrides:
            recorded["overrides"] = dict(start.overrides)
        out.append(recorded)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9)
    return a == b


def _path(text: str, relative_to: str | os.PathLike | None) -> str:
    return str(Path(relative_to, text)) if relative_to is not None and not os.path.isabs(text) else text


def _show(spec: str) -> str:
    """A start point as given (whole: it is the user's own path), quoted and cut only when it is
    very long or holds odd characters."""
    return spec if len(spec) <= MAX_SPEC and spec.isprintable() else shorten(spec, MAX_SPEC)


def _parse_text(spec: str, relative_to: str | os.PathLike | None, source: str) -> StartPoint:
    where = f"{source} {_show(spec)}"
    items = spec.split(",")
    path_parts, pairs = [items[0]], list[str]()
    for item in items[1:]:
        if "=" in item:
            pairs.append(item)
        elif pairs:  # `extra_train_langs=bn,en`: the value goes on
            pairs[-1] += "," + item
        else:  # a path with a comma in it
            path_parts.append(item)
    path = ",".join(path_parts).strip()
    if not path:
        raise DistnerError(f"{where}: expected PATH[,KEY=VALUE...][,rank=N]")
    rank: int | None = None
    sets = []
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key.strip() != "rank":
            sets.append(pair)
        elif rank is not None:
            raise DistnerError(f"{where}: rank is given twice")
        else:
            rank = _rank(value.strip(), where)
    overrides = parse_overrides(sets, source=where)
    return StartPoint(_path(path, relative_to), rank, tuple(overrides.items()), spec, source)


def _parse_mapping(spec: Mapping[str, Any], relative_to: str | os.PathLike | None, source: str) -> StartPoint:
    unknown = [k for k in spec if k not in MAPPING_KEYS]
    kinds = [k for k in ("config", "study") if k in spec]
    where = f"{source} {shorten(dict(spec))}"
    if unknown:
        raise DistnerError(f"{where}: unknown key {shorten(unknown[0])} (known: {', '.join(MAPPING_KEYS)})")
    if len(kinds) != 1:
        raise DistnerError(f"{where}: give one of config: PATH or study: DIR")
    kind, path = kinds[0], spec[kinds[0]]
    if not isinstance(path, str) or not path.strip():
        raise DistnerError(f"{where}: {kind}: expected a path, got {shorten(path)}")
    rank = None
    if "rank" in spec:
        if kind != "study":
            raise DistnerError(f"{where}: rank picks a study's trial; give study: DIR")
        rank = _rank(spec["rank"], where)
    raw = spec.get("set") or {}
    if isinstance(raw, Mapping):
        overrides = {str(k): coerce(str(k), v, where) for k, v in raw.items()}
    elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        overrides = parse_overrides(raw, source=where)
    else:
        raise DistnerError(f"{where}: set: expected a mapping of config keys, got {shorten(raw)}")
    point = StartPoint(_path(path.strip(), relative_to), rank, tuple(overrides.items()), source=source)
    where = point.where
    full = Path(point.path)
    if kind == "config" and full.is_dir():
        raise DistnerError(f"{where}: {point.path} is a folder; a study's trial is study: DIR")
    if kind == "study" and full.exists() and not full.is_dir():
        raise DistnerError(f"{where}: {point.path} is a file, not a study folder; give config: PATH")
    return point


def _rank(value: Any, where: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            pass
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise DistnerError(f"{where}: rank must be a whole number >= 1, got {shorten(value)}")
    return value
