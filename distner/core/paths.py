"""Where distner may write, checked before any work: a mistyped path costs nothing and loses nothing.

Every command that writes calls these first: an output that names a folder where a file is meant
(or the reverse), a path under a file, a place the user cannot write, or a file that is also an
input is one line naming the path, before data is read or Ray starts. `is_remote` says whether a
location is a storage URI (s3://, gs://, ...) rather than a path on this machine.

`output_target` is the one output policy that every writer (fileio.write_output) follows: a
regular file, or a new one, is replaced atomically by a temp file beside it; a symbolic link writes
its target the same way (beside the target; the link stays a link); `-` (stdout), a FIFO, a
character device (/dev/null) or a file this process already has open (/dev/stdout, /dev/fd/N) is
written into as it is: never replaced, and no temp file is made in its folder.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from distner.core.errors import DistnerError, shorten

# Storage URIs that every node reaches by itself (anything else is a path on each node's disk).
REMOTE_PREFIXES = ("s3://", "gs://", "gcs://", "hdfs://", "abfs://", "az://")


def is_remote(location: str) -> bool:
    """A storage URI (a study, a run folder, a TensorBoard logdir) rather than a local path."""
    return location.startswith(REMOTE_PREFIXES)


def writable_place(path: Path, what: str) -> None:
    """`path` (a folder to create or reuse) can be made: its nearest existing ancestor is a
    writable folder."""
    if path.is_symlink() and not path.exists():
        raise DistnerError(f"{what}: {path} is a broken symbolic link")
    here = path
    while not here.exists():
        if here.is_symlink():
            raise DistnerError(f"{what}: {here} is a broken symbolic link")
        here = here.parent
    if not here.is_dir():
        raise DistnerError(f"{what}: {here} is a file, not a folder")
    if not os.access(here, os.W_OK | os.X_OK):
        raise DistnerError(f"{what}: {here} is not writable")


def _statable(p: Path, what: str) -> None:
    """A path the system can look up (it may not exist): too long a name, a loop of symbolic links
    or a folder that may not be searched is one line, not a traceback from the first check."""
    try:
        os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as e:
        raise DistnerError(f"{what}: {e.strerror or e}") from None


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """A folder distner writes into (creating it if needed)."""
    p = Path(path).expanduser()
    what = f"{flag} {p}"
    _statable(p, what)
    if p.exists() and not p.is_dir():
        raise DistnerError(f"{what}: is a file; a folder is needed here")
    writable_place(p, what)
    return p


STDOUT = "-"  # an output named `-` is standard output


@dataclass(frozen=True)
class OutputTarget:
    """Where and how a write to an output goes (see the module's docstring)."""

    kind: Literal["stdout", "stream", "file", "other"]  # other: a socket or block device, refused
    path: Path  # a "file" kind's real file (a symlink's target); else the path as named


def output_target(path: str | os.PathLike) -> OutputTarget:
    if os.fspath(path) == STDOUT:
        return OutputTarget("stdout", Path(STDOUT))
    p = Path(path).expanduser()
    try:
        mode: int | None = os.stat(p).st_mode  # through symlinks
    except OSError:  # new (or under a file: the checks below say which)
        mode = None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return OutputTarget("stream" if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) else "other", p)
    if _through_proc(p):  # /dev/stdout redirected to a file: that open file, not a new one
        return OutputTarget("stream", p)
    return OutputTarget("file", Path(os.path.realpath(p)))


_OPEN_FILE = re.compile(r"/proc/(self|thread-self|\d+)(/task/\d+)?/fd/\d+")


def _through_proc(p: Path) -> bool:
    """Whether `p`'s chain of symbolic links passes a file descriptor of a process
    (/dev/stdout -> /proc/self/fd/1, /dev/fd/2)."""
    here = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(p))), p.name)
    for _ in range(40):  # the kernel's own limit on links followed
        if _OPEN_FILE.fullmatch(here):
            return True
        try:
            link = os.readlink(here)
        except OSError:  # not a link (or gone): the chain ends here
            return False
        here = os.path.normpath(os.path.join(os.path.dirname(here), link))
    return False


def check_within(path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """A file distner writes into a folder it keeps (a run, a retrain cell, a study, a report),
    which may have come from someone else: it is a regular file or a new name whose real path lies
    inside the folder, never a link out of it (nor a FIFO or a device), so that a write lands there
    and nowhere else."""
    p = Path(path)
    root = os.path.realpath(folder)
    real = os.path.realpath(p)
    if os.path.commonpath([root, real]) != root:
        raise DistnerError(
            f"{p}: is a link out of {folder} (to {real}); distner writes only inside the folder: "
            "remove the link"
        )
    target = output_target(p)
    if target.kind != "file":
        raise DistnerError(f"{p}: is not a regular file; distner writes only regular files into {folder}")
    return p


def check_output_file(
    path: str | os.PathLike, flag: str, inputs: Iterable[str | os.PathLike | None] = ()
) -> Path:
    """An output file, by the policy of `output_target`: `-`; a writable FIFO or character
    device; or a file (a symlink's target) that is not a folder, not read-only and in a writable
    folder. Never one of the command's `inputs` (another spelling, a symlink or a hard link of one
    included)."""
    if os.fspath(path) == STDOUT:
        return Path(STDOUT)
    p = Path(path).expanduser()
    what = f"{flag} {p}"
    _statable(p, what)
    if p.is_dir():
        raise DistnerError(f"{what}: is a folder; a file name is needed here")
    target = output_target(p)
    if target.kind == "other":
        raise DistnerError(f"{what}: is not a regular file, a FIFO or a character device")
    if target.kind == "stream" and not os.access(p, os.W_OK):
        raise DistnerError(f"{what}: is not writable")
    if target.kind == "file":
        shown = f"{what} (a link to {target.path})" if p.is_symlink() else what
        if target.path.exists() and not os.access(target.path, os.W_OK):
            raise DistnerError(f"{shown}: is read-only")
        writable_place(target.path.parent, shown)
    for src in inputs:
        if src is not None and same_file(p, src):
            raise DistnerError(f"{what}: is also an input ({src}); choose another file")
    return p


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two spellings name one file (after symlinks; hard links too, when both exist)."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
        return pa.resolve() == pb.resolve()
    except OSError:
        return False


def check_path_component(name: str, flag: str) -> str:
    """A name used as one folder under another (a study under --storage): nothing that climbs out,
    and no control character (a newline or an escape sequence would garble every line naming it)."""
    bad = (
        not name
        or name in (".", "..")
        or any(c in name for c in "/\\\0")
        or os.path.isabs(name)
        or name != name.strip()
        or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name)
    )
    if bad:
        raise DistnerError(
            f"{flag} {shorten(name)}: must be a plain name (one folder: no '/', '\\', '..', control "
            "characters or leading/trailing spaces)"
        )
    return name


# what a path that exists but is not a regular file is, in words
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))  # fmt: skip


def check_input_file(path: str | os.PathLike, what: str) -> Path:
    """A file distner reads whole (more than once, and by name): a regular file, or a symbolic
    link to one. `-`, a folder, a FIFO or a device is one line saying which, not "not found"."""
    if os.fspath(path) == STDOUT:
        raise DistnerError(f"{what} -: standard input is not read; give a file")
    p = Path(path).expanduser()
    try:
        mode = os.stat(p).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise DistnerError(f"{what} {p}: file not found") from None
    except OSError as e:
        raise DistnerError(f"{what} {shorten(str(p))}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise DistnerError(f"{what} {p}: a folder, not a file")
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a file")
        raise DistnerError(f"{what} {p}: not a regular file ({kind})")
    return p
