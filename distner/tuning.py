"""Ray Tune studies: Optuna (TPE) proposes configs, ASHA stops weak trials early, trials are plain
`distner.training.fit` runs with a reporting callback. Starting Ray (shared with retraining) is
ray_runtime.py.

Reads: the data root, a search space YAML. Writes, per study: Ray's experiment folder under
`<storage>/<name>/` (per trial: params, per-epoch metrics, last checkpoint, TensorBoard events,
model.pt of its best epoch), then `trials.csv`, `summary.json` and `optuna.db` beside it (or
under `runs/<name>/` when storage is remote), and `best/<lang>-<granularity>.yaml`.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from .config import RunConfig
from .data import Corpus
from .errors import DistnerError, StudyInterrupted, TrainingDiverged, shorten
from .fileio import write_json, write_yaml
from .labels import normalize_granularity, normalize_lang
from .paths import check_output_dir, check_output_file, check_path_component, is_remote
from .ray_runtime import check_storage_for_cluster, gpu_share, init_ray
from .spaces import Param, Space, load_space
from .tables import table
from .training import MONITOR, fit

# When a trial saves a resumable checkpoint (weights + Adam state: 156 MB at the seed's size on
# Hindi, ~0.8 s to save and copy; docs/performance.md). By default ("auto", 0) once this many seconds
# of the trial ran since its last one, and never sooner than 20x the last checkpoint's own cost:
# checkpoints then take at most ~5% of a trial, and --resume repeats at most about a minute of it
# (or one epoch, where an epoch takes longer). A 1 s GPU epoch is never worth a 0.8 s checkpoint.
AUTO_CHECKPOINT_S = 60.0
CHECKPOINT_COST_FACTOR = 20.0


@dataclass(frozen=True)
class TuneOptions:
    lang: str
    granularity: str = "fine"
    space: str = "tune_spaces/default.yaml"
    num_samples: int = 64
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: 0.25 when the cluster has GPUs, else 0
    time_budget_s: float | None = None
    address: str | None = None
    storage: str = "runs"
    name: str | None = None
    resume: bool = False
    seed: int = 0
    data_dir: str | None = None
    best_dir: str = "best"
    grace_period: int = 1
    reduction_factor: int = 3
    max_failures: int = 2
    verbose: int = 1
    start_from: tuple[str, ...] = ()  # config YAMLs run right after the baseline (warm start)
    results_only: bool = False  # rewrite trials.csv, summary, optuna.db, best/ from a study; no training
    checkpoint_every: int = 0  # a trial's resumable checkpoint every K epochs; 0 = auto (see above)

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise DistnerError(f"--num-samples: must be >= 1, got {self.num_samples}")
        if self.cpus_per_trial <= 0:
            raise DistnerError(f"--cpus-per-trial: must be > 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise DistnerError(f"--gpus-per-trial: must be >= 0, got {self.gpus_per_trial}")
        if self.grace_period < 1:
            raise DistnerError(f"--grace-period: must be >= 1, got {self.grace_period}")
        if self.checkpoint_every < 0:
            raise DistnerError(f"--checkpoint-every: must be auto or >= 1, got {self.checkpoint_every}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise DistnerError(f"--max-concurrent: must be >= 1, got {self.max_concurrent}")
        if self.name is not None:  # a folder under --storage: it must not climb out of it
            check_path_component(self.name, "--name")


@dataclass
class StudyResult:
    name: str
    study_path: str
    results_dir: Path
    best_config_path: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)


def parse_duration(text: str) -> float:
    """'2h', '90m', '1h30m', '45s' or plain seconds -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise DistnerError(f"--time-budget {shorten(text)}: use e.g. 2h, 90m, 1h30m or 45s")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


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
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
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

    def __enter__(self) -> _StopSignals:
        import threading

        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
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
        if self._old:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)


def study_exists(storage: str, name: str) -> bool:
    from ray import tune

    path = storage if is_remote(storage) else str(Path(storage).resolve())
    return tune.Tuner.can_restore(f"{path.rstrip('/')}/{name}")


def run_study(opts: TuneOptions) -> StudyResult:
    """Run (or resume) one study for one language x granularity and write its outputs."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    lang, gran = normalize_lang(opts.lang), normalize_granularity(opts.granularity)
    space: Space = load_space(opts.space)
    starts = [space.start_point(p) for p in opts.start_from]  # bad files fail before Ray starts
    if opts.resume and starts:  # the searcher's saved state already holds what it started with
        print("--start-from: ignored, the study is resumed", file=sys.stderr)
    name = opts.name or f"{lang}-{gran}"
    storage = opts.storage if is_remote(opts.storage) else str(Path(opts.storage).resolve())
    study_path = f"{storage.rstrip('/')}/{name}"
    results_dir = Path(study_path) if not is_remote(storage) else Path("runs", name).resolve()
    _check_outputs(opts, results_dir, lang, gran)
    exists = tune.Tuner.can_restore(study_path)
    if exists and not (opts.resume or opts.results_only):
        raise DistnerError(f"{study_path}: study exists; add --resume to continue it, or --name NEW")
    if (opts.resume or opts.results_only) and not exists:
        raise DistnerError(f"{study_path}: no study to resume (run without --resume to start it)")

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
            points_to_evaluate=[space.baseline_point(), *starts],
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
            grid = tune.Tuner.restore(study_path, trainable=trainable, param_space=param_space).get_results()
            return _finish(grid, float("nan"), space, opts, name, lang, gran, gpus, study_path, results_dir)
        if opts.resume:
            tuner = tune.Tuner.restore(
                study_path,
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
        return _finish(grid, wall, space, opts, name, lang, gran, gpus, study_path, results_dir)
    finally:
        if started_ray:
            ray.shutdown()


def _check_outputs(opts: TuneOptions, results_dir: Path, lang: str, gran: str) -> None:
    """Every local place a study writes (the study folder itself, or its results when storage
    is remote; best/), checked before data is read or Ray starts."""
    check_output_dir(results_dir, "--storage")
    check_output_file(_best_path(opts, lang, gran), "--best-dir")


def _best_path(opts: TuneOptions, lang: str, gran: str) -> Path:
    return Path(opts.best_dir).resolve() / f"{lang}-{gran}.yaml"


def _finish(
    grid: Any,
    wall: float,
    space: Space,
    opts: TuneOptions,
    name: str,
    lang: str,
    gran: str,
    gpus: float,
    study_path: str,
    results_dir: Path,
) -> StudyResult:
    """Write trials.csv, summary.json, optuna.db and best/<cell>.yaml from a study's results."""
    rows = _trial_rows(grid, space, space.max_epochs())
    summary = _summarise(rows, name, lang, gran, opts, space, wall, gpus)
    summary["start_from"] = _start_rows(rows, space, opts.start_from)
    results_dir.mkdir(parents=True, exist_ok=True)
    _write_trials_csv(results_dir / "trials.csv", rows, space)
    write_json(results_dir / "summary.json", summary)
    _export_optuna(study_path, results_dir / "optuna.db", name)
    best_path = _write_best(rows, space, opts, lang, gran, name)
    return StudyResult(name, study_path, results_dir, best_path, summary, rows)


def _trial_rows(grid: Any, space: Space, max_t: int) -> list[dict[str, Any]]:
    baseline = space.baseline_point()
    rows = []
    for r in grid:
        df = r.metrics_dataframe
        last = r.metrics or {}
        params = r.config or _params_on_disk(r.path)  # None: the trial never reported (time budget)
        cfg = {p.name: params.get(p.name) for p in space.params}
        f1s = df[MONITOR].dropna().tolist() if df is not None and MONITOR in df else []
        epochs = int(df["training_iteration"].max()) if df is not None and len(df) else 0
        if r.error is not None:
            state = "failed"
        elif last.get("diverged"):
            state = "diverged"
        elif epochs == 0:
            state = "not_run"
        elif epochs < int(params.get("epochs", space.base()["epochs"])):
            state = "stopped_early"
        else:
            state = "completed"
        trial_dir = Path(r.path).name if r.path else ""
        rows.append(
            {
                "trial": last.get("trial_id", trial_dir),
                "index": _trial_index(trial_dir),
                **cfg,
                "best_dev_f1": max(f1s) if f1s else float("nan"),
                "epochs_run": epochs,
                "state": state,
                "seconds": round(float(last.get("time_total_s", 0.0)), 2),
                "node_id": last.get("node_id", ""),
                "baseline": cfg == baseline,
                "error": str(r.error).splitlines()[0][:200] if r.error else "",
                "trial_dir": trial_dir,
            }
        )
    rows.sort(key=lambda row: row["index"])
    return rows


def _params_on_disk(path: str | None) -> dict[str, Any]:
    import json

    p = Path(path or "", "params.json")
    return json.loads(p.read_text()) if path and p.is_file() else {}


def _trial_index(trial_dir_name: str) -> int:
    """Creation order: Ray names trial folders `<trainable>_<id>_<n>_<params>_<date>`, n from 1."""
    m = re.match(r".*?_[0-9a-f]{8}_(\d+)_", trial_dir_name)
    return int(m.group(1)) if m else 0


def _start_rows(rows: list[dict], space: Space, files: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each --start-from file with the trial that ran its values (found by value, so a resumed
    study given the same files finds them too): what a transferred config scored on this cell."""
    out = []
    for f in files:
        point = space.start_point(f)
        row = next((r for r in rows if all(_same(r[k], v) for k, v in point.items())), None)
        out.append(
            {
                "config": f,
                "trial": row["trial"] if row else None,
                "best_dev_f1": row["best_dev_f1"] if row else None,
                "epochs_run": row["epochs_run"] if row else None,
            }
        )
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9)
    return a == b


def _summarise(
    rows: list[dict],
    name: str,
    lang: str,
    gran: str,
    opts: TuneOptions,
    space: Space,
    wall: float,
    gpus: float,
) -> dict[str, Any]:
    scored = [
        r for r in rows if not math.isnan(r["best_dev_f1"]) and r["state"] not in ("failed", "diverged")
    ]
    best = max(scored, key=lambda r: r["best_dev_f1"], default=None)
    base = next((r for r in rows if r["baseline"]), None)
    count = {
        s: sum(r["state"] == s for r in rows)
        for s in ("completed", "stopped_early", "failed", "diverged", "not_run")
    }
    return {
        "study": name,
        "lang": lang,
        "granularity": gran,
        "space": os.path.relpath(space.source),  # relative: summaries get committed
        "searcher": f"OptunaSearch(TPESampler(seed={opts.seed}))",
        "scheduler": f"ASHAScheduler(max_t={space.max_epochs()}, grace_period={opts.grace_period}, "
        f"reduction_factor={opts.reduction_factor})",
        "seed": opts.seed,
        "checkpoint_every": opts.checkpoint_every or "auto",
        "trials": len(rows),
        **count,
        "best_trial": best["trial"] if best else None,
        "best_dev_f1": best["best_dev_f1"] if best else None,
        "baseline_dev_f1": base["best_dev_f1"] if base else None,
        "wall_seconds": None if math.isnan(wall) else round(wall, 1),
        "trial_seconds": round(sum(r["seconds"] for r in rows), 1),
        "gpu_hours": round(sum(r["seconds"] for r in rows) * gpus / 3600, 4),
        "gpus_per_trial": gpus,
        "cpus_per_trial": opts.cpus_per_trial,
        "nodes": sorted({r["node_id"] for r in rows if r["node_id"]}),
    }


def _write_trials_csv(path: Path, rows: list[dict], space: Space) -> None:
    cols = [
        "index",
        "trial",
        *(p.name for p in space.params),
        "best_dev_f1",
        "epochs_run",
        "state",
        "seconds",
        "node_id",
        "baseline",
        "error",
        "trial_dir",
    ]
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, newline="", suffix=".tmp") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)


def _export_optuna(study_path: str, db: Path, name: str) -> None:
    """Copy the searcher's Optuna study into SQLite, so reports can use optuna's own tools."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = OptunaSearch()
    searcher.restore_from_dir(study_path)
    study = searcher._ot_study  # noqa: SLF001 - Ray keeps the study only here
    tmp = db.with_name(f".{db.name}.tmp")
    tmp.unlink(missing_ok=True)
    out = optuna.create_study(storage=f"sqlite:///{tmp}", study_name=name, direction="maximize")
    out.add_trials([t for t in study.trials if t.state.is_finished()])
    del out
    os.replace(tmp, db)


def _write_best(rows: list[dict], space: Space, opts: TuneOptions, lang: str, gran: str, name: str) -> Path:
    scored = [
        r for r in rows if not math.isnan(r["best_dev_f1"]) and r["state"] not in ("failed", "diverged")
    ]
    if not scored:
        raise DistnerError(f"study {name}: no trial produced a dev score; see {opts.storage}/{name}")
    best = max(scored, key=lambda r: r["best_dev_f1"])
    flat = {**space.base(), **{p.name: best[p.name] for p in space.params}}
    cfg = RunConfig.from_flat(flat)  # validates, normalises types
    path = _best_path(opts, lang, gran)
    header = (
        f"# Best config of study {name!r} ({lang}-{gran}): trial {best['trial']},\n"
        f"# dev entity macro-F1 {best['best_dev_f1']:.4f} after {best['epochs_run']} epochs.\n"
        f"# Train it: distner train --lang {lang} --granularity {gran} --config {os.path.relpath(path)}\n"
    )
    meta = {
        "study": str(Path(opts.storage, name)) if not is_remote(opts.storage) else f"{opts.storage}/{name}",
        "trial": best["trial"],
        "dev_entity_macro_f1": best["best_dev_f1"],
        "epochs_run": best["epochs_run"],
    }
    write_yaml(path, {**cfg.to_flat(), "_meta": meta}, header=header)
    return path


def summary_table(result: StudyResult) -> str:
    s = result.summary
    pct = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"  # noqa: E731
    rows = [
        [
            "study",
            "best dev F1",
            "baseline dev F1",
            "trials",
            "completed",
            "stopped early",
            "failed",
            "not run",
            "wall",
            "GPU-h",
        ],
        [
            s["study"],
            pct(s["best_dev_f1"]),
            pct(s["baseline_dev_f1"]),
            str(s["trials"]),
            str(s["completed"]),
            str(s["stopped_early"]),
            str(s["failed"] + s["diverged"]),
            str(s["not_run"]),
            "-" if s["wall_seconds"] is None else f"{s['wall_seconds']:.0f}s",
            f"{s['gpu_hours']:.3f}",
        ],
    ]
    return table(rows)
