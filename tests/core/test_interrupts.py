"""core/interrupts.py's policy, in this process with real signals: first stop recorded, second raises;
an ignored signal stays ignored; someone else's handler is kept; everything put back after."""

from __future__ import annotations

import os
import signal
import time

import pytest

from distner.core.interrupts import STOP_SIGNALS, deferred, stop_requests


@pytest.fixture(autouse=True)
def signals_as_in_a_terminal():
    """Python's own handlers, as in a process started from a terminal, even when the tests run with
    SIGINT ignored (started as a background job) or in a test worker that handles SIGTERM itself
    (pytest-xdist's): the policy keeps an inherited ignore or handler, which is tested apart."""
    was_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    was_term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGINT, was_int)
    signal.signal(signal.SIGTERM, was_term)


def _send(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # Python runs the handler at the next bytecode boundary of the main thread


@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: s.name)
def test_first_is_recorded_second_stops_at_once(sig: signal.Signals) -> None:
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    seen: list[int] = []
    with stop_requests(seen.append) as stop:
        _send(sig)
        assert stop.received == sig and seen == [sig]
        with pytest.raises(KeyboardInterrupt):
            stop.check()
        with pytest.raises(KeyboardInterrupt, match="stopped at once"):
            _send(sig)
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before


def test_an_ignored_signal_stays_ignored_and_a_foreign_handler_is_kept() -> None:
    foreign: list[int] = []

    def mine(signum: int, frame: object) -> None:
        foreign.append(signum)

    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job
    old_term = signal.signal(signal.SIGTERM, mine)  # a program that imports distner
    try:
        with stop_requests() as stop:
            _send(signal.SIGINT)
            _send(signal.SIGTERM)
            assert stop.received is None and foreign == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def test_nested_blocks_each_see_their_own_and_put_the_outer_back() -> None:
    with stop_requests() as outer:
        with stop_requests() as inner:
            _send(signal.SIGTERM)
        assert inner.received == signal.SIGTERM and outer.received is None
        _send(signal.SIGINT)
        assert outer.received == signal.SIGINT


def test_deferred_holds_a_signal_until_the_block_ends() -> None:
    import threading

    idle = threading.Event()  # another thread, as a fit has: a signal mask would not hold here
    threading.Thread(target=idle.wait, daemon=True).start()
    with stop_requests() as stop:
        with deferred():
            _send(signal.SIGTERM)
            assert stop.received is None  # held back while files are swapped into place
        time.sleep(0.05)
        assert stop.received == signal.SIGTERM
    idle.set()


def test_rays_leftover_sigterm_handler_is_replaced_within_and_put_back_after(no_ray_left) -> None:
    """ray.init installs a SIGTERM handler that exits at once and ray.shutdown leaves it: a pipeline
    that tuned and then retrains must still stop its fit by the policy."""
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    ray.shutdown()
    rays = signal.getsignal(signal.SIGTERM)
    try:
        assert callable(rays) and rays.__module__.startswith("ray.")
        with stop_requests() as stop:
            _send(signal.SIGTERM)
            assert stop.received == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is rays
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


LATE = """
import os, signal, sys, time
from distner.core import interrupts
interrupts.install()
assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # inherited ignore kept
try:  # the line is inside: the stop can land while print is still returning
    print("working", flush=True)
    time.sleep(30)
except KeyboardInterrupt:
    print("stopped as Ctrl-C", flush=True)
interrupts.finished(0)
print("finished", flush=True)
time.sleep(30)  # as a shutdown that takes its time
"""


@pytest.mark.integration  # real processes
def test_the_base_makes_sigterm_ctrl_c_and_a_late_one_ends_at_once_with_a_word() -> None:
    """Before a block's policy, SIGTERM is a KeyboardInterrupt (not the default death, 143);
    once the command finished, one more ends the process with 130 and a line saying so."""
    import subprocess
    import sys

    from ..helpers import ENV

    proc = subprocess.Popen(
        [sys.executable, "-c", LATE], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "working\n"
    proc.send_signal(signal.SIGINT)  # ignored by its parent: stays ignored
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline() == "stopped as Ctrl-C\n"
    assert proc.stdout.readline() == "finished\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert err == "distner: interrupted after the command finished; its output is complete\n"
