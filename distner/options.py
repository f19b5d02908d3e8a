"""The options of distner's commands as frozen dataclasses, validated on creation. They are the
one source of every flag: each field is the flag of the same name (core/flags.py builds the parser from
them), with its default, help text and choices; the CLI only picks the dataclass and the function.
Light on purpose (no torch, no Ray): the CLI imports this before anything else.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distner.core.errors import DistnerError, shorten
from distner.core.flags import deprecated, opt
from distner.core.paths import check_path_component
from distner.labels import GRANULARITIES, LANGUAGE_CODES, Cell

# Default places, shared by several steps
STORAGE = "runs"  # studies, under <storage>/<name>
BEST_DIR = "best"  # best/<lang>-<granularity>.yaml, what tune writes and retrain reads
RETRAIN_DIR = "runs/retrain"  # <retrain_dir>/<cell>/..., what retrain writes and report reads
REPORT_DIR = "reports"
SPACE = "tune_spaces/default.yaml"
BASELINE = "tune_spaces/baseline.yaml"  # the reference's config, retrained beside the tuned one
DEFAULT_GPU_SHARE = 0.25  # of a GPU per trial or retraining run when GPUs exist and none is asked:
# four runs of the small tagger share one GPU
PACK_MAX = 8  # packed trials per GPU when --pack is not given (as many as fit, at most this many)

# --smoke: a quick end-to-end check (a data sample, a tiny space, few trials, seeds and epochs)
SMOKE_SPACE = "tune_spaces/smoke.yaml"
SMOKE_SAMPLES = 4
SMOKE_SEEDS = 2
SMOKE_EPOCHS = 2  # of each retraining run in a pipeline --smoke

# help texts of fields that several commands share (same name, same meaning)
LANG_HELP = "en|english, hi|hindi, bn|bengali|bangla"
DATA_HELP = (
    "data root laid out as {lang}/{split}.conll[.gz], or the official release's "
    "EN-English/en_train.conll ... (default: $DISTNER_DATA)"
)
GRAN_HELP = "fine (33 types) or coarse (6 groups)"
SET_HELP = "override one config key (repeatable), e.g. --set epochs=1 --set hidden_dim=64"
MODEL_HELP = "a run folder, or a retrain cell folder (its final model)"
ADDRESS = "auto|HOST:PORT"


def _lang(metavar: str = "LANG") -> Any:
    return opt(help=LANG_HELP, metavar=metavar)


def _data_dir() -> Any:
    return opt(None, DATA_HELP, metavar="DIR")


def _overrides(help: str = SET_HELP) -> Any:
    return opt((), help, flag="--set", metavar="KEY=VALUE", repeat=True)


def default(options: type, name: str) -> Any:
    """The default of field `name` of an options dataclass."""
    for f in dataclasses.fields(options):
        if f.name == name:
            if f.default is dataclasses.MISSING:
                raise KeyError(f"{options.__name__}.{name} has no default")
            return f.default
    raise KeyError(f"{options.__name__} has no field {name!r}")


NUM_SAMPLES = 64  # a new study's trials when --num-samples is not given


def parse_duration(text: str) -> float:
    """'2h', '90m', '1h30m', '45s' or plain seconds -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise DistnerError(f"{shorten(text)}: use e.g. 2h, 90m, 1h30m or 45s")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def parse_checkpoint_every(text: str) -> int:
    """'auto' -> 0, else a whole number >= 1."""
    if text == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DistnerError(f"expected auto or a whole number >= 1, got {shorten(text)}")
    return value


def _one_granularity(text: str) -> str:
    if text == "both":  # the old spelling of a list
        deprecated("--granularity both", "--granularities fine,coarse")
    return text


@dataclass(frozen=True)
class StudiesOptions:
    """What `distner tune` adds to TuneOptions: several studies in one command."""

    granularities: tuple[str, ...] | None = opt(
        None,
        "several studies, one per granularity, comma-separated (e.g. fine,coarse)",
        choices=GRANULARITIES,
    )


@dataclass(frozen=True)
class SmokeOptions:
    """`--smoke` of `distner tune` and `distner pipeline`: presets for a quick end-to-end check."""

    smoke: bool = opt(
        False, f"quick end-to-end check: data sample, tiny space, {SMOKE_SAMPLES} trials x 2 epochs"
    )


@dataclass(frozen=True)
class TrainOptions:
    """`distner train`: one model of one cell (training.train_run)."""

    lang: str = _lang()
    granularity: str = opt("fine", GRAN_HELP, choices=GRANULARITIES)
    config: str | None = opt(None, "flat YAML of config keys, e.g. tune_spaces/baseline.yaml", metavar="FILE")
    overrides: tuple[str, ...] = _overrides()
    data_dir: str | None = _data_dir()
    out: str | None = opt(None, "run folder (default: runs/train/<lang>-<granularity>)", metavar="DIR")
    overwrite: bool = opt(False, "replace an earlier run in --out (only once the new run has finished)")
    accelerator: str = opt("auto", "where to train", choices=("auto", "cpu", "gpu"))
    quiet: bool = opt(False, "no per-epoch progress")

    @property
    def cell(self) -> Cell:
        return Cell(self.lang, self.granularity)


@dataclass(frozen=True)
class TuneOptions:
    """`distner tune`: one study of one language x granularity (tuning.run_study)."""

    lang: str = _lang()
    granularity: str = opt("fine", GRAN_HELP, choices=(*GRANULARITIES, "both"), parse=_one_granularity)
    space: str = opt(SPACE, f"search space (default {SPACE}; {SMOKE_SPACE} with --smoke)", metavar="YAML")
    # trials in all; None: NUM_SAMPLES for a new study, the count it has for a resumed one (a
    # resume may raise it: more trials)
    num_samples: int | None = opt(
        None,
        f"trials in all (default {NUM_SAMPLES}, {SMOKE_SAMPLES} with --smoke; with --resume: the "
        "study's own count, or more to add trials)",
        metavar="N",
    )
    max_concurrent: int | None = opt(
        None, "cap on trials running at once (default: as many as resources allow)", metavar="N"
    )
    cpus_per_trial: float = opt(1.0, "CPUs per trial", metavar="C")
    # None: DEFAULT_GPU_SHARE when the cluster has GPUs, else 0
    gpus_per_trial: float | None = opt(
        None,
        f"fraction of a GPU per trial (default: {DEFAULT_GPU_SHARE} when GPUs exist, else 0)",
        metavar="G",
    )
    time_budget: float | None = opt(
        None,
        "end the study after this long (running trials stop too), e.g. 2h, 90m, 45s",
        metavar="DURATION",
        parse=parse_duration,
    )  # seconds
    address: str | None = opt(
        None, "join a running Ray cluster (default: start a local instance)", metavar=ADDRESS
    )
    storage: str = opt(
        STORAGE,
        f"where studies live (default {STORAGE}/); shared storage on multi-node clusters",
        metavar="DIR|s3://...|gs://...",
    )
    name: str | None = opt(None, "study name (default: <lang>-<granularity>[-smoke])")
    resume: bool = opt(False, "continue an interrupted study of this name")
    seed: int = opt(0, "seed of the Optuna TPE sampler")
    data_dir: str | None = _data_dir()
    best_dir: str = opt(BEST_DIR, f"where <lang>-<gran>.yaml goes (default {BEST_DIR}/)", metavar="DIR")
    grace_period: int = opt(
        1,
        "epochs every trial runs before ASHA may stop it (raise it when slow starters such as CRF "
        "or heavy dropout are in the space)",
        metavar="E",
    )
    reduction_factor: int = opt(3, "ASHA's reduction factor", metavar="R")
    max_failures: int = opt(2, "retries of a trial that failed (a lost node, say)", metavar="N")
    verbose: int = opt(1, "Ray Tune's progress output (2: Ray's own lines too)", choices=(0, 1, 2))
    # start points run right after the baseline (warm start); parsed and resolved by tune/start.py
    start_from: tuple[str, ...] = opt(
        (),
        "a start point whose searched keys run as a trial right after the baseline; repeatable. "
        "PATH: a config (e.g. another cell's best/<cell>.yaml) or a finished study's folder (its "
        "rank-N trial by dev, default 1); KEY=VALUE: keys set over it, as --set",
        metavar="PATH[,KEY=VALUE...][,rank=N]",
        repeat=True,
    )
    # rewrite trials.csv, summary, optuna.db, best/ from a study; no training
    results_only: bool = opt(
        False, "rewrite trials.csv, summary.json, optuna.db and the best config from the study; train nothing"
    )
    # Ray's saved state is pickles: read only when this user's key signed it (tune/trust.py)
    trust: bool = opt(
        False,
        "let Ray read a study's saved state that this user's key did not sign (a pickle runs code): "
        "one you made before distner signed studies, or one from someone you trust",
    )
    checkpoint_every: int = opt(
        0,
        "a trial's resumable checkpoint every K epochs (--resume then repeats at most K-1); "
        "default auto: after a minute of the trial at the earliest, and at most ~5% of its time",
        metavar="K|auto",
        parse=parse_checkpoint_every,
    )  # 0 = auto
    # a checkpoint is only for resuming its trial: once the study's outputs are written, those of
    # trials that ended (not failed: --resume retries those from theirs) are removed
    keep_checkpoints: bool = opt(
        False,
        "keep the resumable checkpoints of trials that ended (default: removed once the study's "
        "outputs are written, as only an unfinished or failed trial resumes from one; local "
        "storage only)",
    )
    # trials trained side by side in one process per GPU (tune/packed.py); None: as many as the GPU
    # holds (at most PACK_MAX) when the cluster has GPUs, else 1 (one Lightning fit a trial)
    pack: int | None = opt(
        None,
        "trials trained side by side in one process per GPU (their kernels overlap; each is still "
        f"its own trial). Default: as many as the GPU holds, at most {PACK_MAX}, when GPUs exist; "
        "else 1 (one process per trial). On a CPU-only machine K > 1 runs K trials per "
        "--cpus-per-trial cores (same results, no faster)",
        metavar="K",
    )

    def __post_init__(self) -> None:
        if self.num_samples is not None and self.num_samples < 1:
            raise DistnerError(f"--num-samples: must be >= 1, got {self.num_samples}")
        if self.cpus_per_trial <= 0:
            raise DistnerError(f"--cpus-per-trial: must be > 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise DistnerError(f"--gpus-per-trial: must be >= 0, got {self.gpus_per_trial}")
        if self.grace_period < 1:
            raise DistnerError(f"--grace-period: must be >= 1, got {self.grace_period}")
        if self.checkpoint_every < 0:
            raise DistnerError(f"--checkpoint-every: must be auto or >= 1, got {self.checkpoint_every}")
        if self.pack is not None and self.pack < 1:
            raise DistnerError(f"--pack: must be >= 1 trials per GPU, got {self.pack}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise DistnerError(f"--max-concurrent: must be >= 1, got {self.max_concurrent}")
        if not 0 <= self.seed < 2**32:  # what Optuna's samplers (numpy) accept
            raise DistnerError(f"--seed: must be 0 .. 2**32-1, got {self.seed}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise DistnerError(
                f"--time-budget: must be > 0 (leave it out for no limit), got {self.time_budget:g}"
            )
        if self.reduction_factor < 2:
            raise DistnerError(f"--reduction-factor: must be >= 2, got {self.reduction_factor}")
        if self.max_failures < 0:
            raise DistnerError(f"--max-failures: must be >= 0, got {self.max_failures}")
        if self.name is not None:  # a folder under --storage: it must not climb out of it
            check_path_component(self.name, "--name")


def parse_seeds(value: int | str | Sequence[int]) -> int | tuple[int, ...]:
    """`3` (seeds 1..3) or `1,2,3` / [1, 2, 3] (those seeds): a count stays a count."""
    if isinstance(value, str):
        items = [x.strip() for x in value.split(",")]
        if not all(x.isdigit() for x in items):
            raise DistnerError(f"--seeds {shorten(value)}: expected a count N or a list such as 1,2,3")
        nums = [int(x) for x in items]
        value = nums[0] if len(nums) == 1 and "," not in value else tuple(nums)
    if isinstance(value, int):
        if value < 1:
            raise DistnerError(f"--seeds: must be >= 1, got {value}")
        return value
    seeds = tuple(value)
    if not seeds or len(set(seeds)) != len(seeds):
        raise DistnerError(f"--seeds {','.join(map(str, seeds))}: give each seed once")
    if any(not 0 <= s <= 2**32 - 1 for s in seeds):
        raise DistnerError(f"--seeds {','.join(map(str, seeds))}: a seed must be in [0, 2**32-1]")
    return seeds


def _seed_items(item: str, seeds: str) -> tuple[int, ...]:
    items = [x.strip() for x in seeds.split(",")]
    if not all(x.isdigit() for x in items):
        raise DistnerError(f"--variant {shorten(item)}: its seeds are a list such as @1,2")
    checked = parse_seeds(tuple(int(x) for x in items))  # each once, each in range
    assert isinstance(checked, tuple)
    return checked


def parse_variants(items: Sequence[str]) -> dict[str, tuple[list[str], tuple[int, ...] | None]]:
    """`["linear:lr_schedule=linear,encoder_lr=1e-4", "no-crf@1:crf=false"]` -> {"linear":
    (["lr_schedule=linear", "encoder_lr=1e-4"], None), "no-crf": (["crf=false"], (1,))}: a variant's
    own seeds (`@1,2`) replace --seeds for it (an ablation on one seed, say)."""
    out: dict[str, tuple[list[str], tuple[int, ...] | None]] = {}
    for item in items:
        head, sep, rest = item.partition(":")
        name, at, seeds = (x.strip() for x in head.partition("@"))
        if not sep or not name or (at and not seeds):
            raise DistnerError(f"--variant {shorten(item)}: expected NAME[@SEEDS]:KEY=VALUE,... (or NAME:)")
        if name == "baseline" or name in out:
            raise DistnerError(f"--variant {shorten(item)}: the name {name!r} is taken")
        check_path_component(name, "--variant")
        # "@5" is seed 5 (a list of one), not a count
        own = _seed_items(item, seeds) if at else None
        out[name] = ([x.strip() for x in rest.split(",") if x.strip()], own)
    return out


@dataclass(frozen=True)
class RetrainOptions:
    """`distner retrain`: the tuned config(s) and the reference baseline of one cell, several
    seeds (retrain.retrain_cell)."""

    lang: str = _lang()
    granularity: str = opt("fine", GRAN_HELP, choices=GRANULARITIES)
    config: str | None = opt(
        None, "config to retrain (default: <best-dir>/<lang>-<gran>.yaml)", metavar="YAML"
    )  # default: <best_dir>/<cell>.yaml
    best_dir: str = opt(
        BEST_DIR, f"where the tuned <lang>-<gran>.yaml is (default {BEST_DIR}/)", metavar="DIR"
    )
    top_k: int = opt(
        1, "retrain the K best trials of the study that wrote the best config (else --storage's)", metavar="K"
    )
    storage: str = opt(STORAGE, f"where the study lives (for --top-k; default {STORAGE}/)", metavar="DIR")
    seeds: int | tuple[int, ...] = opt(
        3,
        f"seeds per config: a count N (seeds 1..N) or a list such as 1,2,3 (pipeline --smoke: {SMOKE_SEEDS})",
        metavar="N|LIST",
        parse=parse_seeds,
    )
    # named sets of overrides applied to the tuned config, each retrained on every seed
    variants: tuple[str, ...] = opt(
        (),
        "a named variant of the tuned config, NAME:KEY=VALUE,... (repeatable; NAME: alone is the tuned "
        "config itself; NAME@1,2:... trains it on those seeds only); with variants, only they and the "
        "baseline are retrained",
        flag="--variant",
        metavar="NAME[@SEEDS]:KEY=V,...",
        repeat=True,
    )
    no_baseline: bool = opt(False, "do not retrain the reference baseline beside the tuned config(s)")
    train_on: str = opt(
        "train",
        "train+dev keeps each run's last epoch (dev is no longer unseen)",
        choices=("train", "train+dev"),
    )
    retrain_dir: str = opt(RETRAIN_DIR, "where each cell's retraining runs go", metavar="DIR")
    data_dir: str | None = _data_dir()
    baseline: str = opt(BASELINE, "reference baseline config retrained beside the tuned one", metavar="YAML")
    overrides: tuple[str, ...] = _overrides(
        "override a config key for tuned and baseline runs alike (repeatable)"
    )
    address: str | None = opt(None, "run the seeds on a Ray cluster", metavar=ADDRESS)
    gpus_per_run: float | None = opt(
        None,
        f"GPU share per retraining run when Ray runs them (default {DEFAULT_GPU_SHARE} with GPUs)",
        metavar="G",
    )
    accelerator: str = opt("auto", cli=False)
    progress: bool = opt(True, cli=False)
    # retrain finished seed runs whose config differs from the one asked for
    overwrite: bool = opt(
        False,
        "retrain finished seed runs made with another config (default: refuse; finished runs with "
        "the same config are always skipped)",
    )

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise DistnerError("--top-k must be >= 1")
        object.__setattr__(self, "seeds", parse_seeds(self.seeds))
        if self.variants and self.top_k > 1:
            raise DistnerError("--variant and --top-k: variants apply to the one tuned config; give one")
        parse_variants(self.variants)
        if self.config is not None and self.top_k > 1:  # --top-k reads the study, never --config
            raise DistnerError(
                f"--config and --top-k {self.top_k}: --config retrains that one file, --top-k the "
                "study's best trials; give one"
            )
        if self.train_on not in ("train", "train+dev"):
            raise DistnerError(f"--train-on {shorten(self.train_on)}: use train or train+dev")

    @property
    def cell(self) -> Cell:
        return Cell(self.lang, self.granularity)

    @property
    def seed_list(self) -> list[int]:
        return list(range(1, self.seeds + 1)) if isinstance(self.seeds, int) else list(self.seeds)


@dataclass(frozen=True)
class ExperimentOptions:
    """`distner pipeline --experiment FILE`: the steps an experiment file describes."""

    experiment: str | None = opt(
        None,
        "run the experiment this file describes (experiments/<name>.yaml: cells, study, variants, "
        "seeds, where outputs go); only --data-dir, --address, --trust, --smoke and --dry-run go with it",
        metavar="YAML",
    )
    dry_run: bool = opt(
        False, "print each step of --experiment as done or todo, with what it reads and writes"
    )


@dataclass(frozen=True)
class ReportOptions:
    """`distner report`: which cells, read from where, written where (report.build_report)."""

    langs: tuple[str, ...] = opt(LANGUAGE_CODES, "languages, comma-separated")
    granularities: tuple[str, ...] = opt(GRANULARITIES, "granularities, comma-separated")
    retrain_dir: str = opt(RETRAIN_DIR, "where the cells' retraining runs are", metavar="DIR")
    report_dir: str = opt(
        REPORT_DIR, "where report.md, report.json and the figures go", metavar="DIR", old=("--out",)
    )
    # leave out cells without retrain results instead of failing
    finished_only: bool = opt(
        False, "leave out cells that have no retrain results yet (default: that is an error)"
    )
    against: str | None = opt(
        None,
        "an earlier report.json (e.g. results/report.json): adds what this report's tuned models "
        "gain over its tuned models, per cell both have",
        metavar="REPORT_JSON",
    )  # an earlier report.json to compare the tuned models with
    # the cells of an earlier report.json in --report-dir whose runs are elsewhere stay in the report
    keep_reported: bool = opt(
        False,
        "cells with no retrain results in --retrain-dir keep their entry and figures from the "
        "report.json already in --report-dir (e.g. a cell retrained on another machine)",
    )

    def __post_init__(self) -> None:
        # an empty list would write an empty report over the last one
        if not self.langs:
            raise DistnerError("--langs: no language given (e.g. --langs en,hi,bn)")
        if not self.granularities:
            raise DistnerError("--granularities: none given (e.g. --granularities fine,coarse)")

    # exactly these cells, in this order (an experiment's), instead of langs x granularities
    only: tuple[str, ...] = opt((), cli=False)

    @property
    def cells(self) -> list[Cell]:
        if self.only:
            return [Cell.parse(c) for c in self.only]
        return [Cell(lang, g) for lang in self.langs for g in self.granularities]


@dataclass(frozen=True)
class EvaluateOptions:
    """`distner evaluate`: score a run's model on a split or a labelled file (evaluation.evaluate_run)."""

    model: str = opt(help=MODEL_HELP, metavar="RUN_DIR")
    split: str | None = opt(
        None, "a split of the data root (default: test)", choices=("train", "dev", "test")
    )
    input: str | None = opt(None, "a labelled MultiCoNER CoNLL file (instead of --split)", metavar="FILE")
    predictions: str | None = opt(
        None, "score this predicted file (from distner predict) instead of running the model", metavar="FILE"
    )
    data_dir: str | None = _data_dir()

    def __post_init__(self) -> None:
        if self.split is not None and self.input is not None:
            raise DistnerError("--split and --input: give one of them, not both")


@dataclass(frozen=True)
class PredictOptions:
    """`distner predict`: tag a CoNLL file (evaluation.predict_file)."""

    model: str = opt(help=MODEL_HELP, metavar="RUN_DIR")
    input: str = opt(help="CoNLL file; its labels, if any, are ignored", metavar="FILE")
    output: str = opt(help="the tagged file to write (- for stdout)", metavar="FILE")


@dataclass(frozen=True)
class BoardOptions:
    """`distner board`: TensorBoard over a study or run folder (monitoring.serve_tensorboard)."""

    logdir: str = opt(
        STORAGE, f"study or run folder, local or s3://, gs:// (default {STORAGE})", positional=True
    )
    port: int = opt(6006, "0 picks a free port")
    host: str = opt("localhost", "interface to bind (default: localhost only)")

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise DistnerError(f"--port: expected 0 .. 65535, got {self.port}")


@dataclass(frozen=True)
class ClusterValidateOptions:
    """`distner cluster validate` (cluster.validate_cluster_files)."""

    files: tuple[str, ...] = opt((), "default: cluster/*.yaml", metavar="FILE", positional=True)


@dataclass(frozen=True)
class TablesOptions:
    """`distner tables`: the result tables of a Markdown file, from experiments' reports."""

    file: str = opt(
        "README.md", "the Markdown file whose distner tables to write", metavar="FILE", positional=True
    )
    check: bool = opt(False, "change nothing; exit 1 when a table differs from its reports")


@dataclass(frozen=True)
class StatsOptions:
    """`distner data stats` (data.corpus_stats)."""

    langs: tuple[str, ...] = opt(LANGUAGE_CODES, "languages, comma-separated", old=("--lang",))
    granularity: str = opt("fine", GRAN_HELP, choices=GRANULARITIES)
    json: bool = opt(False, "print JSON instead of text")
    data_dir: str | None = _data_dir()


@dataclass(frozen=True)
class VectorsOptions:
    """`distner vectors`: pretrained word vectors as a fastText file (pretrained.write_vectors)."""

    lang: str = _lang()
    out: str = opt(help="the .vec file to write", metavar="FILE")
    pool: str = opt("mean", "of a word's pieces", choices=("mean", "first"))
    data_dir: str | None = _data_dir()


@dataclass(frozen=True)
class FeaturesOptions:
    """`distner features`: build the encoder feature caches (cache.prebuild)."""

    lang: str = _lang()
    space: str | None = opt(None, "a search space, e.g. tune_spaces/pretrained.yaml", metavar="FILE")
    config: str | None = opt(None, "flat YAML of config keys (instead of --space)", metavar="FILE")
    overrides: tuple[str, ...] = _overrides(
        "override one config key (repeatable), e.g. --set encoder_layers=last"
    )
    splits: tuple[str, ...] = opt(
        ("train", "dev", "test"),
        "splits, comma-separated (default train,dev,test: tuning reads train and dev, train and "
        "retrain also score test)",
        choices=("train", "dev", "test"),
    )
    data_dir: str | None = _data_dir()

    def __post_init__(self) -> None:
        if self.space and (self.config or self.overrides):
            raise DistnerError("--space: give either a space or --config/--set, not both")
        if not self.splits:
            raise DistnerError("--splits: none given (e.g. --splits train,dev)")
