"""The orphaned-agent reaper ends only agents of dead Ray sessions: a live Ray is never touched."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distner.tune.ray_runtime import _agent_session, _cmdline, _reap_orphaned_ray_agents

from ..helpers import started_here

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses

DRIVER = (
    "import ray, time; ray.init(num_cpus=1, include_dashboard=False); "
    "print('up', flush=True); time.sleep(300)"
)
PR_SET_CHILD_SUBREAPER = 36


def _agents() -> dict[int, str | None]:
    """pid -> session folder of every Ray agent this test session started (other Ray on the
    machine, a study or another test run, is none of this test's business)."""
    out = {}
    for d in Path("/proc").iterdir():
        args = _cmdline(d) if d.name.isdigit() else []
        if (
            args
            and args[0].startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent"))
            and started_here(d.name)
        ):
            try:
                out[int(d.name)] = _agent_session(d)
            except OSError:
                continue
    return out


def _wait(condition, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


@contextlib.contextmanager
def _subreaper():
    """Orphans of our children are re-parented to this process instead of init: the reaper must
    judge an agent by its session, not by who its parent is."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) not available")
    try:
        yield
    finally:
        _reap_children(20)  # the session's other processes were re-parented to us too
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _reap_children(seconds: float) -> None:
    """Wait for (and collect) every child of this process, for at most `seconds`."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.2)
        except ChildProcessError:
            return


def test_live_session_agents_survive_and_orphans_of_a_dead_one_are_reaped(no_ray_left):
    with _subreaper():
        _live_then_dead_session()


def _live_then_dead_session() -> None:
    before = set(_agents())
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    ours: dict[int, str | None] = {}
    try:
        assert driver.stdout.readline().strip() == "up"
        assert _wait(lambda: len(set(_agents()) - before) >= 2, 30), "Ray started no agents"
        ours = {pid: s for pid, s in _agents().items() if pid not in before}
        assert all(s and "/session_" in s for s in ours.values()), ours

        assert _reap_orphaned_ray_agents() == []  # the session is alive: nothing of it may die
        time.sleep(1)
        assert set(ours) <= set(_agents()), "the reaper killed agents of a live Ray session"

        driver.send_signal(signal.SIGKILL)  # what a killed study leaves: agents without a session
        driver.wait()
        assert _wait(lambda: not _keepers(set(ours.values())), 30), "raylet/GCS outlived their driver"
        assert set(ours) <= set(_agents()), "the agents died with their session: nothing left to reap"
        # orphans, but not init's (re-parenting follows the raylet's exit; give it time under load)
        assert _wait(lambda: all(_parent(p) in (os.getpid(), None) for p in ours if _alive(p)), 20)
        ended = _reap_orphaned_ray_agents()  # named, so that init_ray can say what it ended
        assert set(ours) <= {pid for pid, _ in ended} and all(n.startswith("ray::") for _, n in ended)
        assert _wait(lambda: not set(ours) & set(_agents()), 10), "orphaned agents were not reaped"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        for pid in ours:  # a failed assertion must not leave this test's agents behind
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}/cmdline").is_file() and bool(_cmdline(Path(f"/proc/{pid}")))


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None  # gone meanwhile


def _keepers(sessions: set[str | None]) -> list[int]:
    """raylet / GCS server processes still serving one of `sessions`."""
    pids = []
    for d in Path("/proc").iterdir():
        args = _cmdline(d) if d.name.isdigit() else []
        if args and Path(args[0]).name in ("raylet", "gcs_server"):
            text = "\0".join(args)
            if any(s and s in text for s in sessions):
                pids.append(int(d.name))
    return pids
