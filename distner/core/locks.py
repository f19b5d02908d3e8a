"""One writer at a time per folder distner owns: a run folder (train, fit_into), a study (tune), a
retrain cell (retrain), a report folder (report).

The lock is `fcntl.flock` on a small file: inside the folder (`.distner.lock`), or beside it
(`.<name>.lock`) for a run folder, which is built in a hidden sibling and renamed into place. Its
holder writes its pid, host and start time into the file, so that a second writer's error names
it. The kernel releases a flock when its process ends however it ends, so a lock file left by a
killed process does not block: the next writer takes it and writes itself in. The holder removes
the file when it is done; a taker checks that the file it locked is still the one at that path.

`file_lock` is the waiting kind, for a file built by whichever process comes first (the others
wait for it, then read it): a bare flock on a given lock file, which stays when it is released.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from distner.core.errors import DistnerError

LOCK_NAME = ".distner.lock"
_HOLDER_WAIT_S = 1.0  # a holder that has just taken the lock may not have written itself in yet

# lock files this process holds -> (thread, depth): `distner train` locks its run folder before the
# data is read, and fit_into, which it then calls, locks it again
_held: dict[Path, tuple[int, int]] = {}
_held_guard = threading.Lock()


def lock_file(folder: str | os.PathLike, beside: bool = False) -> Path:
    """Where `folder`'s lock lives (both spellings of one folder share it: the path is resolved)."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}.lock" if beside else folder / LOCK_NAME


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str, beside: bool = False) -> Iterator[Path]:
    """Hold `folder`'s lock for the block, or fail at once with one line naming its holder.
    `what` starts that line (e.g. "--out runs/x"). Folders made only to hold the lock are removed
    again if they are still empty afterwards."""
    path = lock_file(folder, beside)
    me = threading.get_ident()
    with _held_guard:
        owner, depth = _held.get(path, (me, 0))
        if depth and owner == me:
            _held[path] = (me, depth + 1)
    if depth and owner == me:
        try:
            yield path
        finally:
            with _held_guard:
                _held[path] = (me, _held[path][1] - 1)
        return
    # the folders made only to hold the lock (its folder, and parents of it that were missing)
    made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    try:
        fd = _acquire(path, what)
    except DistnerError:
        _remove_empty(made)
        raise
    with _held_guard:
        _held[path] = (me, 1)
    try:
        yield path
    finally:
        with _held_guard:
            del _held[path]
        path.unlink(missing_ok=True)  # while still held: a waiting taker sees it gone and retries
        os.close(fd)
        _remove_empty(made)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, what: str, waiting: str = "") -> Iterator[None]:
    """Hold an flock on the file `path` for the block, waiting as long as another process holds it
    (`waiting`, when given, is printed to stderr once before the wait). The kernel drops the lock
    when its holder dies, so a killed holder never blocks the next; the lock file stays (removing
    it would race a waiter). A lock file that cannot be created is one line starting with `what`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a")  # noqa: SIM115 (held across the yield)
    except OSError as e:
        raise DistnerError(f"{what} ({e.strerror or e})") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (deepest first) while they are empty; one that is not has become what the
    lock guarded, and it and its parents stay."""
    with contextlib.suppress(OSError):
        for folder in folders:
            folder.rmdir()


def _acquire(path: Path, what: str) -> int:
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # its folder was removed meanwhile by a holder that made it
            continue
        except OSError as e:
            raise DistnerError(f"{what}: cannot create the lock file {path} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise DistnerError(
                f"{what}: in use by {holder} (lock {path}); wait for it to end, or choose another folder"
            ) from None
        except OSError as e:  # e.g. ENOLCK: a network file system mounted without locking
            os.close(fd)
            raise DistnerError(f"{what}: cannot lock {path} ({e.strerror or e})") from None
        if _same_file(fd, path):
            break
        os.close(fd)  # its holder removed it between our open and flock: lock the new one
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    try:  # a dead holder's record is replaced, never appended to
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    except OSError as e:  # a full disk, say: the lock is given up whole, file and all (it is held)
        path.unlink(missing_ok=True)
        os.close(fd)
        raise DistnerError(f"{what}: cannot write the lock file {path} ({e.strerror or e})") from None
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _holder(fd: int) -> str:
    """The holder as its lock file names it: 'pid 123 on host h since 2026-01-01 10:00:00 UTC'."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        try:
            record = json.loads(os.pread(fd, 4096, 0).decode())
            return f"pid {record['pid']} on {record['host']} since {record['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return "another process (its lock file names none)"
            time.sleep(0.05)
