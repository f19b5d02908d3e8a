"""Search spaces as data: YAML files in `tune_spaces/` whose keys are config fields.

    embedding_dim: {choice: [128, 256, 520]}   # categorical
    lr: {loguniform: [1.0e-4, 3.0e-2]}          # also: uniform, quniform [lo, hi, q], qloguniform
    num_layers: {randint: [1, 2]}               # integers, both ends inclusive; qrandint [lo, hi, q]
    epochs: 10                                  # a plain value is fixed for every trial

This module only parses and validates; tune/driver.py turns a Space into Ray Tune distributions.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distner.config import (
    AUTO,
    EXTRA_KEYS,
    FIELD_TYPES,
    RunConfig,
    check_extra,
    coerce,
    load_config,
    read_yaml_mapping,
)
from distner.core.errors import DistnerError, shorten

TRAIN_LAYERS = "encoder_train_layers"  # may be `auto`, fixed or among a choice's values
KINDS = {  # kind -> number of arguments
    "choice": None,
    "uniform": 2,
    "quniform": 3,
    "loguniform": 2,
    "qloguniform": 3,
    "randint": 2,
    "qrandint": 3,
}


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    args: tuple[Any, ...]

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.args
        lo, hi = self.args[0], self.args[1]
        return lo <= value <= hi

    @property
    def upper(self) -> Any:
        if self.kind != "choice":
            return self.args[1]
        try:
            return max(self.args)
        except TypeError:  # e.g. encoder_train_layers {choice: [0, auto]}: the largest number
            return max((a for a in self.args if not isinstance(a, str)), default=self.args[0])


@dataclass(frozen=True)
class Space:
    source: str
    params: tuple[Param, ...]
    fixed: dict[str, Any]

    def base(self) -> dict[str, Any]:
        """Defaults (the seed) with this space's fixed values applied. A fixed
        `encoder_train_layers: auto` stays auto: each trial resolves it with its own encoder_layers."""
        flat = RunConfig.from_flat(self.fixed, source=self.source).to_flat()
        if self.fixed.get(TRAIN_LAYERS) == AUTO:
            flat[TRAIN_LAYERS] = AUTO
        return flat

    def baseline_point(self) -> dict[str, Any]:
        """The reference's value for every searched key: the study's first trial."""
        point, p = self._point(RunConfig().to_flat())
        if p is not None:
            raise DistnerError(
                f"{self.source}: key {p.name!r}: the reference's value {point[p.name]!r} is outside "
                f"{p.kind} {list(p.args)}; widen it so the baseline can run as trial one"
            )
        return point

    def start_point(self, config: str | os.PathLike | RunConfig, source: str | None = None) -> dict[str, Any]:
        """A config's value for every searched key (a config file such as another cell's
        best/<cell>.yaml, or a RunConfig that `source` names: tune/start.py's start points), to
        run as an extra early trial; each value must lie inside this space."""
        if not isinstance(config, RunConfig):
            config, source = load_config(config), source or str(config)
        point, p = self._point(config.to_flat())
        if p is not None:
            raise DistnerError(
                f"{source or 'config'}: key {p.name!r}: value {point[p.name]!r} is outside {p.kind} "
                f"{list(p.args)} of {self.source}; it cannot start this study"
            )
        return point

    def _point(self, values: dict[str, Any]) -> tuple[dict[str, Any], Param | None]:
        """The searched keys' values, and the first param whose value lies outside it (or None).
        A config's encoder_train_layers is the space's `auto` when a trial given auto would get it."""
        point = {p.name: values[p.name] for p in self.params}
        for p in self.params:
            if p.name == TRAIN_LAYERS and AUTO in p.args and point[p.name] not in p.args:
                try:
                    trial = RunConfig.from_flat({**self.base(), **point, p.name: AUTO})
                except DistnerError:
                    continue
                if trial.model.encoder_train_layers == point[p.name]:
                    point[p.name] = AUTO
        return point, next((p for p in self.params if not p.contains(point[p.name])), None)

    def sha256(self) -> str:
        """The space's content (searched keys and fixed values), not its file's spelling."""
        body = {"params": [[p.name, p.kind, list(p.args)] for p in self.params], "fixed": self.fixed}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    def values(self, key: str) -> tuple[Any, ...]:
        """What a trial can get for `key`: a choice's values, a range's bounds, or the fixed value."""
        p = next((p for p in self.params if p.name == key), None)
        if p is None:
            return (self.base()[key],)
        return tuple(p.args) if p.kind == "choice" else tuple(p.args[:2])

    def extra_train_choices(self) -> list[tuple[str, ...]]:
        """Each `extra_train_langs` its trials can pick, as language codes (() for none): the train
        splits a study's driver builds encoder features for."""
        base = self.base()
        key = "extra_train_langs"
        values = next((p.args for p in self.params if p.name == key), (base[key],))
        picks = (RunConfig.from_flat({**base, key: v}).train.extra_langs for v in values)
        return list(dict.fromkeys(picks))

    def max_epochs(self) -> int:
        for p in self.params:
            if p.name == "epochs":
                return int(p.upper)
        return int(self.base()["epochs"])


def builtin_space(name: str) -> Path | None:
    """A space that ships with distner, by file name: package data `distner.tune_spaces`, which a
    wheel builds from the project's `tune_spaces/` (the one copy). An editable install or a bare
    checkout cannot import that folder as a subpackage, so there it is read in place."""
    try:
        found = importlib.resources.files("distner.tune_spaces").joinpath(name)
    except ModuleNotFoundError:
        found = Path(__file__).resolve().parent.parent / "tune_spaces" / name
    # installs unpack to plain files (Path); a zipped install is not supported
    return found if isinstance(found, Path) and found.is_file() else None


def resolve_space_path(path: str | os.PathLike) -> Path:
    """As given, else the built-in space of that file name (so `tune_spaces/default.yaml`, the
    defaults, work from any folder)."""
    p = Path(path)
    if p.is_file():
        return p.resolve()
    builtin = None if p.is_absolute() else builtin_space(p.name)
    if builtin is None:
        raise DistnerError(f"{p}: search space file not found")
    return builtin


def _param(name: str, spec: dict, source: str) -> Param:
    if len(spec) != 1:
        raise DistnerError(f"{source}: key {name!r}: give one distribution, e.g. {{choice: [1, 2]}}")
    kind, args = next(iter(spec.items()))
    where = f"{source}: key {name!r}"
    if kind not in KINDS:
        raise DistnerError(f"{where}: unknown distribution {shorten(kind)} (known: {', '.join(KINDS)})")
    if not isinstance(args, list) or not args:
        raise DistnerError(f"{where}: {kind} needs a list of arguments")
    if kind == "choice":
        return Param(name, kind, tuple(coerce(name, v, where) for v in args))
    if len(args) != KINDS[kind]:
        raise DistnerError(f"{where}: {kind} takes {KINDS[kind]} numbers, got {len(args)}")
    want = FIELD_TYPES[name]
    if want not in (int, float):
        raise DistnerError(f"{where}: {kind} needs a numeric key; use choice for {want.__name__}")
    nums = tuple(float(coerce("lr", a, where)) for a in args)  # any number is fine here
    if kind in ("randint", "qrandint"):
        if want is not int or not all(n.is_integer() for n in nums):
            raise DistnerError(f"{where}: {kind} needs integer bounds and an int key")
        nums = tuple(int(n) for n in nums)
    elif want is int:
        raise DistnerError(f"{where}: {name!r} is an int; use randint, qrandint or choice")
    lo, hi = nums[0], nums[1]
    if not lo < hi or (kind.endswith("loguniform") and lo <= 0) or (len(nums) == 3 and nums[2] <= 0):
        raise DistnerError(f"{where}: bad bounds {shorten(args)}")
    if len(nums) == 3 and not math.isclose(((hi - lo) / nums[2]) % 1, 0, abs_tol=1e-9) and kind == "qrandint":
        raise DistnerError(f"{where}: (high - low) must be a multiple of q")
    return Param(name, kind, nums)


MAX_ENUMERATED = 1000  # integer ranges up to this size are checked value by value (e.g. odd char_kernel)


def _check_range(p: Param, fixed: dict[str, Any], source: str) -> None:
    """Each choice, each bound (and each integer in a small int range) against the key's own
    validation in config.py, so ranges are defined once and a bad space fails at load, not in a trial."""
    values: Any = p.args if p.kind == "choice" else p.args[:2]
    if p.kind in ("randint", "qrandint"):
        grid = range(p.args[0], p.args[1] + 1, p.args[2] if p.kind == "qrandint" else 1)
        values = grid if len(grid) <= MAX_ENUMERATED else values
    for v in values:
        try:
            RunConfig.from_flat({**fixed, p.name: v}, source="")
        except DistnerError as e:
            what = "value" if p.kind == "choice" or v not in p.args[:2] else "bound"
            dist = f"{p.kind} {shorten(list(p.args))}"
            reason = str(e).removeprefix(": ")
            raise DistnerError(
                f"{source}: key {p.name!r}: {what} {shorten(v)} of {dist} is out of range ({reason})"
            ) from None


def load_space(path: str | os.PathLike) -> Space:
    p = resolve_space_path(path)
    raw = read_yaml_mapping(p)
    source = str(p)
    params, fixed = [], {}
    for name, value in raw.items():
        if name not in FIELD_TYPES:
            raise DistnerError(
                f"{source}: unknown config key {shorten(name)} (known: {', '.join(FIELD_TYPES)})"
            )
        if isinstance(value, dict):
            params.append(_param(name, value, source))
        else:
            fixed[name] = coerce(name, value, f"{source}: key {name!r}")
    space = Space(source, tuple(params), fixed)
    space.base()  # validates fixed values against the config
    for param in params:  # every value a trial could get must be a valid config
        _check_range(param, fixed, source)
    if not params:
        raise DistnerError(f"{source}: nothing to search (no key has a distribution)")
    space.baseline_point()  # the reference must fit: fail here, before data loading and Ray start
    check_extra(fixed, source)
    for param in params:  # a value a trial could get that needs the extra
        if param.name in EXTRA_KEYS:
            for v in param.args if param.kind == "choice" else ():
                check_extra({param.name: v}, f"{source}: key {param.name!r}")
    return space
