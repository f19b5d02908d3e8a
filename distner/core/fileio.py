"""Writes by the one output policy (paths.output_target): a file appears whole or not at all (a temp
file beside it, then a rename), a symlink writes its target that way, and stdout, a FIFO or a
device is written into as it is. A failed write (no space, no permission, too long a name) is one
line naming the path and leaves no temp file. Also: strict reads of the JSON files distner wrote."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from distner.core.errors import DistnerError
from distner.core.interrupts import deferred
from distner.core.paths import check_within, output_target


def write_output(
    path: str | os.PathLike, write: Callable[[IO[bytes]], object], within: str | os.PathLike | None = None
) -> Path:
    """Call `write` with a binary file that ends up at `path`, by the output policy. With
    `within`, the folder `path` belongs to: nothing outside it is written (paths.check_within)."""
    if within is not None:
        check_within(path, within)
    target = output_target(path)
    link = target.kind == "file" and Path(path).is_symlink()
    where = f"{path} (a link to {target.path})" if link else f"{path}"
    if target.kind == "other":
        raise DistnerError(f"{where}: is not a regular file, a FIFO or a character device")
    tmp: str | None = None
    try:
        if target.kind == "stdout":
            _write_stdout(write)
        elif target.kind == "stream":
            with open(target.path, "wb") as f:  # a FIFO or device: O_TRUNC does nothing to it
                write(f)
        else:
            real = target.path
            real.parent.mkdir(parents=True, exist_ok=True)
            # the name cut short: the temp name must fit where the real one just fits
            fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name[:80]}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
            os.replace(tmp, real)
            tmp = None
    except OSError as e:  # outputs are checked up front; this is what changed since (or a full disk)
        raise DistnerError(f"{where}: cannot write ({e.strerror or e})") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return Path(path)


def _write_stdout(write: Callable[[IO[bytes]], object]) -> None:
    sys.stdout.flush()
    try:
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        # the reader left (`| head`): keep Python's exit flush from failing a second time
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise


def atomic_write_text(path: str | os.PathLike, text: str, within: str | os.PathLike | None = None) -> Path:
    """`text` as UTF-8 at `path`, by the output policy (atomic wherever `path` is a file)."""
    data = text.encode("utf-8")
    return write_output(path, lambda f: f.write(data), within)


def write_json(path: str | os.PathLike, obj: Any, within: str | os.PathLike | None = None) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n", within)


def write_yaml(path: str | os.PathLike, obj: Any, header: str = "") -> Path:
    body = yaml.safe_dump(obj, sort_keys=False, allow_unicode=True)
    return atomic_write_text(path, header + body)


def replace_dir(new: Path, dest: Path) -> None:
    """Move folder `new` to `dest` (its sibling), replacing what is there. SIGINT is held back
    meanwhile, so Ctrl-C cannot leave `dest` missing or half-replaced."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)  # left by an earlier process of this pid, if any
    with deferred():
        if dest.exists():
            os.replace(dest, old)
        try:
            os.replace(new, dest)
        except BaseException:
            if old.exists():
                os.replace(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)


def _copy_into(source: Path, out: IO[bytes]) -> None:
    out.write(source.read_bytes())


_STAGED = r"\.staged-[A-Za-z0-9_]{8}"  # tempfile.mkdtemp(prefix=".staged-")'s names


@contextlib.contextmanager
def staged_files(dest: Path) -> Iterator[Path]:
    """A hidden staging folder inside `dest` to write a set of files into; when the block ends
    well they are moved into `dest` together (Ctrl-C held back meanwhile), else all dropped, so
    `dest` has either every new file or none. `dest` may hold other things (results/ does). Called
    under `dest`'s lock: a staging folder already there is a killed writer's, and is removed."""
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob(".staged-*"):  # mkdtemp's names only, never a link
        if re.fullmatch(_STAGED, stale.name) and not stale.is_symlink() and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(dir=dest, prefix=".staged-"))
    try:
        yield stage
        for f in stage.iterdir():  # every place checked before the first moves: all or none
            check_within(dest / f.name, dest)
        with deferred():
            for f in sorted(stage.iterdir()):
                out = dest / f.name
                if out.is_symlink():  # a link's target is written, not the link: one inside `dest`
                    write_output(out, functools.partial(_copy_into, f), within=dest)
                else:
                    os.replace(f, out)
    except OSError as e:
        raise DistnerError(f"{dest}: cannot write ({e.strerror or e})") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


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
