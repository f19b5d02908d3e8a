"""GPU only: what CUDA graphs would buy a trial's step, before distner builds them (issue 20).

The plain seed model (Embedding -> LSTM -> Linear, cross-entropy, Adam) on full Hindi fine train at
batch 35, trained from length buckets (widths padded up to a multiple of --bucket, so a handful of
graph shapes cover every batch; the last partial batch is padded to the batch size with ignored
labels). Each member captures one graph per width: forward, loss, backward and Adam's step
(`capturable=True`), and an epoch replays them after copying each batch into the graph's inputs.
Prints one JSON line: real tokens/s of one member eager and graphed, and of K members in K threads
(each its own stream) eager and graphed, against the bare eager loop of train_throughput.py.

    python benchmarks/graph_probe.py --device cuda [--members 1,4,8] [--bucket 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import torch
from torch import nn

from distner.config import RunConfig
from distner.data.conll import Corpus
from distner.data.encoded import prepare
from distner.data.vocab import IGNORE_INDEX, BucketBatchSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import bare_epoch  # noqa: E402 - the same bare loop as that benchmark


class Member:
    """One model with its own stream; `graphed` captures a graph per batch width."""

    def __init__(self, vocab: int, tags: int, dims: int, lr: float, seed: int, graphed: bool):
        torch.manual_seed(seed)
        self.emb = nn.Embedding(vocab, dims, padding_idx=0).cuda()
        self.lstm = nn.LSTM(dims, dims, batch_first=True).cuda()
        self.lin = nn.Linear(dims, tags).cuda()
        params = [*self.emb.parameters(), *self.lstm.parameters(), *self.lin.parameters()]
        self.opt = torch.optim.Adam(params, lr=lr, capturable=graphed)
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
        self.stream = torch.cuda.Stream()
        self.graphed = graphed
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.emb(x))
        return self.loss_fn(self.lin(out).flatten(0, 1), y.flatten())

    def capture(self, batch: int, width: int) -> None:
        x = torch.zeros(batch, width, dtype=torch.long, device="cuda")
        y = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long, device="cuda")
        y[:, 0] = 0  # a real label, so warm-up losses are finite
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: cuDNN plans and Adam's state, off the capture
            for _ in range(2):
                self.opt.zero_grad(set_to_none=True)
                self._loss(x, y).backward()
                self.opt.step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self._loss(x, y).backward()
            self.opt.step()
        self.graphs[width] = (graph, x, y)

    def epoch(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        with torch.cuda.stream(self.stream):
            for x, y in batches:
                if self.graphed:
                    graph, gx, gy = self.graphs[x.shape[1]]
                    gx.copy_(x, non_blocking=True)
                    gy.copy_(y, non_blocking=True)
                    graph.replay()
                else:
                    self.opt.zero_grad(set_to_none=True)
                    self._loss(x, y).backward()
                    self.opt.step()
        self.stream.synchronize()


def bucketed(data, batch_size: int, bucket: int, seed: int) -> tuple[list, int]:
    """The epoch's batches on the GPU, widths padded up to a multiple of `bucket` and rows up to
    the batch size; and the real tokens they hold."""
    out, tokens = [], 0
    for idx in BucketBatchSampler(data.lengths.tolist(), batch_size, True, seed):
        idx = torch.as_tensor(idx)
        longest = int(data.lengths[idx].max())
        width = -(-longest // bucket) * bucket
        x = torch.zeros(batch_size, width, dtype=torch.long)
        y = torch.full((batch_size, width), IGNORE_INDEX, dtype=torch.long)
        w = min(width, data.tokens.shape[1])
        x[: len(idx), :w] = data.tokens[idx, :w]
        y[: len(idx), :w] = data.labels[idx, :w]
        out.append((x.cuda(), y.cuda()))
        tokens += int(data.lengths[idx].sum())
    return out, tokens


def timed(members: list[Member], batches: list) -> float:
    """Seconds for every member to train one epoch, each in its own thread."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    threads = [threading.Thread(target=m.epoch, args=(batches,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lang", default="hi")
    ap.add_argument("--data-dir", help="default: $DISTNER_DATA")
    ap.add_argument("--members", default="1,4,8", help="K values, comma-separated")
    ap.add_argument("--bucket", type=int, default=5, help="batch widths are padded to a multiple of this")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs (the best is reported)")
    args = ap.parse_args(argv)
    cfg = RunConfig.from_flat({})  # the reference baseline: 520/520, batch 35, seq 25
    corpus = Corpus.load(args.data_dir, args.lang, "fine")
    data = prepare(corpus, cfg)
    batch, dims, lr = cfg.train.batch_size, cfg.model.embedding_dim, cfg.train.lr
    batches, tokens = bucketed(data.train, batch, args.bucket, cfg.train.seed)
    widths = sorted({x.shape[1] for x, _ in batches})
    vocab, tags = len(data.vocab), len(data.tags)

    bare_epoch(data.train, cfg, tags, vocab, "cuda", 0)  # warm-up
    bare = min(bare_epoch(data.train, cfg, tags, vocab, "cuda", e) for e in range(args.epochs))
    result: dict = {
        "benchmark": "graph_probe",
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "batch_size": batch,
        "dims": dims,
        "widths": widths,
        "train_tokens_per_epoch": tokens,
        "bare_tok_s": round(tokens / bare),
    }
    for k in [int(v) for v in args.members.split(",")]:
        for graphed in (False, True):
            members = [Member(vocab, tags, dims, lr, seed=i, graphed=graphed) for i in range(k)]
            t0 = time.perf_counter()
            if graphed:
                for m in members:
                    for w in widths:
                        m.capture(batch, w)
            capture_s = time.perf_counter() - t0
            timed(members, batches)  # warm-up epoch
            best = min(timed(members, batches) for _ in range(args.epochs))
            key = f"{'graphed' if graphed else 'eager'}_k{k}"
            result[f"{key}_tok_s"] = round(k * tokens / best)
            result[f"{key}_ratio"] = round(k * tokens / best / (tokens / bare), 3)
            if graphed:
                result[f"{key}_capture_s"] = round(capture_s, 2)
            del members
            torch.cuda.empty_cache()
            print(json.dumps({key: result[f"{key}_tok_s"]}), file=sys.stderr, flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
