"""What Ray costs: the same N small trials run one after another in this process without Ray,
then as `distner tune` studies (ASHA off so every trial runs all its epochs). Prints one JSON line.

- sequential_s: N plain `fit` calls, each using every core.
- study_serial_s: a study with one trial at a time, each trial given every core: the same work,
  so (study_serial_s - ray_start_s - sequential_s) / N is Ray's per-trial overhead.
- study_parallel_s: a study packing trials onto the machine (--cpus-per-trial, --gpus-per-trial).
- speedup = sequential_s / study_parallel_s.
- Why a packed study is or is not faster, from the parallel study's trials (their progress.csv):
  study_tok_s is a trial's training tokens/s while sharing the machine (median over trials of their
  last epoch), beside seq_tok_s, the same for the sequential fits; concurrent is how many trials ran
  at once, so concurrent * study_tok_s / seq_tok_s above 1 means packing adds throughput (below 1:
  the trials only take turns, e.g. a GPU time-slicing processes without MPS). trial_setup_s is a
  trial's first report minus its last epoch (loading data, building the model, CUDA start-up).
- checkpoint_mb, checkpoint_s: size and seconds of one resumable trial checkpoint (what a trial
  saves and copies to storage every --checkpoint-every epochs: weights, Adam state, loop state),
  measured on the sequential fits; epoch_s their median training epoch; checkpoint_share =
  checkpoint_s / epoch_s, the cost if a trial checkpointed every epoch.

- With --pack K the parallel study packs K trials into one process per GPU (or per
  --cpus-per-trial cores): `pack` and `device` say how it ran. aggregate_tok_s is every trial's
  real training tokens over the study's wall time, and aggregate_ratio that over one bare PyTorch
  loop of the same config (train_throughput.py's, same process); time_split is where the packed
  trials' time went (member setup, training, validation, checkpoints, and the rest: Ray, waiting
  for a slot, reporting), as shares of their summed time.

    python benchmarks/tune_overhead.py --data-dir DIR [--trials 6] [--gpus-per-trial 0.25] [--pack K]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from distner.config import RunConfig
from distner.data.conll import Corpus
from distner.data.encoded import prepare
from distner.options import TuneOptions
from distner.train.fit import fit
from distner.tune.driver import run_study

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import bare_epoch  # noqa: E402 - the same bare loop as that benchmark

PROGRESS = "progress.csv"
# wall seconds, trials.csv rows, and per trial its per-epoch rows of progress.csv
Study = tuple[float, list[dict], list[list[dict]]]
SPACE = """# benchmark space: only lr varies; fixed sizes
lr: {{loguniform: [3.0e-3, 3.0e-2]}}
embedding_dim: {emb}
hidden_dim: {hid}
batch_size: {batch}
epochs: {epochs}
max_train_sentences: {sentences}
"""


class CheckpointCost(pl.Callback):
    """Does what a tuning trial does at a checkpoint epoch (save Lightning's checkpoint, copy it to
    storage, as Ray does with a local storage path) and times it, apart from the training epoch."""

    def __init__(self, storage: Path) -> None:
        self.storage, self.seconds, self.sizes, self.epochs = storage, [], [], []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, module) -> None:
        self._start = time.perf_counter()

    def on_validation_start(self, trainer, module) -> None:
        if not trainer.sanity_checking:
            self.epochs.append(time.perf_counter() - self._start)

    def on_train_epoch_end(self, trainer, module) -> None:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            trainer.save_checkpoint(Path(d) / "last.ckpt")
            dest = self.storage / f"checkpoint_{len(self.seconds):06d}"
            shutil.copytree(d, dest)
        self.seconds.append(time.perf_counter() - t0)
        self.sizes.append((dest / "last.ckpt").stat().st_size)
        shutil.rmtree(dest)


def time_split(reports: list[list[dict]]) -> dict[str, float] | None:
    """Shares of packed trials' summed time (Ray's time_total_s of each) spent in member setup,
    training, validation and checkpoints; the rest is Ray, reporting and waiting for a slot."""
    last = [e[-1] for e in reports if e and "train_s" in e[-1]]
    if not last:
        return None  # Lightning trials report no split
    total = sum(float(r["time_total_s"]) for r in last)
    parts = {k: sum(float(r[f"{k}_s"]) for r in last) for k in ("setup", "train", "validate", "checkpoint")}
    parts["other"] = total - sum(parts.values())
    return {k: round(v / total, 3) for k, v in parts.items()}


def timeline(reports: list[list[dict]], started: float, wall: float) -> dict[str, float]:
    """When the parallel study's trials ran, in seconds from its start (Ray's timestamps are whole
    seconds): the first trial's start, the last one's end, and how many ran at once on average."""
    spans = [
        (float(e[0]["timestamp"]) - float(e[0]["time_this_iter_s"]), float(e[-1]["timestamp"]))
        for e in reports
        if e
    ]
    spans = [(s - started, t - started) for s, t in spans]
    first, last = min(s for s, _ in spans), max(t for _, t in spans)
    busy = sum(t - s for s, t in spans)
    return {
        "first_trial_start_s": round(first, 1),
        "last_trial_end_s": round(last, 1),
        "study_wall_s": round(wall, 1),
        "mean_running": round(busy / max(last - first, 1e-9), 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lang", default="hi")
    ap.add_argument("--data-dir", help="default: $DISTNER_DATA")
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=1000, help="train sample per trial")
    ap.add_argument("--dims", type=int, default=64, help="embedding and hidden size")
    ap.add_argument("--batch-size", type=int, default=35)
    ap.add_argument("--cpus-per-trial", type=float, default=1.0, help="for the parallel study")
    ap.add_argument("--gpus-per-trial", type=float, default=0.0, help="for the parallel study")
    ap.add_argument(
        "--no-serial", action="store_true", help="skip the one-at-a-time study (no per-trial overhead)"
    )
    ap.add_argument("--pack", type=int, default=1, metavar="K", help="trials per packer (parallel study)")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cores = os.cpu_count() or 1
    gpu = args.gpus_per_trial > 0

    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp, "space.yaml")
        space.write_text(
            SPACE.format(
                emb=args.dims,
                hid=args.dims,
                batch=args.batch_size,
                epochs=args.epochs,
                sentences=args.sentences,
            )
        )

        def study(name: str, cpus: float, gpus: float, concurrent: int | None, pack: int = 1) -> Study:
            opts = TuneOptions(
                lang=args.lang,
                space=str(space),
                num_samples=args.trials,
                storage=f"{tmp}/runs",
                name=name,
                best_dir=f"{tmp}/best",
                data_dir=args.data_dir,
                verbose=0,
                cpus_per_trial=cpus,
                gpus_per_trial=gpus,
                max_concurrent=concurrent,
                grace_period=args.epochs,
                pack=pack,
            )
            t0, started[name] = time.perf_counter(), time.time()
            result = run_study(opts)
            wall = time.perf_counter() - t0
            phases[name] = result.phases
            rows = list(csv.DictReader(open(result.results_dir / "trials.csv")))
            # each trial's per-epoch reports, in trials.csv's order
            trial_dirs = [Path(result.study_path, r["trial_dir"]) for r in rows]
            reports = [list(csv.DictReader(open(d / PROGRESS))) for d in trial_dirs]
            return wall, rows, reports

        import ray

        started: dict[str, float] = {}
        phases: dict[str, dict[str, float]] = {}
        t0 = time.perf_counter()
        ray.init(num_cpus=cores, num_gpus=torch.cuda.device_count(), include_dashboard=False)
        ray.shutdown()
        ray_start = time.perf_counter() - t0

        serial_s = float("nan")
        if not args.no_serial:
            serial_s, _, _ = study("serial", float(cores), 1.0 if gpu else 0.0, 1)
        parallel_s, rows, reports = study(
            "parallel", args.cpus_per_trial, args.gpus_per_trial, None, args.pack
        )

        # the same trials (same lr values), one after another in this process, without Ray
        corpus = Corpus.load(args.data_dir, args.lang, "fine")
        base = {
            "embedding_dim": args.dims,
            "hidden_dim": args.dims,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "max_train_sentences": args.sentences,
        }
        torch.set_num_threads(cores)
        cost = CheckpointCost(Path(tmp))
        t0 = time.perf_counter()
        for i, row in enumerate(rows):
            cfg = RunConfig.from_flat({**base, "lr": float(row["lr"])})
            fit(
                cfg,
                corpus,
                Path(tmp, "seq", str(i)),
                accelerator="gpu" if gpu else "cpu",
                progress=False,
                evaluate_test=False,
                callbacks=[cost],
            )
        sequential_s = time.perf_counter() - t0 - sum(cost.seconds)
        data = prepare(corpus, RunConfig.from_flat(base))
        tokens = data.train.num_tokens
        bare_cfg = RunConfig.from_flat(base)
        device = "cuda" if gpu else "cpu"
        bare_epoch(data.train, bare_cfg, len(data.tags), len(data.vocab), device, 0)  # warm-up
        bare_tok_s = tokens / bare_epoch(data.train, bare_cfg, len(data.tags), len(data.vocab), device, 1)

    n = args.trials
    slots = min(cores / args.cpus_per_trial, 1 / args.gpus_per_trial if gpu else float("inf"))
    if args.pack > 1:  # one packer per GPU, or per --cpus-per-trial cores, K trials each
        slots = args.pack * (torch.cuda.device_count() if gpu else max(1, cores // args.cpus_per_trial))
    concurrent = int(min(n, slots))
    trained = tokens * sum(len(e) for e in reports)  # every trial's epochs (ASHA is off)
    study_tok_s = statistics.median(float(e[-1]["train_tokens_per_s"]) for e in reports)
    seq_tok_s = tokens / statistics.median(cost.epochs)
    setup_s = statistics.median(
        float(e[0]["time_this_iter_s"]) - float(e[-1]["time_this_iter_s"]) for e in reports
    )
    print(
        json.dumps(
            {
                "benchmark": "tune_overhead",
                "device": torch.cuda.get_device_name(0) if gpu else f"cpu x{cores}",
                "trials": n,
                "epochs": args.epochs,
                "sentences": args.sentences,
                "dims": args.dims,
                "ray_start_s": round(ray_start, 2),
                "sequential_s": round(sequential_s, 2),
                "study_serial_s": None if args.no_serial else round(serial_s, 2),
                "study_parallel_s": round(parallel_s, 2),
                "per_trial_overhead_s": None
                if args.no_serial
                else round((serial_s - ray_start - sequential_s) / n, 2),
                "cpus_per_trial": args.cpus_per_trial,
                "gpus_per_trial": args.gpus_per_trial,
                "pack": args.pack,
                "speedup": round(sequential_s / parallel_s, 3),
                "bare_tok_s": round(bare_tok_s),
                "aggregate_tok_s": round(trained / parallel_s),
                "aggregate_ratio": round(trained / parallel_s / bare_tok_s, 3),
                "time_split": time_split(reports),
                "phases": phases.get("parallel"),
                "timeline": timeline(reports, started["parallel"], parallel_s),
                "concurrent": concurrent,
                "seq_tok_s": round(seq_tok_s),
                "study_tok_s": round(study_tok_s),
                "packing_gain": round(concurrent * study_tok_s / seq_tok_s, 2),
                "trial_setup_s": round(setup_s, 2),
                "checkpoint_mb": round(statistics.median(cost.sizes) / 2**20, 1),
                "checkpoint_s": round(statistics.median(cost.seconds), 3),
                "epoch_s": round(statistics.median(cost.epochs), 3),
                "checkpoint_share": round(
                    statistics.median(cost.seconds) / statistics.median(cost.epochs), 3
                ),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
