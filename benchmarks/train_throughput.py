"""Training throughput: distner's own training path against a bare PyTorch loop, same process.

Both train the same config on the same encoded data (same batches, trimmed to the longest sentence
of each batch) and count real, non-padding tokens. distner's side is `distner.train.fit.fit` as users
run it (Lightning Trainer, DataLoader, logging, per-epoch validation); only its training epochs are
timed, as the bare loop has no validation. A third side, `model_loop_tokens_per_s`, runs distner's
own network (`Tagger`) and batches (`make_loader`) in the same plain loop without Lightning: the
gap between it and distner's side is what the Lightning loop costs per step. Prints one JSON line:

    python benchmarks/train_throughput.py --lang hi --data-dir DIR [--device cuda] [--epochs 2]

`engine_tokens_per_s` is the lean loop packed tuning trials run (`distner.train.engine.Member`: the
same math as `fit`, no Lightning hooks), and `engine_ratio` its share of the bare loop.

With `--pack K` it trains K copies of the config side by side in one process (threads, one CUDA
stream each: what one packer does with K trials) and prints their aggregate tokens/s against the
bare loop (`aggregate_ratio`) and against one member alone (`packing_gain`):

    python benchmarks/train_throughput.py --pack 8 --data-dir DIR --device cuda

With `--levers` it instead trains the reference config and the committed Hindi levers winner
(results/configs/hi-fine-levers.yaml: BiLSTM, char-CNN, CRF, no truncation, batch 64) through
distner's own training path on the same training sample, and prints `seed_tok_s`, `levers_tok_s`,
`levers_ratio` and `padding_share` (padding positions / all positions of the levers run's batches):

    python benchmarks/train_throughput.py --levers --data-dir DIR [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from distner.config import RunConfig, load_config
from distner.data.conll import Corpus
from distner.data.encoded import EncodedCorpus, prepare
from distner.data.vocab import IGNORE_INDEX, BucketBatchSampler, Encoded, make_loader
from distner.model.build import build_model
from distner.train.fit import fit

LEVERS = Path(__file__).resolve().parent.parent / "results" / "configs" / "hi-fine-levers.yaml"


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer reads finished work only."""
    if device.type == "cuda":
        torch.cuda.synchronize()


class EpochTimer(pl.Callback):
    """Seconds from each training epoch's start to the start of its validation, and the positions
    (real and padding) of the batches it trained on."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0
        self.positions = self.real = 0

    def on_train_epoch_start(self, trainer, module) -> None:
        sync(module.device)
        self._start = time.perf_counter()

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.positions += batch.tokens.numel()
        self.real += int(batch.lengths.sum())

    def on_validation_start(self, trainer, module) -> None:
        if not trainer.sanity_checking:
            sync(module.device)
            self.seconds.append(time.perf_counter() - self._start)


def distner_tokens_per_s(cfg: RunConfig, corpus: Corpus, device: str) -> tuple[float, float]:
    """(real tokens/s of the median training epoch, padding share) through `distner.train.fit.fit`."""
    tokens = prepare(corpus, cfg).train.num_tokens
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out:
        fit(
            cfg,
            corpus,
            out,
            accelerator="gpu" if device == "cuda" else "cpu",
            callbacks=[timer],
            progress=False,
            evaluate_test=False,
        )
    return tokens / statistics.median(timer.seconds), 1 - timer.real / max(timer.positions, 1)


def engine_tokens_per_s(cfg: RunConfig, corpus: Corpus, device: str, members: int = 1) -> float:
    """Aggregate real tokens/s of `members` copies of `cfg` trained side by side by distner's lean
    trial loop (one thread and CUDA stream each, as in a packer), over their training epochs after
    one warm-up epoch (a member's epoch ends with a read of its loss: its work is done)."""
    import threading

    from distner.train.engine import Member, SharedData

    shared = SharedData(corpus, torch.device(device))
    team = [Member(cfg, shared) for _ in range(members)]
    tokens = team[0].data.train.num_tokens
    epochs = cfg.train.epochs
    ready = threading.Barrier(members + 1)

    def train(member: Member) -> None:
        member.train_epoch()  # warm-up: allocator, kernels
        ready.wait()
        for _ in range(epochs):
            member.train_epoch()

    threads = [threading.Thread(target=train, args=(m,)) for m in team]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return members * tokens * epochs / (time.perf_counter() - start)


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
    # the same length-bucketed batches distner trains on
    batches = list(BucketBatchSampler(data.lengths.tolist(), cfg.train.batch_size, True, seed))

    def losses() -> Iterator[torch.Tensor]:
        for idx in map(torch.as_tensor, batches):
            width = int(data.lengths[idx].max())
            x = data.tokens[idx, :width].to(device, non_blocking=True)
            y = data.labels[idx, :width].to(device, non_blocking=True)
            out, _ = lstm(emb(x))
            yield loss_fn(lin(out).flatten(0, 1), y.flatten())

    return timed_epoch(losses(), opt, device)


def model_loop_epoch(data: EncodedCorpus, cfg: RunConfig, device: str, seed: int) -> float:
    """One epoch of distner's network and batches in a plain loop (no Lightning); returns seconds."""
    torch.manual_seed(seed)
    model = build_model(cfg, data).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    loader = make_loader(data.train, cfg.train.batch_size, True, seed, device)
    losses = (model.loss(model(b.tokens, b.lengths, b.word_chars, b.word_index), b.labels) for b in loader)
    return timed_epoch(losses, opt, device)


def timed_epoch(losses: Iterator[torch.Tensor], opt: torch.optim.Optimizer, device: str) -> float:
    """Seconds to step `opt` on every loss of a lazy per-batch stream (forward passes included)."""
    sync(torch.device(device))
    start = time.perf_counter()
    for loss in losses:
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(torch.device(device))
    return time.perf_counter() - start


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"


def levers_main(args: argparse.Namespace) -> int:
    """Seed config vs the levers winner, both through distner's training path, same sample."""
    corpus = Corpus.load(args.data_dir, args.lang, args.granularity)
    common = dict(
        epochs=args.epochs,
        max_train_sentences=args.max_train_sentences or 2500,
        max_eval_sentences=200,
        seed=0,
    )
    seed_cfg = load_config(None, args.overrides).replace(**common)
    levers_cfg = load_config(args.config or LEVERS, args.overrides).replace(**common)
    seed_tps, seed_pad = distner_tokens_per_s(seed_cfg, corpus, args.device)
    levers_tps, levers_pad = distner_tokens_per_s(levers_cfg, corpus, args.device)
    engine_seed = engine_tokens_per_s(seed_cfg, corpus, args.device)
    engine_levers = engine_tokens_per_s(levers_cfg, corpus, args.device)
    print(
        json.dumps(
            {
                "benchmark": "train_throughput_levers",
                "device": device_name(args.device),
                "threads": torch.get_num_threads(),
                "lang": corpus.lang,
                "granularity": corpus.granularity,
                "train_sentences": common["max_train_sentences"],
                "epochs_timed": args.epochs,
                "levers_config": str(args.config or LEVERS.relative_to(LEVERS.parent.parent.parent)),
                "seed_tok_s": round(seed_tps),
                "levers_tok_s": round(levers_tps),
                "levers_ratio": round(levers_tps / seed_tps, 3),
                "engine_seed_tok_s": round(engine_seed),
                "engine_levers_tok_s": round(engine_levers),
                "engine_levers_ratio": round(engine_levers / engine_seed, 3),
                "padding_share": round(levers_pad, 4),
                "seed_padding_share": round(seed_pad, 4),
            }
        )
    )
    return 0


def packed_main(args: argparse.Namespace) -> int:
    """K copies of the config in one process against the bare loop and against one copy alone."""
    cfg = load_config(args.config, args.overrides).replace(
        epochs=args.epochs, max_train_sentences=args.max_train_sentences
    )
    corpus = Corpus.load(args.data_dir, args.lang, args.granularity)
    data = prepare(corpus, cfg)
    bare_epoch(data.train, cfg, len(data.tags), len(data.vocab), args.device, cfg.train.seed)  # warm-up
    bare = [
        bare_epoch(data.train, cfg, len(data.tags), len(data.vocab), args.device, cfg.train.seed + e)
        for e in range(args.epochs)
    ]
    bare_tps = data.train.num_tokens / statistics.median(bare)
    one = engine_tokens_per_s(cfg, corpus, args.device)
    packed = engine_tokens_per_s(cfg, corpus, args.device, members=args.pack)
    print(
        json.dumps(
            {
                "benchmark": "train_throughput_packed",
                "device": device_name(args.device),
                "threads": torch.get_num_threads(),
                "lang": corpus.lang,
                "members": args.pack,
                "batch_size": cfg.train.batch_size,
                "bare_tokens_per_s": round(bare_tps),
                "one_member_tokens_per_s": round(one),
                "packed_tokens_per_s": round(packed),
                "aggregate_ratio": round(packed / bare_tps, 3),
                "packing_gain": round(packed / one, 3),
            }
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lang", default="hi")
    ap.add_argument("--granularity", default="fine")
    ap.add_argument("--data-dir", help="default: $DISTNER_DATA")
    ap.add_argument(
        "--config", default=None, help="config YAML (default: the reference baseline; --levers: its config)"
    )
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per side (median is reported)")
    ap.add_argument("--max-train-sentences", type=int, default=0, help="0 = all of train (--levers: 2500)")
    ap.add_argument("--levers", action="store_true", help="reference config vs the levers winner (see above)")
    ap.add_argument("--pack", type=int, default=0, metavar="K", help="K members side by side (see above)")
    args = ap.parse_args(argv)
    if args.levers:
        return levers_main(args)
    if args.pack:
        return packed_main(args)

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
    model_loop_epoch(data, cfg, args.device, cfg.train.seed)  # warm-up, as for the bare loop
    plain = [model_loop_epoch(data, cfg, args.device, cfg.train.seed + e) for e in range(args.epochs)]
    distner_tps, pad = distner_tokens_per_s(cfg, corpus, args.device)
    engine_tps = engine_tokens_per_s(cfg, corpus, args.device)
    bare_tps = tokens / statistics.median(bare)
    model_tps = tokens / statistics.median(plain)
    keys = ("embedding_dim", "hidden_dim", "batch_size", "seq_len", "bidirectional", "num_layers")
    print(
        json.dumps(
            {
                "benchmark": "train_throughput",
                "device": device_name(args.device),
                "threads": torch.get_num_threads(),
                "lang": corpus.lang,
                "granularity": corpus.granularity,
                "config": {k: v for k, v in cfg.to_flat().items() if k in (*keys, "char_features", "crf")},
                "train_tokens_per_epoch": tokens,
                "epochs_timed": args.epochs,
                "padding_share": round(pad, 4),
                "bare_tokens_per_s": round(bare_tps),
                "distner_tokens_per_s": round(distner_tps),
                "ratio": round(distner_tps / bare_tps, 3),
                "model_loop_tokens_per_s": round(model_tps),
                "lightning_ratio": round(distner_tps / model_tps, 3),
                "engine_tokens_per_s": round(engine_tps),
                "engine_ratio": round(engine_tps / bare_tps, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
