"""What a folder distner keeps is, said by the folder itself: `distner.json`, written first and
checked on every later use (a resume, a retrain skip, a report).

A manifest holds the folder's kind (study, retrain-cell), its cell ("hi-fine"), the distner
version that made it and `made_from`: what the folder's contents depend on and a later use must
not change (a study's space and seed, say). Paths in it are as the user gave them, never made
absolute, so a committed or copied folder names nothing of the machine that made it.

A folder without a manifest that holds files is not taken for one of distner's: it is refused,
never restarted in place. The one exception is a folder an older distner made, which a caller
may adopt once it has checked what the folder says about itself (`adopt`).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distner import __version__
from distner.core.errors import DistnerError, shorten
from distner.core.fileio import read_json, write_json
from distner.core.locks import LOCK_NAME

NAME = "distner.json"
KINDS = ("study", "retrain-cell")


@dataclass(frozen=True)
class Manifest:
    kind: str
    cell: str
    made_from: dict[str, Any] = field(default_factory=dict)
    version: str = __version__


def read(folder: str | os.PathLike) -> Manifest | None:
    """The folder's manifest, None when it has none; a damaged one is one line naming it."""
    path = Path(folder) / NAME
    if not path.exists():
        return None
    data = read_json(path)
    if not isinstance(data, dict):
        raise DistnerError(f"{path}: damaged manifest (not a JSON object)")
    for key, kind in (("kind", str), ("cell", str), ("version", str), ("made_from", dict)):
        if not isinstance(data.get(key), kind):
            raise DistnerError(f"{path}: damaged manifest (key {key!r} missing or not a {kind.__name__})")
    if data["kind"] not in KINDS:
        raise DistnerError(f"{path}: damaged manifest (unknown kind {shorten(data['kind'])!r})")
    made_by = _release(data["version"])
    if made_by is None:
        raise DistnerError(f"{path}: damaged manifest (version {shorten(data['version'])})")
    if made_by > (_release(__version__) or ()):  # its folder may hold what this one cannot read
        raise DistnerError(
            f"{path}: made by distner {data['version']}, this is {__version__}; use distner "
            f"{data['version']} or newer with this folder"
        )
    return Manifest(data["kind"], data["cell"], data["made_from"], data["version"])


def _release(version: str) -> tuple[int, ...] | None:
    """ "0.2.1" -> (0, 2, 1); a suffix ("0.2.1rc1", "0.2.1.dev3") counts as its release."""
    m = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(x) for x in m.group().split(".")) if m and len(version) <= 64 else None


def write(folder: str | os.PathLike, manifest: Manifest) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / NAME, asdict(manifest), within=folder)


def holds_files(folder: str | os.PathLike, besides: tuple[str, ...] = ()) -> bool:
    """Whether the folder exists with anything in it but distner's lock file (and `besides`)."""
    skip = {LOCK_NAME, *besides}
    try:
        return any(p.name not in skip for p in Path(folder).iterdir())
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return True
    except OSError as e:
        raise DistnerError(f"{folder}: cannot read ({e.strerror or e})") from None


def check(
    folder: str | os.PathLike, have: Manifest, want: Manifest, keep: tuple[str, ...], hint: str
) -> None:
    """One line when a folder's manifest is not what this use needs: another kind, another cell,
    or a `made_from` key of `keep` that changed (both values named; `hint` says what to do)."""
    if have.kind != want.kind:
        raise DistnerError(f"{folder}: a {have.kind} folder, not a {want.kind} one ({NAME})")
    if have.cell != want.cell:
        raise DistnerError(f"{folder}: holds {have.cell}, not {want.cell} ({NAME}); {hint}")
    for key in keep:
        if key in have.made_from and have.made_from[key] != want.made_from.get(key):
            was, now = have.made_from[key], want.made_from.get(key)
            raise DistnerError(f"{folder}: {key} was {_show(was)}, now {_show(now)}; {hint}")


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:16] + "..."


def adopt(folder: str | os.PathLike, manifest: Manifest) -> None:
    """Write a manifest into a folder an older distner made (after the caller checked its files)."""
    print(
        f"distner: {folder}: made before folders carried {NAME}; taking it as {manifest.cell} "
        f"{manifest.kind} and writing its {NAME}",
        file=sys.stderr,
    )
    write(folder, manifest)
