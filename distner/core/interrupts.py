"""One policy for stop signals, Ctrl-C (SIGINT) and SIGTERM (`kill`, a scheduler's preemption):

- the first asks the work to stop at its next safe point (a fit: the next batch boundary; a
  study: Tune's graceful stop, which saves the study's state); what was being written is dropped
  or saved whole, never left half-written, and the command exits 130;
- a second stops at once (KeyboardInterrupt where it lands);
- a signal that distner's parent set to ignored stays ignored (a shell starts background jobs with
  SIGINT ignored: `kill -INT` of one does nothing, as for any program; send SIGTERM);
- Ray's driver handler for SIGTERM (exit at once), which ray.init installs and ray.shutdown leaves
  behind, is replaced within the block like Python's defaults: a pipeline that tuned, then retrains,
  still stops its fit cleanly;
- while finished files are moved into place, both are held back (`deferred`) and act right after.

Nothing is installed on import. The command line installs the policy's base (`install`) as its
first step, before any heavy import: from then on either signal is a KeyboardInterrupt wherever it
lands (exit 130, one line), never the default death by SIGTERM (143, no word, a lock left). Once
the command has finished, `finished` makes a late one end the process at once, saying the output is
complete. `stop_requests` installs the handler for its block, in the main thread only, and puts
back what was there. It does not replace a handler someone else installed (a program that imports
distner keeps its own), only Python's defaults, the base or an outer block's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from distner.core import compat

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_DEFAULTS = (signal.default_int_handler, signal.SIG_DFL, None)  # None: set outside Python


class StopRequest:
    """What `stop_requests` saw: `received` is the first signal's number, None while none came."""

    def __init__(self, on_first: Callable[[int], None] | None) -> None:
        self.received: int | None = None
        self._on_first = on_first

    def check(self) -> None:
        """At a safe point: stop here (KeyboardInterrupt) if a stop was asked for."""
        if self.received is not None:
            raise KeyboardInterrupt

    def _handle(self, sig: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt("stopped at once")
        self.received = sig
        if self._on_first is not None:
            self._on_first(sig)


def _ours(handler: Any) -> bool:
    return isinstance(getattr(handler, "__self__", None), StopRequest) or handler is _interrupt


def _interrupt(sig: int, frame: Any) -> None:
    """The base: SIGTERM means what Ctrl-C means, a KeyboardInterrupt where it lands."""
    raise KeyboardInterrupt


def install() -> None:
    """The base policy for a command line process (cli/main.py, first thing): SIGINT and SIGTERM
    each raise KeyboardInterrupt. An ignored signal stays ignored, a foreign handler is kept."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) in _DEFAULTS:
            signal.signal(sig, _interrupt)


@contextlib.contextmanager
def base_kept(sig: int) -> Iterator[None]:
    """Put the base back on `sig` after the block if Ray replaced it there (ray.init installs, for
    SIGTERM, a handler that exits at once with code 15)."""
    before = signal.getsignal(sig)
    try:
        yield
    finally:
        if before is _interrupt and compat.is_ray_exit_handler(signal.getsignal(sig)):
            signal.signal(sig, _interrupt)


def finished(code: int) -> None:
    """The command's work is done and said: a stop while Python shuts down (torch's and Ray's
    threads, atexit hooks) ends the process at once, exit 130, with one line saying so."""

    said = "finished; its output is complete" if code == 0 else f"ended (exit {code})"

    def late(sig: int, frame: Any) -> None:
        with contextlib.suppress(Exception):  # a reader gone away: nothing left to say
            sys.stdout.flush()
            sys.stderr.write(f"distner: interrupted after the command {said}\n")
            sys.stderr.flush()
        os._exit(130)

    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        if _ours(signal.getsignal(sig)) or signal.getsignal(sig) in _DEFAULTS:
            signal.signal(sig, late)


@contextlib.contextmanager
def stop_requests(on_first: Callable[[int], None] | None = None) -> Iterator[StopRequest]:
    """Within: the first SIGINT/SIGTERM is recorded (and `on_first(signum)` called from the
    handler), the second raises KeyboardInterrupt. The work polls `check()` at its safe points."""
    request = StopRequest(on_first)
    old: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            current = signal.getsignal(sig)
            # never SIG_IGN, never a handler the program that imported distner installed
            if current in _DEFAULTS or _ours(current) or compat.is_ray_exit_handler(current):
                old[sig] = signal.signal(sig, request._handle)
    try:
        yield request
    finally:
        for signum, handler in old.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block (a swap of finished files into place); one that
    came meanwhile is raised again when it ends. Done with handlers, not a signal mask: a mask is
    per thread, and the kernel hands a process's signal to any thread that does not block it
    (TensorBoard's writer, torch's pools), after which Python runs the handler anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    old: dict[int, Any] = {}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            old[sig] = signal.signal(sig, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in held:
            signal.raise_signal(signum)
