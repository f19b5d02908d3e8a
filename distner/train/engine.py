"""A lean training loop for tuning trials, and several of them side by side in one process.

`Member` trains one config epoch by epoch with exactly the math of `training.fit` (the same
network, batches, Adam, clipping, dropout streams, losses and dev scores; tests/test_engine.py
checks it against Lightning's loop), but without Lightning's per-step hooks, which cost ~2 ms a
step on a GPU where the step itself takes ~3.5 ms (docs/performance.md).

Several members can train at once, one thread each (`packed.Packer` does this for tuning): each
has its own weights, optimizer, batches, random streams and, on a GPU, its own CUDA stream, so
their kernels overlap on the card. Torch's ops release the GIL, so while one thread waits on the
device another queues work. The only shared thing is torch's global random generator (dropout,
word dropout, the DataLoader's base seed): a member that draws from it swaps its own generator
state in and out under one lock, so its stream is the same whether it trains alone or packed.

Nothing here knows about Ray. Reads: a `EncodedCorpus` corpus and a `RunConfig`. Writes: nothing (the
caller saves `state_dict()`, `best_weights()` and metrics where it wants them).
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from distner.config import RunConfig, with_defaults
from distner.core.errors import DistnerError, TrainingDiverged
from distner.data.conll import Corpus
from distner.data.encoded import FINITE_CHECK_EVERY, EncodedCorpus, finite_weights, prepare
from distner.data.vocab import BatchDataset, make_loader
from distner.evaluation.evaluate import EVAL_BATCH, decode_tags
from distner.evaluation.metrics import MONITOR, entity_scores
from distner.model.build import build_model
from distner.train.optim import make_optimizer

# Torch's global generators (CPU and CUDA) are process-wide: members swap theirs in under this lock.
_RNG_LOCK = threading.Lock()


def seed_all(seed: int) -> None:
    """What Lightning's `seed_everything` seeds (Python, numpy, torch CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _prep_key(cfg: RunConfig) -> tuple[Any, ...]:
    """The config fields `encoded.prepare` reads: members that agree on them share encoded data."""
    t, m = cfg.train, cfg.model
    return (
        t.max_train_sentences,
        t.seed if t.max_train_sentences else None,  # the seed only picks the sample
        t.max_eval_sentences,
        t.min_freq,
        t.seq_len,
        t.extra_train_langs,
        m.char_features,
        m.pretrained_vectors,
        m.subword_vectors,  # the vocabulary gains dev's words, and the rows their vectors
        m.subword_pool,
        m.encoder_features,  # the splits gain feature tensors: which layers, mixed or not
        m.encoder_layers if m.encoder_features else None,
        m.encoder_mix if m.encoder_features else None,
        m.encoder_train_layers,  # the splits' features are then word pieces
    )


@dataclass
class SharedData:
    """A corpus encoded once per distinct `_prep_key` and moved to the device once, for every
    member of a process (a study's trials mostly differ in sizes and rates, not in data)."""

    corpus: Corpus
    device: torch.device
    _cache: dict[tuple[Any, ...], tuple[EncodedCorpus, BatchDataset, BatchDataset]] = field(
        default_factory=dict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)
    keep: int = 4  # distinct encodings kept (each holds the splits on the device)

    def get(self, cfg: RunConfig) -> tuple[EncodedCorpus, BatchDataset, BatchDataset]:
        key = _prep_key(cfg)
        with self._lock:
            hit = self._cache.pop(key, None)
            if hit is None:
                data = prepare(self.corpus, cfg)
                hit = (data, BatchDataset(data.train, self.device), BatchDataset(data.dev, self.device))
                if self.device.type == "cuda":  # made on the default stream; members read on theirs
                    torch.cuda.synchronize(self.device)
            self._cache[key] = hit  # most recent last
            while len(self._cache) > self.keep:
                self._cache.pop(next(iter(self._cache)))
            return hit


@dataclass
class Timing:
    """Where a member's time went, in seconds (reported with every epoch)."""

    setup: float = 0.0
    train: float = 0.0
    validate: float = 0.0


class Member:
    """One config in training: built, seeded and stepped as `training.fit` would."""

    def __init__(
        self,
        cfg: RunConfig,
        shared: SharedData,
        state: dict[str, Any] | None = None,
    ):
        if cfg.train.precision == "16-mixed":
            raise DistnerError("precision 16-mixed: not available in packed trials; use bf16-mixed or 32")
        start = time.perf_counter()
        self.cfg, self.device = cfg, shared.device
        self.data, train_set, dev_set = shared.get(cfg)
        self.tags = self.data.tags
        with _RNG_LOCK:  # the model's initial weights come from the seeded global generator
            seed_all(cfg.train.seed)
            self.model = build_model(cfg, self.data).to(self.device)
            self._rng = _capture_rng(self.device)
        t = cfg.train
        self.train_loader = make_loader(self.data.train, t.batch_size, True, t.seed, dataset=train_set)
        self.optimizer, self.schedule = make_optimizer(self.model, t, t.epochs * len(self.train_loader))
        self.val_loader = make_loader(self.data.dev, EVAL_BATCH, False, dataset=dev_set)
        # Dropout and word dropout draw from the global generator; without them no swap is needed
        # except around the DataLoader's per-iterator base seed, which every member draws.
        m = cfg.model
        self._draws = m.dropout > 0 or m.word_dropout > 0 or (m.lstm_dropout > 0 and m.num_layers > 1)
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self.autocast = t.precision == "bf16-mixed"
        self.epoch = 0  # epochs finished
        self.best, self.best_epoch = -math.inf, -1
        self._best_state: dict[str, torch.Tensor] | None = None
        self.timing = Timing()
        if state is not None:
            self.load_state_dict(state)
        if self.device.type == "cuda":  # weights were placed on the default stream; train on ours
            torch.cuda.synchronize(self.device)
        self.timing.setup = time.perf_counter() - start

    # ------------------------------------------------------------ random streams

    @contextlib.contextmanager
    def _own_rng(self, needed: bool = True) -> Iterator[None]:
        """This member's generator state swapped in (a no-op when nothing draws from it)."""
        if not needed:
            yield
            return
        with _RNG_LOCK:
            _restore_rng(self._rng, self.device)
            try:
                yield
            finally:
                self._rng = _capture_rng(self.device)

    def _on_stream(self) -> contextlib.AbstractContextManager[Any]:
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # ------------------------------------------------------------ training

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training batches: train_loss (the sentence-weighted mean) and real
        tokens per second, as `training.TaggerModule` logs them."""
        start = time.perf_counter()
        model, opt, schedule, clip = self.model, self.optimizer, self.schedule, self.cfg.train.grad_clip
        model.train()
        self.train_loader.sampler.set_epoch(self.epoch)  # type: ignore[attr-defined]
        loss_sum: torch.Tensor | None = None
        sentences = tokens = 0
        with self._on_stream():
            with self._own_rng():
                batches = iter(self.train_loader)  # draws the DataLoader's base seed, as Lightning does
            for step, batch in enumerate(batches):
                batch = batch.to(self.device)
                with self._own_rng(self._draws), self._autocast():
                    scores = model(batch.tokens, batch.lengths, *batch.inputs())
                    loss = model.loss(scores, batch.labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
                if schedule is not None:  # per step, after the update, as Lightning's "step" interval
                    schedule.step()
                n = len(batch.lengths)
                part = loss.detach() * n
                loss_sum = part if loss_sum is None else loss_sum + part
                if (step + 1) % FINITE_CHECK_EVERY == 0:
                    self._check_finite(loss_sum)
                sentences += n
                tokens += int(batch.lengths.sum())  # a CPU tensor: no device sync
            self._check_finite(loss_sum)  # before validation: a diverged epoch is never scored
            if not finite_weights(model):  # the last step's update, behind a finite loss
                raise TrainingDiverged(f"weights are not finite after epoch {self.epoch + 1} (diverged)")
        seconds = max(time.perf_counter() - start, 1e-9)
        self.timing.train += seconds
        train_loss = float(loss_sum) / sentences if loss_sum is not None and sentences else math.nan
        return {"train_loss": train_loss, "train_tokens_per_s": tokens / seconds}

    def _check_finite(self, loss_sum: torch.Tensor | None) -> None:
        if loss_sum is not None and not torch.isfinite(loss_sum):
            raise TrainingDiverged(f"training loss is not finite (diverged) at epoch {self.epoch + 1}")

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """val_loss (weighted by sentences) and dev entity F1, as `training.TaggerModule` logs them."""
        start = time.perf_counter()
        model = self.model
        model.eval()
        gold: list[list[str]] = []
        pred: list[list[str]] = []
        loss_sum, sentences = 0.0, 0
        with self._on_stream():
            with self._own_rng():
                batches = iter(self.val_loader)
            for batch in batches:
                batch = batch.to(self.device)
                with self._autocast():
                    scores = model(batch.tokens, batch.lengths, *batch.inputs())
                    loss = model.loss(scores, batch.labels)
                n = len(batch.lengths)
                loss_sum += float(loss) * n
                sentences += n
                pred += decode_tags(model, scores, batch.lengths, self.tags)
                gold += [
                    [self.tags[j] for j in row[:k]]
                    for row, k in zip(batch.labels.tolist(), batch.lengths.tolist())
                ]
        model.train()
        s = entity_scores(gold, pred)
        self.timing.validate += time.perf_counter() - start
        return {
            "val_loss": loss_sum / max(sentences, 1),
            MONITOR: s["entity_macro_f1"],
            "val_entity_micro_f1": s["entity_micro_f1"],
        }

    def run_epoch(self) -> dict[str, float]:
        """Train one epoch, validate, keep the best epoch's weights. Returns the epoch's metrics."""
        metrics = self.train_epoch()
        metrics.update(self.validate())
        if metrics[MONITOR] > self.best:
            self.best, self.best_epoch = metrics[MONITOR], self.epoch
            with self._on_stream():  # a copy to the host waits for this member's stream only
                weights = self.model.state_dict().items()
                self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in weights}
        self.epoch += 1
        metrics.update(
            epoch=self.epoch,
            improved=float(self.best_epoch == self.epoch - 1),
            setup_s=self.timing.setup,
            train_s=self.timing.train,
            validate_s=self.timing.validate,
        )
        return metrics

    def best_weights(self) -> dict[str, torch.Tensor]:
        if self._best_state is None:
            raise DistnerError("no validated epoch yet")
        return self._best_state

    # ------------------------------------------------------------ resuming

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly where this member is (its random streams included)."""
        if self.stream is not None:  # the caller reads the tensors on its own stream
            self.stream.synchronize()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "epoch": self.epoch,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "best_state": self._best_state,
            "rng": self._rng,
            "config": self.cfg.to_flat(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        had = state.get("config")
        if not isinstance(had, dict) or with_defaults(had) != self.cfg.to_flat():
            raise DistnerError("checkpoint: it was saved for another config")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None:  # a state without one was saved by a constant-rate config
            self.schedule.load_state_dict(state["schedule"])
        self.epoch, self.best, self.best_epoch = state["epoch"], state["best"], state["best_epoch"]
        self._best_state, self._rng = state["best_state"], state["rng"]


def _capture_rng(device: torch.device) -> dict[str, Any]:
    rng: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def _restore_rng(rng: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(rng["cpu"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)
