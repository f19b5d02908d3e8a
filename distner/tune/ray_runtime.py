"""The Ray runtime that tuning and retraining share: starting or joining Ray, reaping agents a
killed local Ray left behind, checking that every node sees local storage, and running independent
fits (retraining seeds) as Ray tasks.

Reads: /proc (this user's Ray agents, to reap orphans). Writes: nothing of its own; `fit_on_ray`'s
runs write their run folders (see train/fit.py).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from distner.config import RunConfig
from distner.core import interrupts
from distner.core.compat import RAY_SYSTEM_CONFIG
from distner.core.errors import DistnerError
from distner.core.paths import is_remote
from distner.data.conll import Corpus
from distner.model.runs import KeepEpoch
from distner.options import DEFAULT_GPU_SHARE


def init_ray(address: str | None = None, verbose: int = 1) -> bool:
    """Join a cluster (`address`, e.g. "auto" or HOST:PORT) or start a local instance sized to this
    machine; workers' output reaches the driver at verbose > 1. Returns whether we started it (and
    so must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    with interrupts.base_kept(signal.SIGTERM):  # ray.init's handler would exit at once, code 15
        return _init_ray(ray, address, verbose)


def _init_ray(ray: Any, address: str | None, verbose: int) -> bool:
    # Ray's own INFO lines (its start banner, whose TensorBoard hint names a staging folder, not
    # the study) only when its output is asked for: below that, a failure stays one line
    level = logging.INFO if verbose > 1 else logging.WARNING  # INFO: Ray's default
    if address:
        ray.init(address=address, log_to_driver=verbose > 1, logging_level=level)
        return True
    ended = _reap_orphaned_ray_agents()
    if ended:  # visible: it signals processes the user may be looking at
        names = ", ".join(f"{pid} ({name})" for pid, name in ended)
        print(f"distner: ended Ray agents left by a killed local Ray session: {names}", file=sys.stderr)
    gib = 1024**3
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpus, gpus = local_resources()
    ray.init(
        address="local",  # a new instance even when `ray start` left a cluster running here
        num_cpus=cpus,
        num_gpus=gpus,
        include_dashboard=False,
        object_store_memory=int(min(2 * gib, max(0.1 * mem, 0.25 * gib))),
        log_to_driver=verbose > 1,
        _system_config=RAY_SYSTEM_CONFIG,  # trials at the priority of the command (core/compat.py)
        logging_level=level,
    )
    return True


def local_resources() -> tuple[int, int]:
    """The CPUs and GPUs a local Ray started here gets: all of this machine's."""
    return os.cpu_count() or 1, _torch_gpus()


def _torch_gpus() -> int:
    """The GPUs torch sees (CUDA_VISIBLE_DEVICES included), as the trials will: a machine with
    no GPU device node has none, and its driver never loads torch to find that out."""
    if not any(next(Path("/dev").glob(pattern), None) for pattern in ("nvidia[0-9]*", "kfd", "dxg")):
        return 0
    import torch

    return torch.cuda.device_count()


_RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
_SESSION_KEEPERS = ("raylet", "gcs_server")  # a session with either still running is alive
_SESSION_DIR = re.compile(r"/[^\0\s=]*?/session_[^/\0\s]+")


def _reap_orphaned_ray_agents() -> list[tuple[int, str]]:
    """A SIGKILLed driver takes its local Ray's raylet and GCS server down but leaves their
    DashboardAgent/RuntimeEnvAgent running (they ignore SIGTERM). End this user's agents whose
    session has no raylet or GCS server left. Agents of live sessions (anyone's other Ray work on
    this machine) and agents whose session cannot be told are never touched. Returns the (pid,
    process title) of each agent it ended."""
    proc = Path("/proc")
    ended: list[tuple[int, str]] = []
    if not proc.is_dir():
        return ended
    cmdlines = {d: _cmdline(d) for d in proc.iterdir() if d.name.isdigit()}
    live = {
        m.group(0)
        for args in cmdlines.values()
        if args and Path(args[0]).name in _SESSION_KEEPERS
        for m in _SESSION_DIR.finditer("\0".join(args))
    }
    for d, args in cmdlines.items():
        if not args or not args[0].startswith(_RAY_AGENTS):
            continue
        try:
            session = _agent_session(d)
            if session is not None and session not in live and d.stat().st_uid == os.getuid():
                os.kill(int(d.name), 9)
                ended.append((int(d.name), args[0].split()[0]))
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to inspect
    return ended


def _cmdline(d: Path) -> list[str]:
    try:
        return [a.decode(errors="replace") for a in (d / "cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


def _agent_session(d: Path) -> str | None:
    """An agent's session folder, from the log files it holds open (its own command line is
    overwritten with its title, so it does not say)."""
    for fd in (d / "fd").iterdir():
        try:
            m = _SESSION_DIR.match(os.readlink(fd))
        except OSError:
            continue
        if m:
            return m.group(0)
    return None


def check_storage_for_cluster(storage: str) -> None:
    """On several nodes a local path only works if every node sees it (NFS): check for real by
    writing a marker here and looking for it from a task pinned to each node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    if len(nodes) < 2 or is_remote(storage):
        return
    Path(storage).mkdir(parents=True, exist_ok=True)
    marker = Path(storage) / f".distner-visible-{os.getpid()}"
    marker.write_text("ok")

    @ray.remote(num_cpus=0)
    def sees(path: str) -> bool:
        return os.path.exists(path)

    try:
        seen = ray.get(
            [
                sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(
                    str(marker)
                )
                for n in nodes
            ]
        )
    finally:
        marker.unlink(missing_ok=True)
    if not all(seen):
        raise DistnerError(
            f"--storage {storage}: {seen.count(False)} of {len(nodes)} cluster nodes cannot see this "
            "local path; use s3://..., gs://... or an NFS path mounted on every node"
        )


def gpu_share(requested: float | None) -> float:
    """GPU share per trial or run: as requested, else DEFAULT_GPU_SHARE when the cluster has GPUs,
    else 0."""
    import ray

    if requested is not None:
        return requested
    return DEFAULT_GPU_SHARE if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def fit_on_ray(
    jobs: list[tuple[str, RunConfig, Path]],
    corpus: Corpus,
    address: str | None = None,
    gpus_per_run: float | None = None,
    keep: KeepEpoch = "best",
) -> None:
    """Run independent fits (retraining seeds) as Ray tasks spread over GPUs and nodes."""
    import ray

    started = init_ray(address)
    try:
        gpus = gpu_share(gpus_per_run)
        if jobs:  # every node must see the run folders the head reads back
            check_storage_for_cluster(str(Path(jobs[0][2]).parent.parent))
        ref = ray.put(corpus)

        @ray.remote(num_cpus=1, num_gpus=gpus)
        def one(cfg: RunConfig, corpus: Corpus, out: str) -> str:
            from distner.train.fit import fit_into  # torch and Lightning: in the task, not the driver

            accel = "gpu" if gpus > 0 else "cpu"
            fit_into(cfg, corpus, out, overwrite=True, accelerator=accel, progress=False, keep=keep)
            return out

        pending = [one.remote(cfg, ref, str(out)) for _, cfg, out in jobs]
        for i in range(len(pending)):
            done, pending = ray.wait(pending, num_returns=1)
            print(f"[{i + 1}/{len(jobs)}] finished {ray.get(done[0])}", flush=True)
    finally:
        if started:
            ray.shutdown()
