"""Training throughput: distner's own training path against a bare PyTorch loop, same process.

Both train the same config on the same encoded data (same batches, trimmed to the longest sentence
of each batch) and count real, non-padding tokens. distner's side is `distner.training.fit` as users
run it (Lightning Trainer, DataLoader, logging, per-epoch validation); only its training epochs are
timed, as the bare loop has no validation. Prints one JSON line:

    python benchmarks/train_throughput.py --lang hi --data-dir DIR [--device cuda] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time

import pytorch_lightning as pl
import torch
from torch import nn

from distner.config import load_config
from distner.data import IGNORE_INDEX, Encoded
from distner.training import Corpus, fit, prepare


class EpochTimer(pl.Callback):
    """Seconds from each training epoch's start to the start of its validation."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, module) -> None:
        self._sync(module.device)
        self._start = time.perf_counter()

    def on_validation_start(self, trainer, module) -> None:
        if not trainer.sanity_checking:
            self._sync(module.device)
            self.seconds.append(time.perf_counter() - self._start)

    @staticmethod
    def _sync(device: torch.device) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()


def bare_epoch(data: Encoded, cfg, num_tags: int, vocab_size: int, device: str, seed: int) -> float:
    """One epoch of the plainest loop: Embedding -> LSTM -> Linear, Adam; returns seconds."""
    torch.manual_seed(seed)
    m = cfg.model
    emb = nn.Embedding(vocab_size, m.embedding_dim, padding_idx=0).to(device)
    lstm = nn.LSTM(m.embedding_dim, m.hidden_dim, batch_first=True).to(device)
    lin = nn.Linear(m.hidden_dim, num_tags).to(device)
    params = [*emb.parameters(), *lstm.parameters(), *lin.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.train.lr)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    bs = cfg.train.batch_size
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(order), bs):
        idx = order[i : i + bs]
        width = int(data.lengths[idx].max())
        x = data.tokens[idx, :width].to(device, non_blocking=True)
        y = data.labels[idx, :width].to(device, non_blocking=True)
        out, _ = lstm(emb(x))
        loss = loss_fn(lin(out).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lang", default="hi")
    ap.add_argument("--granularity", default="fine")
    ap.add_argument("--data-dir", help="default: $DISTNER_DATA")
    ap.add_argument("--config", default=None, help="config YAML (default: the seed baseline)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per side (median is reported)")
    ap.add_argument("--max-train-sentences", type=int, default=0, help="0 = all of train")
    args = ap.parse_args(argv)

    cfg = load_config(args.config, args.overrides).replace(
        epochs=args.epochs, max_train_sentences=args.max_train_sentences
    )
    corpus = Corpus.load(args.data_dir, args.lang, args.granularity)
    data = prepare(corpus, cfg)
    tokens = data.train.num_tokens

    # bare loop first: it also warms up the allocator and kernels for both sides
    bare_epoch(data.train, cfg, len(data.tags), len(data.vocab), args.device, cfg.train.seed)
    bare = [
        bare_epoch(data.train, cfg, len(data.tags), len(data.vocab), args.device, cfg.train.seed + e)
        for e in range(args.epochs)
    ]
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out:
        fit(
            cfg,
            corpus,
            out,
            accelerator="gpu" if args.device == "cuda" else "cpu",
            callbacks=[timer],
            progress=False,
            evaluate_test=False,
        )
    bare_tps = tokens / statistics.median(bare)
    distner_tps = tokens / statistics.median(timer.seconds)
    print(
        json.dumps(
            {
                "benchmark": "train_throughput",
                "device": torch.cuda.get_device_name(0)
                if args.device == "cuda"
                else platform.processor() or "cpu",
                "threads": torch.get_num_threads(),
                "lang": corpus.lang,
                "granularity": corpus.granularity,
                "config": {
                    k: v
                    for k, v in cfg.to_flat().items()
                    if k
                    in (
                        "embedding_dim",
                        "hidden_dim",
                        "batch_size",
                        "seq_len",
                        "bidirectional",
                        "num_layers",
                        "char_features",
                        "crf",
                    )
                },
                "train_tokens_per_epoch": tokens,
                "epochs_timed": args.epochs,
                "bare_tokens_per_s": round(bare_tps),
                "distner_tokens_per_s": round(distner_tps),
                "ratio": round(distner_tps / bare_tps, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
