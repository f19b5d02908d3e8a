"""What Ray costs: the same N small trials run one after another in this process without Ray,
then as `distner tune` studies (ASHA off so every trial runs all its epochs). Prints one JSON line.

- sequential_s: N plain `fit` calls, each using every core.
- study_serial_s: a study with one trial at a time, each trial given every core: the same work,
  so (study_serial_s - ray_start_s - sequential_s) / N is Ray's per-trial overhead.
- study_parallel_s: a study packing trials onto the machine (--cpus-per-trial, --gpus-per-trial).
- speedup = sequential_s / study_parallel_s.

    python benchmarks/tune_overhead.py --data-dir DIR [--trials 6] [--gpus-per-trial 0.25]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from distner.config import RunConfig
from distner.training import Corpus, fit
from distner.tuning import TuneOptions, run_study

SPACE = """# benchmark space: only lr varies; fixed sizes
lr: {{loguniform: [3.0e-3, 3.0e-2]}}
embedding_dim: {emb}
hidden_dim: {hid}
batch_size: {batch}
epochs: {epochs}
max_train_sentences: {sentences}
"""


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

        def study(name: str, cpus: float, gpus: float, concurrent: int | None) -> tuple[float, list[dict]]:
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
            )
            t0 = time.perf_counter()
            result = run_study(opts)
            wall = time.perf_counter() - t0
            return wall, list(csv.DictReader(open(result.results_dir / "trials.csv")))

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=cores, num_gpus=torch.cuda.device_count(), include_dashboard=False)
        ray.shutdown()
        ray_start = time.perf_counter() - t0

        serial_s, rows = study("serial", float(cores), 1.0 if gpu else 0.0, 1)
        parallel_s, _ = study("parallel", args.cpus_per_trial, args.gpus_per_trial, None)

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
            )
        sequential_s = time.perf_counter() - t0

    n = args.trials
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
                "study_serial_s": round(serial_s, 2),
                "study_parallel_s": round(parallel_s, 2),
                "per_trial_overhead_s": round((serial_s - ray_start - sequential_s) / n, 2),
                "cpus_per_trial": args.cpus_per_trial,
                "gpus_per_trial": args.gpus_per_trial,
                "speedup": round(sequential_s / parallel_s, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
