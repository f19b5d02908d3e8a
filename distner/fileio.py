"""Atomic file writes (outputs appear whole or not at all: write to a temp name, then rename), and
strict reads of the JSON files distner wrote."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import DistnerError


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # outputs are checked up front; this is what changed since (or a full disk)
        raise DistnerError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_yaml(path: str | os.PathLike, obj: Any, header: str = "") -> Path:
    body = yaml.safe_dump(obj, sort_keys=False, allow_unicode=True)
    return atomic_write_text(path, header + body)


def replace_dir(new: Path, dest: Path) -> None:
    """Move folder `new` to `dest` (its sibling), replacing what is there. SIGINT is held back
    meanwhile, so Ctrl-C cannot leave `dest` missing or half-replaced."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)  # left by an earlier process of this pid, if any
    with _sigint_deferred():
        if dest.exists():
            os.replace(dest, old)
        try:
            os.replace(new, dest)
        except BaseException:
            if old.exists():
                os.replace(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    main = threading.current_thread() is threading.main_thread()
    if not main or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file distner wrote; missing, unreadable or damaged is one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise DistnerError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DistnerError(f"{path}: damaged JSON ({str(e)[:120]})") from None
    except OSError as e:
        raise DistnerError(f"{path}: cannot read ({e.strerror or e})") from None
