"""Packed trials: many Ray Tune trials trained side by side in one process per GPU.

Each trial stays one config to Ray Tune, Optuna, ASHA, trials.csv, TensorBoard and --resume. Its
trial function (`run_packed_trial`) is thin: it imports no torch, holds no GPU and trains nothing.
It hands its config to a `Packer`, a Ray actor that owns one GPU (or, on a CPU-only cluster, a
share of the cores), keeps up to K members (`engine.Member`) and trains each in its own thread
and CUDA stream, so their small kernels overlap on the card instead of taking turns between
processes. The trial asks for one epoch at a time, reports it to Tune like any trial, and when
ASHA stops it the member is dropped and its slot goes to the next trial.

What this removes from a trial: a process and CUDA context of its own, importing torch and
Lightning, encoding the corpus (once per packer and data-shaping config instead), and Lightning's
per-step hooks. docs/performance.md has the design and the measurements.

Reads: the corpus (sent to each packer once). Writes, per trial folder, what a Lightning trial
writes: `config.yaml`, `model.pt` of the best epoch, `tb/` (TensorBoard) and checkpoints via Tune.
"""

from __future__ import annotations

import io
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distner.config import AUTO, RunConfig, auto_train_layers
from distner.core.errors import DistnerError, TrainingDiverged
from distner.core.fileio import write_yaml
from distner.evaluation.metrics import MONITOR
from distner.options import PACK_MAX
from distner.sizes import training_bytes as member_bytes  # noqa: F401 (packing sizes members by it)
from distner.spaces import Space
from distner.train.checkpoints import CheckpointClock

if TYPE_CHECKING:  # the trial's process imports no torch (data/vocab.py does)
    from distner.data.conll import Corpus

GPU_MEMORY_USE = 0.8  # of a GPU's memory that packed members may fill, by the estimate below
CHECKPOINT_FILE = "member.pt"
THIN_TRIAL_MEMORY = 256 * 2**20  # bytes: a Ray worker with distner's light modules, no torch
JOIN_TIMEOUT_S = 600.0  # a trial waits this long for a packer slot (one frees when a trial ends)
TB_KEYS = ("train_loss", "val_loss", MONITOR, "val_entity_micro_f1", "train_tokens_per_s")


# ---------------------------------------------------------------- the actor (one per GPU)


class Packer:
    """Trains up to `capacity` members at once, each in the thread of the call that steps it (a
    threaded Ray actor). Every method takes the trial id that names the member."""

    def __init__(self, corpus: Corpus, accelerator: str, threads: int, capacity: int):
        import torch

        from distner.train.engine import SharedData

        torch.set_num_threads(max(1, threads))
        device = torch.device("cuda" if accelerator == "gpu" else "cpu")
        self.shared = SharedData(corpus, device)
        self.capacity = capacity
        self.members: dict[str, Any] = {}
        self.reserved: set[str] = set()
        self.lock = threading.Lock()

    def load(self) -> int:
        with self.lock:
            return len(self.members) + len(self.reserved)

    def memory(self) -> int:
        """Bytes of this packer's GPU (0 on a CPU): the driver sizes K by it, so no other
        process has to start on the card to ask."""
        import torch

        if self.shared.device.type != "cuda":
            return 0
        return int(torch.cuda.get_device_properties(0).total_memory)

    def set_capacity(self, capacity: int) -> None:
        with self.lock:
            self.capacity = capacity

    def open(self, trial: str, flat: dict[str, Any], state: bytes | None) -> dict[str, Any] | None:
        """Build a member for `trial` (from its checkpoint when resumed). None when full. Returns
        what the trial writes as config.yaml, and the epoch the member continues after."""
        import torch

        from distner.model.runs import CONFIG_HEADER, config_record
        from distner.train.engine import Member

        with self.lock:
            self.members.pop(trial, None)  # a retried trial starts its member again
            if len(self.members) + len(self.reserved) >= self.capacity:
                return None
            self.reserved.add(trial)
        try:
            loaded = None
            if state is not None:
                # to the CPU: random generator states and best weights live there; load_state_dict
                # copies weights and Adam's moments onto the device
                loaded = torch.load(io.BytesIO(state), map_location="cpu", weights_only=True)
            member = Member(RunConfig.from_flat(flat), self.shared, state=loaded)
        finally:
            with self.lock:
                self.reserved.discard(trial)
        with self.lock:
            self.members[trial] = member
        record = config_record(member.cfg, self.shared.corpus, member.data)
        return {"record": record, "header": CONFIG_HEADER, "epoch": member.epoch}

    def _member(self, trial: str) -> Any:
        with self.lock:
            member = self.members.get(trial)
        if member is None:
            raise DistnerError(f"trial {trial}: no member in this packer (closed)")
        return member

    def epoch(self, trial: str) -> dict[str, float]:
        """Train and validate one epoch of `trial`'s member."""
        member = self._member(trial)
        try:
            return member.run_epoch()
        except TrainingDiverged:
            self.close(trial)
            return {"diverged": 1.0}

    def best_weights(self, trial: str) -> bytes:
        return _to_bytes(self._member(trial).best_weights())

    def checkpoint(self, trial: str) -> bytes:
        return _to_bytes(self._member(trial).state_dict())

    def close(self, trial: str) -> None:
        with self.lock:
            self.members.pop(trial, None)


def _to_bytes(obj: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# ---------------------------------------------------------------- the trial (a thin Ray worker)


def run_packed_trial(
    params: dict[str, Any],
    *,
    packers: list[Any],
    base: dict[str, Any],
    checkpoint_every: int = 0,
) -> None:
    """The trainable of a packed study: one config, trained epoch by epoch in a packer."""
    import ray
    from ray import tune

    trial = tune.get_context().get_trial_id()
    flat = RunConfig.from_flat({**base, **params}).to_flat()
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # resumed: the member continues after its last reported epoch
        with checkpoint.as_directory() as d:
            state = (Path(d) / CHECKPOINT_FILE).read_bytes()
    node = ray.get_runtime_context().get_node_id()
    packer, opened = _join(packers, trial, flat, state)
    out = Path.cwd()
    write_yaml(out / "config.yaml", opened["record"], header=opened["header"])
    board = _Board(out / "tb")
    clock = CheckpointClock(checkpoint_every)
    saving = 0.0  # seconds this trial spent fetching and writing checkpoints (reported as checkpoint_s)
    try:
        for epoch in range(opened["epoch"] + 1, int(flat["epochs"]) + 1):
            m = ray.get(packer.epoch.remote(trial))
            if m.get("diverged"):  # would diverge again if retried: end with a score of 0
                tune.report({MONITOR: 0.0, "diverged": 1.0, "node_id": node})
                return
            board.write({k: m[k] for k in TB_KEYS}, epoch)
            if m["improved"]:
                (out / "model.pt").write_bytes(ray.get(packer.best_weights.remote(trial)))
            metrics = {**{k: v for k, v in m.items() if k != "improved"}, "node_id": node}
            if not clock.due(epoch):
                tune.report({**metrics, "checkpoint_s": saving})
                continue
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / CHECKPOINT_FILE).write_bytes(ray.get(packer.checkpoint.remote(trial)))
                saving += time.perf_counter() - start
                tune.report({**metrics, "checkpoint_s": saving}, checkpoint=tune.Checkpoint.from_directory(d))
            clock.saved(start)
    finally:  # ASHA's stop ends the trial inside tune.report (SystemExit): free the slot
        board.close()
        packer.close.remote(trial)


class _Board:
    """A trial's TensorBoard run (tb/, as Lightning's logger writes it for unpacked trials), with
    tensorboard's own event writer: its flush puts every queued event on disk before the trial
    reports, so Tune's sync of the trial folder carries it (tensorboardX's flush does not)."""

    def __init__(self, logdir: Path):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.writer = EventFileWriter(str(logdir))

    def write(self, scalars: dict[str, float], step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
        self.writer.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=values)))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _join(packers: list[Any], trial: str, flat: dict[str, Any], state: bytes | None) -> tuple[Any, dict]:
    """A member in the least loaded packer with a free slot. Tune runs at most K trials per packer,
    so a slot is free at once, or as soon as a stopped trial's member is dropped."""
    import ray

    deadline = time.monotonic() + JOIN_TIMEOUT_S
    state_ref = ray.put(state) if state is not None else None
    while True:
        loads = ray.get([p.load.remote() for p in packers])
        for i in sorted(range(len(packers)), key=loads.__getitem__):
            opened = ray.get(packers[i].open.remote(trial, flat, state_ref))
            if opened is not None:
                return packers[i], opened
        if time.monotonic() > deadline:
            raise RuntimeError(f"trial {trial}: no packer slot freed in {JOIN_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


# ---------------------------------------------------------------- the driver's side


def largest_config(space: Space) -> RunConfig:
    """The space's most memory-hungry config: every searched size at its top, no truncation if
    the space allows it, a BiLSTM if it may be one."""
    values = space.base()
    for p in space.params:
        if p.name == "seq_len" and p.contains(0):
            values[p.name] = 0
        elif isinstance(p.upper, (int, float)) and p.name not in ("lr", "weight_decay", "seed"):
            values[p.name] = p.upper
    # encoder_train_layers `auto` (fixed, or a choice's value): the most layers it can come to
    trained = space.values("encoder_train_layers")
    if AUTO in trained:
        picks = [
            auto_train_layers(x, f)
            for x in space.values("encoder_layers")
            for f in space.values("encoder_features")
        ]
        values["encoder_train_layers"] = max([t for t in trained if t != AUTO] + picks)
    return RunConfig.from_flat(values, source=space.source)


def check_pack(pack: int, need: int, have: int, where: str) -> None:
    """Refuse a --pack the device cannot hold, by the estimate; one line naming both numbers."""
    most = int(GPU_MEMORY_USE * have // max(need, 1))
    if pack > most:
        raise DistnerError(
            f"--pack {pack}: the space's largest config needs ~{need / 2**30:.2f} GiB a member and "
            f"{where} has {have / 2**30:.1f} GiB; at most {max(most, 0)} fit (give a smaller --pack)"
        )


def auto_pack(need: int, have: int) -> int:
    """Members per GPU when --pack is not given: as many as fit by the estimate, at most PACK_MAX."""
    return max(1, min(PACK_MAX, int(GPU_MEMORY_USE * have // max(need, 1))))


def gpu_memory(packers: list[Any]) -> int:
    """The smallest GPU memory of the packers' GPUs (the driver may have none)."""
    import ray

    return min(ray.get([p.memory.remote() for p in packers]))


def set_capacity(packers: list[Any], capacity: int) -> None:
    import ray

    ray.get([p.set_capacity.remote(capacity) for p in packers])


def stop_packers(packers: list[Any]) -> None:
    import ray

    for p in packers:
        ray.kill(p)


def packer_names(study: str, count: int) -> list[str]:
    return [f"distner-packer-{study}-{i}" for i in range(count)]


def start_packers(
    names: list[str], corpus: Corpus, capacity: int, accelerator: str, cpus: float, threads: int
) -> list[Any]:
    """One packer actor per name: each owns a GPU (accelerator "gpu") or `cpus` cores."""
    import ray

    actor = ray.remote(Packer)
    ref = ray.put(corpus)
    packers = [
        actor.options(
            name=name,
            num_cpus=cpus,
            num_gpus=1 if accelerator == "gpu" else 0,
            max_concurrency=capacity + 4,  # every member's epoch call, plus load/close/checkpoints
            max_restarts=0,
        ).remote(ref, accelerator, threads, capacity)
        for name in names
    ]
    ray.get([p.load.remote() for p in packers])  # type: ignore[union-attr]  # built (and their CUDA contexts made) before trials
    return packers


def packed_callback(names: list[str]) -> Any:
    """A Tune callback that drops the member of every trial that ends, however it ended (a trial
    killed with its worker cannot drop its own). It names the packers rather than holding them: Tune
    saves it with the study, and a resumed study has new packers of the same names."""
    import ray
    from ray import tune

    class DropEnded(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            for name in names:
                try:
                    ray.get_actor(name).close.remote(trial.trial_id)
                except ValueError:  # not started (yet, or any more)
                    continue

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.on_trial_complete(iteration, trials, trial)

    return DropEnded()
