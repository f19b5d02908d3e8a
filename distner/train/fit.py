"""Training: the LightningModule around the Tagger, and plain `fit` / `fit_into`.

Nothing here knows about Ray: tuning passes extra Lightning callbacks (and a checkpoint to resume
from) into `fit`, exactly as a user's own script could.

Reads: a `Corpus` and a `RunConfig`. Writes, per run folder: `config.yaml` (everything needed to
rebuild the model; `evaluation.load_run` reads it back), `model.pt` (the kept epoch's weights),
`tb/` (TensorBoard) and `metrics.json` (dev and test scores from `evaluation.evaluate`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from distner.config import RunConfig
from distner.core.errors import DistnerError, TrainingDiverged, TrainingInterrupted
from distner.core.fileio import replace_dir, write_output
from distner.core.interrupts import StopRequest, stop_requests
from distner.core.locks import folder_lock
from distner.data.conll import Corpus, Sentence
from distner.data.encoded import FINITE_CHECK_EVERY, finite_weights, prepare, split_features
from distner.data.vocab import Batch, make_loader
from distner.evaluation.evaluate import EVAL_BATCH, decode_tags, evaluate
from distner.evaluation.metrics import MONITOR, entity_scores
from distner.model import runs
from distner.model.build import build_model
from distner.model.runs import check_run_out, is_run_dir
from distner.model.tagger import Tagger
from distner.pretrained.features import Features
from distner.train.optim import make_optimizer
from distner.train.precision import check_precision, select_accelerator


class TaggerModule(pl.LightningModule):
    """Cross-entropy over real tokens, Adam; validation scores entity macro-F1 on dev."""

    def __init__(self, model: Tagger, cfg: RunConfig, tags: Sequence[str]):
        super().__init__()
        self.model, self.cfg, self.tags = model, cfg, tuple(tags)
        self._gold: list[list[str]] = []
        self._pred: list[list[str]] = []
        self._epoch_tokens = 0
        self._epoch_start = 0.0
        # this epoch's loss x sentences, summed on the device: logged once per epoch as train_loss
        # (a per-step `self.log` costs Lightning ~0.2 ms of Python a step: see docs/performance.md)
        self._loss_sum: torch.Tensor | None = None
        self._epoch_sentences = 0

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        return batch.to(device)  # lengths stay on the CPU (see data.Batch)

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.model(batch.tokens, batch.lengths, *batch.inputs())
        return self.model.loss(scores, batch.labels), scores

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        step = loss.detach() * len(batch.lengths)
        self._loss_sum = step if self._loss_sum is None else self._loss_sum + step
        if (batch_idx + 1) % FINITE_CHECK_EVERY == 0:
            self._check_finite()
        self._epoch_tokens += int(batch.lengths.sum())  # a CPU tensor: no device sync
        self._epoch_sentences += len(batch.lengths)
        return loss

    def _check_finite(self, weights: bool = False) -> None:
        if self._loss_sum is not None and not torch.isfinite(self._loss_sum):
            raise FloatingPointError("training loss is not finite (diverged); try a lower lr")
        if weights and not finite_weights(self.model):
            raise FloatingPointError("weights are not finite (diverged); try a lower lr")

    def on_train_epoch_start(self) -> None:
        self._epoch_tokens, self._epoch_start, self._loss_sum = 0, time.perf_counter(), None
        self._epoch_sentences = 0

    def on_validation_epoch_start(self) -> None:
        # Validation follows the training epoch: time to here is pure training time. Checked here,
        # before validation, so a diverged epoch is never scored or reported.
        self._check_finite(weights=True)
        if not self.trainer.sanity_checking and self._epoch_tokens:
            seconds = max(time.perf_counter() - self._epoch_start, 1e-9)
            self.log("train_tokens_per_s", self._epoch_tokens / seconds)
        if self._loss_sum is not None and self._epoch_sentences:  # the sentence-weighted mean
            self.log("train_loss", self._loss_sum / self._epoch_sentences)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        loss, logits = self._loss(batch)
        self.log("val_loss", loss, on_epoch=True, batch_size=len(batch.lengths))
        self._pred += decode_tags(self.model, logits, batch.lengths, self.tags)
        self._gold += [
            [self.tags[j] for j in row[:n]] for row, n in zip(batch.labels.tolist(), batch.lengths.tolist())
        ]

    def on_validation_epoch_end(self) -> None:
        s = entity_scores(self._gold, self._pred)
        self.log(MONITOR, s["entity_macro_f1"])
        self.log("val_entity_micro_f1", s["entity_micro_f1"])
        self._gold, self._pred = [], []

    def configure_optimizers(self) -> Any:
        steps = int(self.trainer.estimated_stepping_batches)  # epochs x batches
        opt, schedule = make_optimizer(self.model, self.cfg.train, steps)
        if schedule is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class BestWeights(pl.Callback):
    """Keeps the network's weights from the best validation epoch (or, with keep_last, the last
    epoch: used when dev is part of the training data) and writes them as model.pt."""

    def __init__(self, path: Path, keep_last: bool = False):
        self.path, self.keep_last = path, keep_last
        self.best = -math.inf
        self.best_epoch = -1
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = float(trainer.callback_metrics.get(MONITOR, -math.inf))
        if not isinstance(module, TaggerModule):
            raise TypeError(f"BestWeights keeps a TaggerModule's weights, not a {type(module).__name__}'s")
        if value > self.best or self.keep_last:
            self.best, self.best_epoch = value, trainer.current_epoch
            self.state = copy.deepcopy({k: v.cpu() for k, v in module.model.state_dict().items()})
            save_weights(self.state, self.path)

    def state_dict(self) -> dict[str, Any]:  # survives a resumed fit
        return {"best": self.best, "best_epoch": self.best_epoch, "state": self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.state = state["best"], state["best_epoch"], state["state"]


class EpochLog(pl.Callback):
    """One progress line per epoch on stderr (readable in logs, unlike a progress bar)."""

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
            f"  train_loss {m.get('train_loss', float('nan')):.4f}"
            f"  val_loss {m.get('val_loss', float('nan')):.4f}"
            f"  val entity macro-F1 {100 * m.get(MONITOR, 0.0):.2f}"
            f"  {m.get('train_tokens_per_s', 0.0):,.0f} tok/s",
            file=sys.stderr,
            flush=True,
        )


def save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    buf = io.BytesIO()  # serialised first: a full disk is then an OSError of the write, not torch's
    torch.save(state, buf)
    write_output(path, lambda f: f.write(buf.getbuffer()))


@dataclass(frozen=True)
class FitResult:
    out_dir: Path
    metrics: dict[str, Any]
    best_epoch: int
    best_val_f1: float
    epochs_run: int


LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's info lines and three warnings that do not apply to distner's fits (tiny data in
    memory, no worker processes), kept out for the fit only: a program that imports distner keeps
    its own logger levels and warning filters."""
    levels = {name: logging.getLogger(name).level for name in LIGHTNING_LOGGERS}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        for name in LIGHTNING_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def fit(
    cfg: RunConfig,
    corpus: Corpus,
    out_dir: str | os.PathLike,
    *,
    accelerator: str = "auto",
    callbacks: Sequence[pl.Callback] = (),
    ckpt_path: str | None = None,
    progress: bool = True,
    evaluate_test: bool = True,
    keep: runs.KeepEpoch = "best",
) -> FitResult:
    """Train one model and write config.yaml, model.pt, tb/ (TensorBoard) and metrics.json.

    `keep="best"` keeps the epoch with the best dev entity macro-F1; `"last"` the final epoch.
    """
    with _quiet_lightning():
        return _fit(cfg, corpus, out_dir, accelerator, callbacks, ckpt_path, progress, evaluate_test, keep)


def _fit(
    cfg: RunConfig,
    corpus: Corpus,
    out_dir: str | os.PathLike,
    accelerator: str,
    callbacks: Sequence[pl.Callback],
    ckpt_path: str | None,
    progress: bool,
    evaluate_test: bool,
    keep: runs.KeepEpoch,
) -> FitResult:
    accel = select_accelerator(accelerator)
    check_precision(cfg.train.precision, accel)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    data = prepare(corpus, cfg)
    model = build_model(cfg, data)
    module = TaggerModule(model, cfg, data.tags)
    runs.write_config(out, cfg, corpus, data)

    logger = TensorBoardLogger(save_dir=str(out), name="tb", version="", default_hp_metric=False)
    logger.log_hyperparams(
        {**cfg.to_flat(), "lang": corpus.lang, "granularity": corpus.granularity},
        metrics={f"best/{MONITOR}": 0.0},
    )
    best = BestWeights(out / runs.WEIGHTS, keep_last=keep == "last")
    progress_cbs = [EpochLog()] if progress else []
    trainer = pl.Trainer(
        max_epochs=cfg.train.epochs,
        accelerator=accel,
        devices=1,
        logger=logger,
        callbacks=[best, *progress_cbs, *callbacks],
        enable_checkpointing=False,
        enable_progress_bar=progress and sys.stderr.isatty(),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=cfg.train.grad_clip or None,
        log_every_n_steps=10,
        precision=cfg.train.precision,
    )
    device = torch.device("cuda" if accel == "gpu" else "cpu")
    started = time.perf_counter()
    try:
        trainer.fit(  # the data is put on the device once; batches are slices of it
            module,
            train_dataloaders=make_loader(data.train, cfg.train.batch_size, True, cfg.train.seed, device),
            val_dataloaders=make_loader(data.dev, EVAL_BATCH, False, device=device),
            ckpt_path=ckpt_path,
        )
    except FloatingPointError as e:
        raise TrainingDiverged(f"{out}: {e} at epoch {trainer.current_epoch + 1}") from None
    except SystemExit as e:
        # Lightning ends a Ctrl-C'd fit with sys.exit(1), and a SIGTERM'd one (its handler runs
        # beside ours) with SIGTERMException, a SystemExit of code None: exit 0 if let through
        if isinstance(e.__context__, KeyboardInterrupt) or isinstance(e, SIGTERMException):
            raise TrainingInterrupted() from None
        raise
    if trainer.interrupted:  # a stop that returned normally is still not a result
        raise TrainingInterrupted()
    seconds = time.perf_counter() - started
    if best.state is None:
        raise DistnerError("training produced no validated epoch")
    model.load_state_dict(best.state)
    logger.log_metrics({f"best/{MONITOR}": best.best}, step=trainer.global_step)
    logger.finalize("success")

    seq_len = cfg.train.scoring_len

    def score_split(sentences: list[Sentence], known: list[Features] | None = None) -> dict[str, Any]:
        feats: list[Features] | None = None
        if cfg.model.encoder_features:  # the split's features, for its non-empty sentences
            rows = iter(known if known is not None else split_features(sentences, cfg.model))
            feats = [next(rows) if len(s) else torch.zeros((0, 1, 384)) for s in sentences]
        return evaluate(model, sentences, data.vocab, data.tags, seq_len, device, data.chars, feats)

    metrics: dict[str, Any] = {"dev": score_split(corpus.dev, data.dev_features)}  # read in prepare
    if evaluate_test:
        metrics["test"] = score_split(corpus.test)
    metrics.update(
        lang=corpus.lang,
        granularity=corpus.granularity,
        seed=cfg.train.seed,
        best_epoch=best.best_epoch + 1,
        epochs_run=trainer.current_epoch,
        train_seconds=round(seconds, 2),
        config=cfg.to_flat(),
    )
    runs.write_metrics(out, metrics)
    return FitResult(out, metrics, best.best_epoch + 1, best.best, trainer.current_epoch)


class StopAtBatch(pl.Callback):
    """A stop signal during a fit (interrupts.stop_requests) ends it at the next batch boundary.
    Raised by the signal handler itself, a KeyboardInterrupt can land inside TensorBoard's writer
    queue, and Lightning's shutdown then waits on that queue forever; raised here nothing is half
    done."""

    def __init__(self, request: StopRequest) -> None:
        self.request = request

    def on_train_batch_end(self, *args: Any) -> None:
        self.request.check()

    def on_validation_batch_end(self, *args: Any) -> None:
        self.request.check()


def fit_into(
    cfg: RunConfig, corpus: Corpus, out_dir: str | os.PathLike, *, overwrite: bool = False, **kwargs: Any
) -> FitResult:
    """`fit` into a fresh hidden folder beside `out_dir`, moved into place only once the run has
    finished: an earlier run there survives a failure or Ctrl-C, and nothing half-made ever looks
    like a run. An existing run is replaced only with `overwrite`. Keyword arguments go to `fit`."""
    out = check_run_out(out_dir, overwrite)
    # one writer per run folder: a second would replace this run when it finished (no --overwrite)
    with folder_lock(out, f"run folder {out}", beside=True):
        return _fit_into(cfg, corpus, check_run_out(out, overwrite), kwargs)  # again, held


def _fit_into(cfg: RunConfig, corpus: Corpus, out: Path, kwargs: dict[str, Any]) -> FitResult:
    for stale in out.parent.iterdir():  # under the lock, a temp folder is a killed writer's
        if re.fullmatch(rf"\.{re.escape(out.name)}\.tmp-[a-z0-9_]{{8}}", stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    existed = is_run_dir(out)
    try:
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; run folders are meant to be shared
    except OSError as e:
        raise DistnerError(f"{out}: cannot write the run ({e.strerror or e})") from None
    try:
        with stop_requests() as stop:
            kwargs["callbacks"] = [*kwargs.get("callbacks", ()), StopAtBatch(stop)]
            result = fit(cfg, corpus, tmp, **kwargs)
        stop.check()  # a stop outside the batch loop (data preparation, final evaluation)
        replace_dir(tmp, out)
    except KeyboardInterrupt:
        if not tmp.exists():  # Ctrl-C held back during the swap fired right after it
            raise TrainingInterrupted(f"interrupted after the run finished; {out} holds it") from None
        shutil.rmtree(tmp, ignore_errors=True)
        kept = "the earlier run there is unchanged" if existed else "nothing was written there"
        raise TrainingInterrupted(f"training of {out} stopped; {kept}") from None
    except TrainingDiverged as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TrainingDiverged(str(e).replace(str(tmp), str(out))) from None
    except OSError as e:  # a full disk, a lost permission: one line, and no half-made run is left
        shutil.rmtree(tmp, ignore_errors=True)
        raise DistnerError(f"{out}: cannot write the run ({e.strerror or e})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dataclasses.replace(result, out_dir=out)
