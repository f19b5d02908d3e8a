"""argparse flags generated from the options dataclasses (options.py), as transformers'
HfArgumentParser does: field `num_samples` is flag `--num-samples`; its type, default, help and
choices are the field's, so each is written once. Plain argparse rather than a library such as
jsonargparse: distner's flags are kebab-case, its errors one line, and it needs no config files
(`--config` already takes a flat YAML of model keys).

One convention for lists: a `tuple[str, ...]` field is one plural flag taking comma-separated
values (`--langs en,hi`), repeatable (values add up); free text that may hold commas
(`--set KEY=VALUE`, `--start-from FILE`) is repeated instead (`repeat=True`). A field's old
spellings (`old=("--out",)`) still work for one release and print a one-line note.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from distner.core.errors import DistnerError, one_line

DEPRECATED_UNTIL = "0.2"  # old spellings still work in the next release (this is 0.1), then go


def opt(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    metavar: str | None = None,
    choices: Iterable[Any] | None = None,
    parse: Callable[[str], Any] | None = None,
    flag: str | None = None,
    old: tuple[str, ...] = (),
    repeat: bool = False,
    positional: bool = False,
    cli: bool = True,
) -> Any:
    """A dataclass field that also describes its flag (see the module docstring)."""
    meta = {
        "help": help, "metavar": metavar, "choices": tuple(choices) if choices else None,
        "parse": parse, "flag": flag, "old": old, "repeat": repeat, "positional": positional, "cli": cli,
    }  # fmt: skip
    return dataclasses.field(default=default, metadata=meta)


def deprecated(old: str, new: str) -> None:
    """The one-line note an old spelling prints (it still works in DEPRECATED_UNTIL)."""
    print(
        f"distner: note: {old} is deprecated (still accepted in distner {DEPRECATED_UNTIL}); use {new}",
        file=sys.stderr,
    )


def flag_name(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("flag") or "--" + f.name.replace("_", "-"))


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(the element type, whether it is a list) of a field's annotation; `X | None` is X."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _base_type(args[0])
    if origin is tuple:
        return args[0], True
    return hint, False


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Flag(argparse.Action):
    """Stores a flag's value through the field's parser; lists add up; old spellings print a note."""

    def __init__(self, option_strings: list[str], dest: str, **kw: Any) -> None:
        self.convert: Callable[[str], Any] = kw.pop("convert")
        self.many: bool = kw.pop("many")
        self.split: bool = kw.pop("split")
        self.new: str = kw.pop("new")
        self.old: tuple[str, ...] = kw.pop("old")
        self.valid: tuple[Any, ...] | None = kw.pop("valid")
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: Any, ns: argparse.Namespace, values: Any, option: str | None = None) -> None:
        if option in self.old:
            deprecated(option or "", self.new)
        try:
            if self.nargs == 0:
                value: Any = True
            elif self.many:
                # empty items dropped: `--langs ""` is then an empty list, which the dataclass refuses
                items = [x.strip() for x in values.split(",") if x.strip()] if self.split else [values]
                value = [*(getattr(ns, self.dest, None) or []), *map(self.convert, items)]
            else:
                value = self.convert(values)
        except DistnerError as e:
            raise argparse.ArgumentError(self, one_line(e)) from None
        except ValueError:  # int() or float() of a word
            kind = "a whole number" if self.convert is int else "a number"
            raise argparse.ArgumentError(self, f"expected {kind}, got {values!r}") from None
        if self.valid is not None:
            for v in value if self.many else [value]:
                if v not in self.valid:
                    shown = ", ".join(map(str, self.valid))
                    raise argparse.ArgumentError(self, f"invalid choice {v!r} (choose from {shown})")
        setattr(ns, self.dest, value)


def add_options(
    parser: argparse.ArgumentParser,
    options: type,
    skip: Iterable[str] = (),
    have: set[str] | None = None,
    old: bool = True,
) -> None:
    """One flag per field of `options`, bar `skip`, fields with cli=False, and names in `have`
    (added by an earlier call for the same command: a field of one name means one thing; `have`
    is updated). A flag not given parses to None, so `build` leaves the default to the dataclass.
    `old`: also accept the fields' old spellings (only where this command had them)."""
    hints = typing.get_type_hints(options)
    have = set() if have is None else have
    for f in dataclasses.fields(options):
        m = f.metadata
        if f.name in skip or f.name in have or not m.get("cli", True):
            continue
        have.add(f.name)
        base, many = _base_type(hints[f.name])
        text = m.get("help", "")
        required = f.default is dataclasses.MISSING
        shown = not required and f.default is not None and f.default is not False and f.default != ()
        if shown and "default" not in text:
            text = f"{text} (default {_show(f.default)})".strip()
        text = text.replace("%", "%%")
        metavar = m.get("metavar")
        if m.get("positional"):
            parser.add_argument(
                f.name, nargs="*" if many else "?", default=None, help=text, metavar=metavar or f.name.upper()
            )
            continue
        choices = m.get("choices")
        split = many and not m.get("repeat")
        if choices and not metavar:
            metavar = "LIST" if many else "{" + ",".join(map(str, choices)) + "}"
        kw: dict[str, Any] = dict(
            dest=f.name, default=None, action=_Flag, help=text, new=flag_name(f), old=(), valid=choices,
            convert=m.get("parse") or (base if base in (int, float) else str), many=many, split=split,
        )  # fmt: skip
        if base is bool:
            kw["nargs"] = 0
        else:
            kw["metavar"] = metavar or ("LIST" if split else f.name.upper())
        aliases = m.get("old", ()) if old else ()
        # a required flag with an old spelling is checked by the dataclass (either spelling will do)
        parser.add_argument(flag_name(f), required=required and not aliases, **kw)
        if aliases:
            parser.add_argument(*aliases, **{**kw, "help": argparse.SUPPRESS, "old": aliases})


def given(args: argparse.Namespace, options: type) -> dict[str, Any]:
    """The fields of `options` whose flag was given, lists as tuples."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(options):
        value = getattr(args, f.name, None)
        if value is None or (f.metadata.get("positional") and value == []):
            continue
        out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


def build(options: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """An `options` dataclass from the flags given; every other field keeps its default."""
    values = {**given(args, options), **fixed}
    for f in dataclasses.fields(options):
        if f.default is dataclasses.MISSING and f.name not in values:
            raise DistnerError(f"{flag_name(f)}: required")
    return options(**values)
