"""Ray Tune studies: Optuna (TPE) proposes configs, ASHA stops weak trials early, trials are plain
`distner.training.fit` runs with a reporting callback. Starting Ray (shared with retraining) is
ray_runtime.py.

Reads: the data root, a search space YAML. Writes, per study: Ray's experiment folder under
`<storage>/<name>/` (per trial: params, per-epoch metrics, last checkpoint, TensorBoard events,
model.pt of its best epoch), then the study's output files, written by study.py: `trials.csv`,
`summary.json` and `optuna.db` beside it (or under `runs/<name>/` when storage is remote), and
`best/<lang>-<granularity>.yaml`.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from .config import RunConfig
from .data import Corpus
from .errors import DistnerError, StudyInterrupted, TrainingDiverged
from .labels import normalize_granularity, normalize_lang
from .options import TuneOptions
from .paths import check_output_dir, check_output_file
from .ray_runtime import check_storage_for_cluster, gpu_share, init_ray
from .spaces import Param, Space, load_space
from .study import (
    Study,
    StudyFiles,
    StudyResult,
    active_seconds,
    start_rows,
    storage_root,
    study_path,
    summarise,
    trial_rows,
    write_outputs,
)
from .training import MONITOR, fit

# When a trial saves a resumable checkpoint (weights + Adam state: 156 MB at the seed's size on
# Hindi, ~0.8 s to save and copy; docs/performance.md). By default ("auto", 0) once this many seconds
# of the trial ran since its last one, and never sooner than 20x the last checkpoint's own cost:
# checkpoints then take at most ~5% of a trial, and --resume repeats at most about a minute of it
# (or one epoch, where an epoch takes longer). A 1 s GPU epoch is never worth a 0.8 s checkpoint.
AUTO_CHECKPOINT_S = 60.0
CHECKPOINT_COST_FACTOR = 20.0


# ---------------------------------------------------------------- inside a trial (a Ray worker)


def due_for_checkpoint(epoch: int, every: int, since_s: float, last_cost_s: float) -> bool:
    """Whether a trial checkpoints after `epoch` (1-based): every `every` epochs, or with every=0
    (auto) once `since_s` seconds ran since its last checkpoint, bounded below by 20x what the last
    one cost (`last_cost_s`, 0 before the first)."""
    if every:
        return epoch % every == 0
    return since_s >= max(AUTO_CHECKPOINT_S, CHECKPOINT_COST_FACTOR * last_cost_s)


class TuneReport(pl.Callback):
    """After each epoch (validation included) report metrics to Tune; a resumable checkpoint goes
    with the report when `due_for_checkpoint` says so."""

    def __init__(self, node_id: str, checkpoint_every: int = 0):
        self.node_id, self.checkpoint_every = node_id, checkpoint_every
        self._last = time.perf_counter()  # end of the last checkpoint (or the trial's start)
        self._cost = 0.0

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        from ray import tune

        epoch = trainer.current_epoch + 1
        metrics: dict[str, Any] = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics.update(epoch=epoch, node_id=self.node_id)
        start = time.perf_counter()
        if not due_for_checkpoint(epoch, self.checkpoint_every, start - self._last, self._cost):
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            trainer.save_checkpoint(Path(d) / "last.ckpt")
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        self._last = time.perf_counter()
        self._cost = self._last - start


def run_trial(
    params: dict[str, Any],
    *,
    corpus: Corpus,
    base: dict[str, Any],
    accelerator: str,
    threads: int,
    checkpoint_every: int = 0,
) -> None:
    """The trainable: one `fit` on the sampled config, in the trial's own working directory."""
    import ray
    from ray import tune

    torch.set_num_threads(max(1, threads))
    cfg = RunConfig.from_flat({**base, **params})
    ckpt_path = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # resumed: continue after the last reported epoch
        with checkpoint.as_directory() as d:
            ckpt_path = str(Path.cwd() / "resume.ckpt")
            shutil.copy(Path(d) / "last.ckpt", ckpt_path)
    node = ray.get_runtime_context().get_node_id()
    try:
        fit(
            cfg,
            corpus,
            Path.cwd(),
            accelerator=accelerator,
            callbacks=[TuneReport(node, checkpoint_every)],
            ckpt_path=ckpt_path,
            progress=False,
            evaluate_test=False,
        )
    except TrainingDiverged:
        # A diverged trial would diverge again if retried: end it with a score of 0 instead.
        tune.report({MONITOR: 0.0, "diverged": 1.0, "node_id": node})


# ---------------------------------------------------------------- the driver


def _ray_domain(p: Param) -> Any:
    from ray import tune

    a = p.args
    return {
        "choice": lambda: tune.choice(list(a)),
        "uniform": lambda: tune.uniform(a[0], a[1]),
        "quniform": lambda: tune.quniform(a[0], a[1], a[2]),
        "loguniform": lambda: tune.loguniform(a[0], a[1]),
        "qloguniform": lambda: tune.qloguniform(a[0], a[1], a[2]),
        "randint": lambda: tune.randint(a[0], a[1] + 1),  # ours is inclusive, Ray's is not
        "qrandint": lambda: tune.qrandint(a[0], a[1], a[2]),
    }[p.kind]()


class _StopSignals:
    """Ctrl-C (SIGINT) or SIGTERM during a study: ask Tune for its graceful stop (it saves the
    experiment state so --resume continues) and remember that a signal came. Tune's own SIGINT
    handler cannot be asked afterwards whether it fired, and once every trial has been created its
    stop marks the running ones TERMINATED, so a stopped study looked finished. A second signal
    stops at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}
        self._env: str | None = None

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
            self._env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours forwards to Tune's SIGUSR1 one
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, sig: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt("stopped at once; --resume continues from the last saved state")
        self.received = sig
        print("distner: stopping; saving the study's state (again: stop at once)", file=sys.stderr)
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop: ends the loop, saves state

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        if not self._old:
            return
        if self._env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = self._env  # the user's own setting


def study_exists(storage: str, name: str) -> bool:
    from ray import tune

    return tune.Tuner.can_restore(study_path(storage, name))


def initial_points(space: Space, start_from: tuple[str, ...]) -> list[dict[str, Any]]:
    """The study's first trials: the seed baseline, then each --start-from file's searched values,
    each distinct point once (two cells' winners are often one config; a second run of it would
    only spend a trial on the same score)."""
    points = [space.baseline_point()]
    for f in start_from:
        point = space.start_point(f)
        if point in points:
            print(f"--start-from {f}: the searched values of an earlier start; runs once", file=sys.stderr)
        else:
            points.append(point)
    return points


def run_study(opts: TuneOptions) -> StudyResult:
    """Run (or resume) one study for one language x granularity and write its outputs."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    lang, gran = normalize_lang(opts.lang), normalize_granularity(opts.granularity)
    space: Space = load_space(opts.space)
    points = initial_points(space, opts.start_from)  # bad files fail before Ray starts
    if opts.resume and opts.start_from:  # the searcher's saved state already holds what it started with
        print("--start-from: ignored, the study is resumed", file=sys.stderr)
    study = Study(opts.name or f"{lang}-{gran}", lang, gran, opts.storage, opts.best_dir)
    name, path, storage = study.name, study.path, storage_root(opts.storage)
    _check_outputs(study)
    exists = tune.Tuner.can_restore(path)
    if exists and not (opts.resume or opts.results_only):
        raise DistnerError(f"{path}: study exists; add --resume to continue it, or --name NEW")
    if (opts.resume or opts.results_only) and not exists:
        raise DistnerError(f"{path}: no study to resume (run without --resume to start it)")

    corpus = Corpus.load(opts.data_dir, lang, gran)
    corpus = replace(corpus, test=[])  # tuning never sees test
    # per-epoch checkpoints with num_to_keep=1 make Tune warn about snapshot frequency; expected here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    started_ray = init_ray(opts.address, opts.verbose)
    try:
        check_storage_for_cluster(storage)
        gpus = gpu_share(opts.gpus_per_trial)
        trainable = tune.with_resources(
            tune.with_parameters(
                run_trial,
                corpus=corpus,
                base=space.base(),
                accelerator="gpu" if gpus > 0 else "cpu",
                threads=max(1, int(opts.cpus_per_trial)),
                checkpoint_every=opts.checkpoint_every,
            ),
            {"cpu": opts.cpus_per_trial, "gpu": gpus},
        )
        param_space = {p.name: _ray_domain(p) for p in space.params}
        max_t = space.max_epochs()
        searcher = OptunaSearch(
            points_to_evaluate=points,
            sampler=optuna.samplers.TPESampler(seed=opts.seed),
        )
        tune_config = tune.TuneConfig(
            metric=MONITOR,
            mode="max",
            search_alg=searcher,
            scheduler=ASHAScheduler(
                time_attr="training_iteration",
                max_t=max_t,
                grace_period=min(opts.grace_period, max_t),
                reduction_factor=opts.reduction_factor,
            ),
            num_samples=opts.num_samples,
            max_concurrent_trials=opts.max_concurrent,
            time_budget_s=opts.time_budget_s,
            reuse_actors=True,
        )
        run_config = tune.RunConfig(
            name=name,
            storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=opts.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            sync_config=tune.SyncConfig(sync_artifacts=True),
            verbose=opts.verbose,
        )
        t0 = time.time()
        if opts.results_only:
            grid = tune.Tuner.restore(path, trainable=trainable, param_space=param_space).get_results()
            return _finish(grid, float("nan"), space, opts, study, gpus)
        if opts.resume:
            tuner = tune.Tuner.restore(
                path,
                trainable=trainable,
                param_space=param_space,
                resume_unfinished=True,
                resume_errored=True,
            )
        else:
            tuner = tune.Tuner(
                trainable, param_space=param_space, tune_config=tune_config, run_config=run_config
            )
        with _StopSignals() as stop:
            grid = tuner.fit()
        wall = time.time() - t0
        finished = grid.num_terminated + grid.num_errors
        budget_hit = opts.time_budget_s is not None and wall >= 0.98 * opts.time_budget_s
        cut_short = finished < len(grid) or (len(grid) < opts.num_samples and not opts.resume)
        if stop.received is not None or (not budget_hit and cut_short):
            how = (
                f"stopped by {signal.Signals(stop.received).name}"
                if stop.received is not None
                else f"interrupted with {finished} of {opts.num_samples} trials ended"
            )
            raise StudyInterrupted(f"study {name} {how}; run the same command with --resume to continue it")
        return _finish(grid, wall, space, opts, study, gpus)
    finally:
        if started_ray:
            ray.shutdown()


def _check_outputs(study: Study) -> None:
    """Every local place a study writes (the study folder itself, or its results when storage
    is remote; best/), checked before data is read or Ray starts."""
    check_output_dir(study.results_dir, "--storage")
    check_output_file(study.best_path, "--best-dir")


def _finish(
    grid: Any, wall: float, space: Space, opts: TuneOptions, study: Study, gpus: float
) -> StudyResult:
    """The study's output files (study.py) from its results, with how this study searched."""
    rows = trial_rows(grid, space)
    search = {
        "searcher": f"OptunaSearch(TPESampler(seed={opts.seed}))",
        "scheduler": f"ASHAScheduler(max_t={space.max_epochs()}, grace_period={opts.grace_period}, "
        f"reduction_factor={opts.reduction_factor})",
        "seed": opts.seed,
        "checkpoint_every": opts.checkpoint_every or "auto",
    }
    resources = {"gpus_per_trial": gpus, "cpus_per_trial": opts.cpus_per_trial}
    if math.isnan(wall):  # --results-only: no run now; keep the wall time the study recorded
        wall = StudyFiles(study.results_dir).recorded_wall()
    summary = summarise(rows, study, space, search, resources, wall, active_seconds(grid))
    summary["start_from"] = start_rows(rows, space, opts.start_from)
    return write_outputs(study, rows, summary, space)
