"""Ray Tune studies, the driver's side: Optuna (TPE) proposes configs, ASHA stops weak trials
early, trials are plain `distner.training.fit` runs with a reporting callback (tune/trial.py). Starting
Ray (shared with retraining) is tune/ray_runtime.py. Light on import: a study's checks (space, names,
outputs, the folder's claim) run before Ray, Optuna, torch and Lightning load.

Reads: the data root, a search space YAML. Writes, per study: Ray's experiment folder under
`<storage>/<name>/` (per trial: params, per-epoch metrics, last checkpoint, TensorBoard events,
model.pt of its best epoch), then the study's output files, written by tune/study.py: `trials.csv`,
`summary.json` and `optuna.db` beside it (or under `runs/<name>/` when storage is remote), and
`best/<lang>-<granularity>.yaml`.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from distner.config import RunConfig
from distner.core import compat, manifest
from distner.core.errors import DistnerError, StudyInterrupted
from distner.core.fileio import read_json, write_json
from distner.core.interrupts import StopRequest, stop_requests
from distner.core.locks import folder_lock
from distner.core.paths import check_output_dir, check_output_file, is_remote
from distner.data.conll import Corpus
from distner.evaluation.metrics import MONITOR
from distner.labels import Cell, normalize_granularity, normalize_lang
from distner.options import DEFAULT_GPU_SHARE, NUM_SAMPLES, PACK_MAX, TuneOptions
from distner.spaces import Param, Space, load_space
from distner.tune import packed, trust
from distner.tune.start import StartPoint, resolve_start_points, start_rows
from distner.tune.study import (
    Study,
    StudyFiles,
    StudyResult,
    active_seconds,
    drop_ended_checkpoints,
    storage_root,
    study_path,
    summarise,
    trial_rows,
    write_outputs,
)

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


@contextmanager
def _graceful_stop() -> Iterator[StopRequest]:
    """interrupts' policy for a study: the first Ctrl-C (SIGINT) or SIGTERM asks Tune for its
    graceful stop (it saves the experiment state, so --resume continues), the second stops at once.
    Tune's own SIGINT handler is turned off for the block: it cannot be asked afterwards whether it
    fired, and once every trial has been created its stop marks the running ones TERMINATED, so a
    stopped study looked finished."""

    def ask_tune(sig: int) -> None:
        print("distner: stopping; saving the study's state (again: stop at once)", file=sys.stderr)
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop: ends the loop, saves state

    with _tune_env("TUNE_DISABLE_SIGINT_HANDLER", "1", override=True), stop_requests(ask_tune) as request:
        yield request


@contextmanager
def _tune_env(key: str, value: str, override: bool = False) -> Iterator[None]:
    """A Ray Tune setting (Tune reads them from the environment) for the study's fit only; a
    user's own setting wins unless `override`, and is put back after."""
    was = os.environ.get(key)
    if was is not None and not override:
        yield
        return
    os.environ[key] = value
    try:
        yield
    finally:
        if was is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = was


RAY_TB_HINT = "To visualize your results with TensorBoard"  # Ray's banner line: its staging folder


class _DropLine:
    """sys.stdout, less the lines that start with `prefix` (Ray prints each with one `print`)."""

    def __init__(self, out: Any, prefix: str) -> None:
        self._out, self._prefix, self._dropping = out, prefix, False

    def write(self, text: str) -> int:
        if text.startswith(self._prefix):
            self._dropping = True  # print() writes the line, then its end separately
            return len(text)
        if self._dropping and text == "\n":
            self._dropping = False
            return len(text)
        self._dropping = False
        return int(self._out.write(text))

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding: the real stream's
        return getattr(self._out, name)


@contextmanager
def _ray_tensorboard_hint(shown: bool) -> Iterator[None]:
    """Ray's banner names its staging folder as the TensorBoard logdir, not the study's folder;
    distner prints its own hint (`distner board STUDY`), so Ray's is kept out unless --verbose 2
    asks for Ray's own output."""
    if shown:
        yield
        return
    real = sys.stdout
    sys.stdout = _DropLine(real, RAY_TB_HINT)
    try:
        yield
    finally:
        sys.stdout = real


def study_exists(storage: str, name: str) -> bool:
    """A study was started there: Ray's state is restorable, or (local) the folder holds files
    beside its claim (a damaged state, which resuming then names in one line)."""
    path = study_path(storage, name)
    if compat.can_restore(path, remote=is_remote(storage)):
        return True
    return not is_remote(storage) and manifest.holds_files(Path(path), besides=(manifest.NAME, PACK_FILE))


Starts = list[tuple[StartPoint, RunConfig]]  # start points (tune/start.py) and their configs


def initial_points(space: Space, starts: Starts) -> list[dict[str, Any]]:
    """The study's first trials: the reference baseline, then each start point's searched values,
    each distinct point once (two cells' winners are often one config; a second run of it would
    only spend a trial on the same score)."""
    points = [space.baseline_point()]
    for start, cfg in starts:
        point = space.start_point(cfg, start.where)
        if point in points:
            print(f"{start.where}: the searched values of an earlier start; runs once", file=sys.stderr)
        else:
            points.append(point)
    return points


def run_study(opts: TuneOptions, corpus: Corpus | None = None) -> StudyResult:
    """Run (or resume) one study for one language x granularity and write its outputs. `corpus`:
    the cell's data when the caller has read it already (else read from opts.data_dir)."""
    lang, gran = normalize_lang(opts.lang), normalize_granularity(opts.granularity)
    space: Space = load_space(opts.space)
    starts = resolve_start_points(opts.start_from)  # bad start points fail before Ray starts
    points = initial_points(space, starts)
    if opts.resume and opts.start_from:  # the searcher's saved state already holds what it started with
        print("--start-from: ignored, the study is resumed", file=sys.stderr)
    study = Study(opts.name or Cell(lang, gran), lang, gran, opts.storage, opts.best_dir)
    _check_outputs(study)
    # read whole before the study claims its folder: bad data leaves no folder behind
    corpus = corpus or Corpus.load(opts.data_dir, lang, gran)
    # every train split a trial can pick, checked (a trial that could never train fails here, not
    # in Ray) and read once: the trials get them with the corpus
    corpus = corpus.with_extra_train_splits(space.extra_train_choices())
    _check_min_freq(space, corpus)
    # one driver per study: a second would mix its trials into this one's folder and files
    with folder_lock(study.results_dir, f"--storage {opts.storage} --name {study.name}"):
        return _run_study(opts, study, space, points, starts, corpus)


def _check_min_freq(space: Space, corpus: Corpus) -> None:
    """The largest min_freq a trial can get leaves words in the vocabulary: said before the study
    starts, not by every trial."""
    highest = max(space.values("min_freq"))
    if highest > 1:  # every training word is seen at least once
        from distner.config import RunConfig
        from distner.data.encoded import check_vocabulary

        try:
            check_vocabulary(corpus, RunConfig.from_flat({**space.base(), "min_freq": highest}))
        except DistnerError as e:
            raise DistnerError(f"{space.source}: key 'min_freq': {e}") from None


def _run_study(
    opts: TuneOptions,
    study: Study,
    space: Space,
    points: list[dict[str, Any]],
    starts: Starts,
    corpus: Corpus,
) -> StudyResult:
    """The driver's spine, one named step a line: claim the study's folder (and check the state
    Ray would read), load the heavy libraries, build the features every trial reads, start Ray,
    fit the trials to the machine, run them, write the study's files."""
    count = _claim_and_check(opts, study, space)  # the study's trials; None: as Ray saved it
    if not opts.address and not _ray_running():  # init_ray will start one here: say it before
        _check_local_machine(opts, space, corpus)
    clock = _PhaseClock()
    from distner.tune.ray_runtime import init_ray  # Ray, Optuna, torch, Lightning load from here

    corpus = replace(corpus, test=[])  # tuning never sees test
    clock.lap("imports")
    if not opts.results_only and _prebuild_features(space, corpus):
        clock.lap("features")
    started_ray = init_ray(opts.address, opts.verbose)
    clock.lap("ray")
    try:
        trials = _trials_for_the_machine(opts, study, space, corpus, clock, local=started_ray)
        tuner = _tuner(opts, study, space, points, trials, count or NUM_SAMPLES)
        if opts.results_only:
            grid = tuner.get_results()
            _sign(opts, study)  # a state read with --trust is this user's from now on
            wall = float("nan")
        else:
            grid, wall = _run_trials(opts, study, tuner, trials, count)
            clock.lap("trials")
        result = _finish(grid, wall, space, opts, study, starts, (trials.gpus, trials.pack))
        return clock.done(result, opts.verbose)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _claim_and_check(opts: TuneOptions, study: Study, space: Space) -> int | None:
    """The study's folder claimed (_claim), before anything heavy loads; on a resume, the state
    Ray would unpickle checked to be this user's (trust.py) and the K it was packed with."""
    restorable = compat.can_restore(study.path, remote=is_remote(opts.storage))
    count = _claim(opts, study, space, restorable)
    if opts.resume or opts.results_only:
        _recorded_pack(opts, study)  # pack.json is data: a wrong --pack is said first
        if not is_remote(opts.storage):  # Ray would unpickle it: only a state we signed
            trust.check_state(Path(study.path), opts.trust)
    return count


def _sign(opts: TuneOptions, study: Study) -> None:
    if not is_remote(opts.storage):
        trust.sign_state(Path(study.path))


def _prebuild_features(space: Space, corpus: Corpus) -> bool:
    """The e5 features of every train split a trial can pick and of dev, built once here so that
    trials only read them. Whether the space uses them."""
    from distner.pretrained.specs import space_specs

    specs = space_specs(space)
    if specs:
        from distner.pretrained.cache import prebuild  # torch: only for a space that uses e5

        prebuild(corpus.feature_splits(space.extra_train_choices(), ("train", "dev")), specs)
    return bool(specs)


@dataclass
class _Trials:
    """How this study's trials run on this machine: the trainable Ray starts, with its resources."""

    trainable: Any
    gpus: float  # a one-process trial's GPU share (0: CPUs)
    pack: int  # trials per packer (1: a Lightning fit per trial process)
    max_concurrent: int | None
    callbacks: list[Any] = field(default_factory=list)


def _trials_for_the_machine(
    opts: TuneOptions, study: Study, space: Space, corpus: Corpus, clock: _PhaseClock, local: bool
) -> _Trials:
    """Trials sized to the cluster as it is: one Lightning fit per trial process, or thin trials
    trained K at a time in one packer per GPU (or per --cpus-per-trial cores). `local`: Ray is
    this command's own (a trial it cannot hold is an error, not a wait for the autoscaler)."""
    from ray import tune

    from distner.tune.ray_runtime import check_storage_for_cluster, gpu_share
    from distner.tune.trial import run_trial

    check_storage_for_cluster(storage_root(opts.storage))
    gpus = gpu_share(opts.gpus_per_trial)
    _check_resources(opts.cpus_per_trial, gpus, local=local)
    on_gpu = gpus > 0  # --gpus-per-trial 0 keeps a study on CPUs, GPUs or not
    if not on_gpu:
        _check_cpu_precision(space)
    threads = max(1, int(opts.cpus_per_trial))
    # one packer per GPU, or per --cpus-per-trial cores: the machine's shape, not the study's size
    n_packers = _gpu_count() if on_gpu else _cpu_packers(opts.cpus_per_trial)
    names = packed.packer_names(study.name, n_packers)
    packers: list[Any] = []

    def card_memory() -> int:
        # the packers measure their own cards: no probe process starts on a GPU before them
        first = opts.pack or PACK_MAX
        packers[:] = packed.start_packers(names, corpus, first, "gpu", opts.cpus_per_trial, threads)
        return packed.gpu_memory(packers)

    # a --pack on a local Ray was checked before Ray started (_check_local_machine); a resumed
    # study's recorded pack was not
    checked = local and opts.pack is not None
    pack = _decide_pack(opts, study, space, corpus, gpus, card_memory, cpu_checked=checked)
    if pack == 1:  # one Lightning fit per trial process
        if packers:  # the card holds one member of this space: no packing
            packed.stop_packers(packers)
        trainable = tune.with_resources(
            tune.with_parameters(
                run_trial,
                corpus=corpus,
                base=space.base(),
                accelerator="gpu" if on_gpu else "cpu",
                threads=threads,
                checkpoint_every=opts.checkpoint_every,
            ),
            {"cpu": opts.cpus_per_trial, "gpu": gpus},
        )
        return _Trials(trainable, gpus, pack, opts.max_concurrent)
    accel = "gpu" if on_gpu else "cpu"
    if packers:  # started to measure their cards: now told the K decided
        packed.set_capacity(packers, pack)
    elif not opts.results_only:  # --results-only trains nothing
        packers = packed.start_packers(names, corpus, pack, accel, opts.cpus_per_trial, threads)
    trainable = tune.with_resources(
        tune.with_parameters(
            packed.run_packed_trial,
            packers=packers,
            base=space.base(),
            checkpoint_every=opts.checkpoint_every,
        ),
        # a thin trial holds no CPU or GPU (its packer holds them), only its process's memory
        {"cpu": 0, "gpu": 0, "memory": packed.THIN_TRIAL_MEMORY},
    )
    clock.lap("packers")
    slots = n_packers * pack
    print(f"distner: {n_packers} packer(s) x {pack} trials at once on {accel.upper()}", file=sys.stderr)
    return _Trials(
        trainable, gpus, pack, min(opts.max_concurrent or slots, slots), [packed.packed_callback(names)]
    )


def _tuner(
    opts: TuneOptions, study: Study, space: Space, points: list[dict[str, Any]], trials: _Trials, total: int
) -> Any:
    """Ray's Tuner: a new study's (Optuna's TPE from the start points, ASHA, the study's storage),
    or the saved one restored (--resume, --results-only)."""
    import optuna
    from ray import tune

    from distner.tune.scheduler import ResumableASHA
    from distner.tune.searcher import PruningAwareOptunaSearch, StudySearch

    param_space = {p.name: _ray_domain(p) for p in space.params}
    if opts.results_only:
        return tune.Tuner.restore(study.path, trainable=trials.trainable, param_space=param_space)
    print(
        f"distner: study {study.name}: {study.path}; watch it with: distner board {study.path}",
        file=sys.stderr,
    )
    if opts.resume:  # Ray's own hint (above, distner's) names its staging folder, not the study
        tuner = tune.Tuner.restore(
            study.path,
            trainable=trials.trainable,
            param_space=param_space,
            resume_unfinished=True,
            resume_errored=True,
        )
        compat.resume_scheduler_as(tuner, ResumableASHA)  # a study started with Ray's own ASHA
        return tuner
    max_t = space.max_epochs()
    searcher = PruningAwareOptunaSearch(
        points_to_evaluate=points,
        sampler=optuna.samplers.TPESampler(seed=opts.seed),
        epochs=int(space.base()["epochs"]),
    )
    tune_config = tune.TuneConfig(
        metric=MONITOR,
        mode="max",
        search_alg=StudySearch(searcher, trials.max_concurrent),
        scheduler=ResumableASHA(
            time_attr="training_iteration",
            max_t=max_t,
            grace_period=min(opts.grace_period, max_t),
            reduction_factor=opts.reduction_factor,
        ),
        num_samples=total,
        max_concurrent_trials=None,  # StudySearch limits them (as Ray's own wrapping would)
        time_budget_s=opts.time_budget,
        reuse_actors=True,
    )
    run_config = tune.RunConfig(
        name=study.name,
        storage_path=storage_root(opts.storage),
        failure_config=tune.FailureConfig(max_failures=opts.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        sync_config=tune.SyncConfig(sync_artifacts=True),
        verbose=opts.verbose,
        callbacks=trials.callbacks,
    )
    return tune.Tuner(
        trials.trainable, param_space=param_space, tune_config=tune_config, run_config=run_config
    )


def _run_trials(
    opts: TuneOptions, study: Study, tuner: Any, trials: _Trials, count: int | None
) -> tuple[Any, float]:
    """Ray runs the trials under distner's stop policy; (their results, wall seconds). A study cut
    short (a stop signal, or fewer trials ended than it has, short of its time budget) raises
    StudyInterrupted once its state is saved and signed, so --resume continues it."""
    from distner.tune.searcher import resumed_as

    total = count or NUM_SAMPLES
    t0 = time.time()
    with (
        # per-epoch checkpoints with num_to_keep=1 make Tune warn about snapshot frequency
        _tune_env("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0"),
        _graceful_stop() as stop,
        _ray_tensorboard_hint(shown=opts.verbose > 1),
        _pending_trials(trials.max_concurrent, _slots(opts.cpus_per_trial, trials.gpus)),
        resumed_as(total, storage_root(opts.storage), study.name),  # what a restored StudySearch needs
    ):
        try:
            grid = tuner.fit()
        finally:  # the state this run left, an interrupted one's too, so that --resume reads it
            _sign(opts, study)
    wall = time.time() - t0
    finished = grid.num_terminated + grid.num_errors
    budget_hit = opts.time_budget is not None and wall >= 0.98 * opts.time_budget
    cut_short = finished < len(grid) or (count is not None and len(grid) < count)
    if stop.received is not None or (not budget_hit and cut_short):
        how = (
            f"stopped by {signal.Signals(stop.received).name}"
            if stop.received is not None
            else f"interrupted with {finished} of {total} trials ended"
        )
        raise StudyInterrupted(f"study {study.name} {how}; run the same command with --resume to continue it")
    return grid, wall


class _PhaseClock:
    """Seconds of the driver's steps, so that a study says where its wall time went (on a GPU
    the fixed costs, Ray's start and the packers', can outweigh short trials)."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(now - self._last, 2)
        self._last = now

    def done(self, result: StudyResult, verbose: int) -> StudyResult:
        self.lap("outputs")
        result.phases = self.phases
        if verbose >= 1:
            steps = ", ".join(f"{k} {v:.1f} s" for k, v in self.phases.items())
            print(f"distner: study {result.name}: {steps}", file=sys.stderr)
        return result


PACK_FILE = "pack.json"  # in the study's results folder: the K it was started with


def _claim(opts: TuneOptions, study: Study, space: Space, restorable: bool) -> int | None:
    """Check the study folder is this study's (its distner.json) before data is read or Ray starts;
    write the manifest of a new one. A resume keeps how the study was started, but may raise its
    trial count. Returns the study's trial count (None: the one Ray saved, for a study an older
    distner started)."""
    folder, path = study.results_dir, study.path
    want = manifest.Manifest("study", study.cell, _made_from(opts, space, opts.num_samples or NUM_SAMPLES))
    have = manifest.read(folder)
    # a folder holding only its manifest (and pack.json) is one whose start failed: not started
    started = restorable or manifest.holds_files(folder, besides=(manifest.NAME, PACK_FILE))
    continuing = opts.resume or opts.results_only
    if have is not None and started:
        if not continuing:
            raise DistnerError(f"{path}: study exists; add --resume to continue it, or --name NEW")
        keep = ("space_sha256",) if opts.results_only else RESUME_KEEPS
        hint = "a resumed study keeps how it was started; start another with --name NEW"
        manifest.check(folder, have, want, keep, hint)
        if not restorable:
            raise DistnerError(
                f"{path}: Ray's state of this study (tuner.pkl) is missing or damaged, so it cannot be "
                "resumed; start another with --name NEW (this folder's files stay as they are)"
            )
        return None if opts.results_only else _resumed_count(folder, have, opts.num_samples)
    elif started:  # files, no manifest
        if not (continuing and restorable):
            raise DistnerError(
                f"{folder}: holds files but no {manifest.NAME}, so it is not a study of this distner; "
                "move it away or use --name NEW"
            )
        recorded = StudyFiles(folder).summary()  # the one (validated) reader of summary.json
        cell = f"{recorded['lang']}-{recorded['granularity']}" if recorded else "?"  # as written
        if recorded and cell != study.cell:
            raise DistnerError(f"{folder}: holds {cell} (its summary.json), not {study.cell}")
        made = {**want.made_from, "num_samples": opts.num_samples, "grows": False}  # Ray's own search
        manifest.adopt(folder, replace(want, made_from=made))
        return None
    elif continuing:
        raise DistnerError(f"{path}: no study to resume (run without --resume to start it)")
    else:
        manifest.write(folder, want)  # first, before anything else lands in the folder
    return want.made_from["num_samples"]


# what a resumed study must have been started with (what Ray's saved tuner keeps regardless);
# num_samples may only grow (_resumed_count)
RESUME_KEEPS = ("space_sha256", "seed", "grace_period", "reduction_factor")


def _resumed_count(folder: Path, have: manifest.Manifest, asked: int | None) -> int | None:
    """A resumed study's trial count: the one it has, or more if --num-samples asks for more (its
    manifest then records the new count). Fewer is refused: its trials exist. None: a study an
    older distner started, which resumes with the count Ray saved."""
    had, grows = have.made_from.get("num_samples"), have.made_from.get("grows", False)
    if had is not None and (not isinstance(had, int) or isinstance(had, bool)):
        raise DistnerError(f"{folder / manifest.NAME}: damaged manifest (num_samples {had!r})")
    if asked is None or asked == had:
        return had if grows else None
    if had is not None and asked < had:
        raise DistnerError(
            f"{folder}: num_samples was {had}, now {asked}; a resumed study may add trials, not drop them"
        )
    if not grows:
        raise DistnerError(
            f"{folder}: num_samples was {had}, now {asked}; this study was started by an older distner, "
            "whose saved search cannot add trials; start another with --name NEW"
        )
    print(f"distner: {folder.name}: {had} -> {asked} trials", file=sys.stderr)
    manifest.write(folder, replace(have, made_from={**have.made_from, "num_samples": asked}))
    return asked


def _made_from(opts: TuneOptions, space: Space, num_samples: int | None) -> dict[str, Any]:
    return {
        "space": opts.space,
        "space_sha256": space.sha256(),
        "seed": opts.seed,
        "num_samples": num_samples,
        "grows": True,  # searcher.StudySearch: a resume may raise num_samples
        "grace_period": opts.grace_period,
        "reduction_factor": opts.reduction_factor,
        "start_from": list(opts.start_from),
    }


def _decide_pack(
    opts: TuneOptions,
    study: Study,
    space: Space,
    corpus: Corpus,
    gpus: float,
    card_memory: Callable[[], int],
    cpu_checked: bool = False,
) -> int:
    """Trials per packer: 1 (a Lightning fit per trial) unless --pack asks for more or, on GPUs,
    as many as the card holds (packed.auto_pack; `card_memory` gives the smallest card's bytes). A
    resumed study keeps how it was started: its checkpoints are of one kind. `cpu_checked`: a CPU
    --pack was already checked against this machine's memory."""
    recorded_file = study.results_dir / PACK_FILE
    if opts.resume or opts.results_only:
        pack = opts.pack or _recorded_pack(opts, study)
    else:
        pack = opts.pack if opts.pack is not None else (0 if gpus > 0 else 1)
    if pack != 1 and not opts.results_only:  # --results-only trains nothing: no card to size
        if gpus > 0:
            need = _member_bytes(space, corpus)
            have = card_memory()
            pack = pack or packed.auto_pack(need, have)
            packed.check_pack(pack, need, have, "each GPU")
        elif not cpu_checked:
            _check_cpu_pack(pack, space, corpus)
    if not (opts.resume or opts.results_only):
        write_json(recorded_file, {"pack": pack})
    return pack


def _recorded_pack(opts: TuneOptions, study: Study) -> int:
    """The K a study was started with (1 for studies from before packing); a --pack that would
    resume it the other way (packed vs not: their checkpoints differ) is refused."""
    recorded_file = study.results_dir / PACK_FILE
    recorded = int(read_json(recorded_file)["pack"]) if recorded_file.is_file() else 1
    if opts.pack is not None and (opts.pack > 1) != (recorded > 1):
        raise DistnerError(
            f"--pack {opts.pack}: study {study.name} was started with --pack {recorded}; "
            f"resume it with --pack {recorded}"
        )
    return recorded


def _member_bytes(space: Space, corpus: Corpus) -> int:
    from distner.data.vocab import Vocab
    from distner.labels import tag_set

    largest = packed.largest_config(space)
    vocab = len(Vocab.build(corpus.train, 1))
    longest = max((len(s) for s in corpus.train), default=1)
    return packed.member_bytes(largest, vocab, len(tag_set(corpus.granularity)), longest)


def _ray_running() -> bool:
    """Whether this process is already connected to a Ray (a caller's own ray.init), without
    importing Ray to find out."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def _check_local_machine(opts: TuneOptions, space: Space, corpus: Corpus) -> None:
    """What `_trials_for_the_machine` checks on the local Ray this command will start (one node:
    this machine, with the CPUs and GPUs `init_ray` gives it), said before Ray starts or any
    feature is built: a trial no node can hold, a precision the CPU cannot train with, and a
    --pack more CPU trials than this machine's memory holds."""
    from distner.tune.ray_runtime import local_resources

    have_cpu, have_gpu = local_resources()
    cpus = opts.cpus_per_trial
    gpus = opts.gpus_per_trial
    if gpus is None:  # gpu_share's default
        gpus = DEFAULT_GPU_SHARE if have_gpu else 0.0
    if have_cpu < cpus or have_gpu < gpus:
        need, have = _asked_and_largest(cpus, gpus, have_cpu, have_gpu)
        raise DistnerError(f"{need}: no trial can start ({have}); ask for less")
    if not gpus:
        _check_cpu_precision(space)
        if opts.pack is not None and opts.pack > 1 and not opts.results_only:
            _check_cpu_pack(opts.pack, space, corpus)


def _check_cpu_pack(pack: int, space: Space, corpus: Corpus) -> None:
    """A --pack of CPU trials this machine's memory cannot hold, by packed.member_bytes."""
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    packed.check_pack(pack, _member_bytes(space, corpus), have, "this machine")


def _asked_and_largest(cpus: float, gpus: float, most_cpu: float, most_gpu: float) -> tuple[str, str]:
    """The words of a trial no node can hold: what it asks for, and what the largest node has."""
    need = f"--cpus-per-trial {cpus:g}" + (f" and --gpus-per-trial {gpus:g}" if gpus else "")
    return need, f"the largest node has {most_cpu:g} CPUs and {most_gpu:g} GPUs"


def _check_cpu_precision(space: Space) -> None:
    """A space whose trials may pick 16-bit AMP cannot run on CPUs: said once, not by every trial."""
    if "16-mixed" in space.values("precision"):
        from distner.train.precision import check_precision

        try:
            check_precision("16-mixed", "cpu")
        except DistnerError as e:
            raise DistnerError(f"{space.source}: key 'precision': {e}") from None


def _check_resources(cpus: float, gpus: float, local: bool) -> None:
    """A trial no node can hold would wait forever: on this machine's own Ray that is an error; on
    a cluster (--address) an autoscaler may still add such a node, so it is said, not refused."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    fits = any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes)
    if fits:
        return
    most_cpu = max((n.get("CPU", 0) for n in nodes), default=0)
    most_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    need, have = _asked_and_largest(cpus, gpus, most_cpu, most_gpu)
    if local:
        raise DistnerError(f"{need}: no trial can start ({have}); ask for less")
    print(
        f"distner: {need}: no node can hold a trial yet ({have}); waiting for the autoscaler", file=sys.stderr
    )


def _slots(cpus_per_trial: float, gpus_per_trial: float) -> int:
    """How many one-process trials fit in the cluster as it is now (a GPU's worth when the trials
    ask for GPUs that no node has yet: the autoscaler adds them)."""
    import ray

    have = ray.cluster_resources()
    slots = int(have.get("CPU", 1) // cpus_per_trial)
    if gpus_per_trial > 0:
        gpu_slots = int(have.get("GPU", 0) // gpus_per_trial) or int(1 // gpus_per_trial)
        slots = min(slots, gpu_slots) if have.get("CPU") else gpu_slots
    return max(1, slots)


@contextmanager
def _pending_trials(limit: int | None, slots: int) -> Iterator[None]:
    """Let Tune hold a trial pending for every free slot. With a searcher and no --max-concurrent
    it keeps only one pending, so slots fill one by one and, with actor reuse, a fast trial's
    process can take every trial while other nodes sit idle. A user's own setting wins."""
    if limit is not None:  # Tune then uses --max-concurrent
        yield
        return
    with _tune_env("TUNE_MAX_PENDING_TRIALS_PG", str(slots)):
        yield


def _gpu_count() -> int:
    """GPUs in the cluster now (at least 1: on a cluster still scaling up, a packer waits for its GPU)."""
    import ray

    return max(1, int(ray.cluster_resources().get("GPU", 0)))


def _cpu_packers(cpus_per_packer: float) -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_packer))


def _check_outputs(study: Study) -> None:
    """Every local place a study writes (the study folder itself, or its results when storage
    is remote; best/), checked before data is read or Ray starts."""
    check_output_dir(study.results_dir, "--storage")
    check_output_file(study.best_path, "--best-dir")


def _finish(
    grid: Any,
    wall: float,
    space: Space,
    opts: TuneOptions,
    study: Study,
    starts: Starts,
    machine: tuple[float, int],
) -> StudyResult:
    """The study's output files (tune/study.py) from its results, with how this study searched
    (`machine`: a one-process trial's GPU share, trials per packer)."""
    gpus, pack = machine
    rows = trial_rows(grid, space)
    search = (
        f"OptunaSearch(TPESampler(seed={opts.seed}))",
        f"ASHAScheduler(max_t={space.max_epochs()}, grace_period={opts.grace_period}, "
        f"reduction_factor={opts.reduction_factor})",
        opts.seed,
        opts.checkpoint_every or "auto",
    )
    # a packed trial holds 1/K of its packer's GPU (and CPUs): what its GPU-hours count
    share = gpus if pack == 1 else (1 / pack if gpus > 0 else 0.0)
    resources = (share, opts.cpus_per_trial / pack, pack)
    if math.isnan(wall):  # --results-only: no run now; keep the wall time the study recorded
        wall = StudyFiles(study.results_dir).recorded_wall()
    summary = summarise(rows, study, space, search, resources, wall, active_seconds(grid))
    summary["start_from"] = start_rows(rows, space, starts)
    result = write_outputs(study, rows, summary, space)
    # every trial ended (none left to resume) and the study is on this machine's disk
    ended = grid.num_terminated + grid.num_errors == len(grid)
    if ended and not opts.keep_checkpoints and not is_remote(opts.storage):
        trials, size = drop_ended_checkpoints(Path(study.path), rows)
        if trials and opts.verbose:
            print(
                f"distner: removed the checkpoints of {trials} ended trial(s), {size / 1e6:,.0f} MB "
                "(--keep-checkpoints keeps them)",
                file=sys.stderr,
            )
    return result
