"""The options of distner's steps as frozen dataclasses, validated on creation: tune, retrain and
report (the pipeline combines the three). They are the one source of every default: the CLI reads
them to build its flags and help texts. Light on purpose (no torch, no Ray): the CLI imports this
before anything else.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from .errors import DistnerError, shorten
from .labels import Cell
from .paths import check_path_component

# Default places, shared by several steps
STORAGE = "runs"  # studies, under <storage>/<name>
BEST_DIR = "best"  # best/<lang>-<granularity>.yaml, what tune writes and retrain reads
RETRAIN_DIR = "runs/retrain"  # <retrain_dir>/<cell>/..., what retrain writes and report reads
REPORT_DIR = "reports"
SPACE = "tune_spaces/default.yaml"
BASELINE = "tune_spaces/baseline.yaml"  # the seed's config, retrained beside the tuned one
DEFAULT_GPU_SHARE = 0.25  # of a GPU per trial or retraining run when GPUs exist and none is asked:
# four runs of the small tagger share one GPU
PACK_MAX = 8  # packed trials per GPU when --pack is not given (as many as fit, at most this many)

# --smoke: a quick end-to-end check (a data sample, a tiny space, few trials, seeds and epochs)
SMOKE_SPACE = "tune_spaces/smoke.yaml"
SMOKE_SAMPLES = 4
SMOKE_SEEDS = 2
SMOKE_EPOCHS = 2  # of each retraining run in a pipeline --smoke


def default(options: type, name: str) -> Any:
    """The default of field `name` of an options dataclass."""
    for f in dataclasses.fields(options):
        if f.name == name:
            if f.default is dataclasses.MISSING:
                raise KeyError(f"{options.__name__}.{name} has no default")
            return f.default
    raise KeyError(f"{options.__name__} has no field {name!r}")


NUM_SAMPLES = 64  # a new study's trials when --num-samples is not given


@dataclass(frozen=True)
class TuneOptions:
    """`distner tune`: one study of one language x granularity (tuning.run_study)."""

    lang: str
    granularity: str = "fine"
    space: str = SPACE
    # trials in all; None: NUM_SAMPLES for a new study, the count it has for a resumed one (a
    # resume may raise it: more trials)
    num_samples: int | None = None
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: DEFAULT_GPU_SHARE when the cluster has GPUs, else 0
    time_budget_s: float | None = None
    address: str | None = None
    storage: str = STORAGE
    name: str | None = None
    resume: bool = False
    seed: int = 0
    data_dir: str | None = None
    best_dir: str = BEST_DIR
    grace_period: int = 1
    reduction_factor: int = 3
    max_failures: int = 2
    verbose: int = 1
    start_from: tuple[str, ...] = ()  # config YAMLs run right after the baseline (warm start)
    results_only: bool = False  # rewrite trials.csv, summary, optuna.db, best/ from a study; no training
    checkpoint_every: int = 0  # a trial's resumable checkpoint every K epochs; 0 = auto (see above)
    # trials trained side by side in one process per GPU (packed.py); None: as many as the GPU
    # holds (at most packed.PACK_MAX) when the cluster has GPUs, else 1 (one Lightning fit a trial)
    pack: int | None = None

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
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise DistnerError(
                f"--time-budget: must be > 0 (leave it out for no limit), got {self.time_budget_s:g}"
            )
        if self.reduction_factor < 2:
            raise DistnerError(f"--reduction-factor: must be >= 2, got {self.reduction_factor}")
        if self.max_failures < 0:
            raise DistnerError(f"--max-failures: must be >= 0, got {self.max_failures}")
        if self.name is not None:  # a folder under --storage: it must not climb out of it
            check_path_component(self.name, "--name")


def parse_duration(text: str) -> float:
    """'2h', '90m', '1h30m', '45s' or plain seconds -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise DistnerError(f"--time-budget {shorten(text)}: use e.g. 2h, 90m, 1h30m or 45s")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


@dataclass(frozen=True)
class RetrainOptions:
    """`distner retrain`: the tuned config(s) and the seed baseline of one cell, several seeds
    (retrain.retrain_cell)."""

    lang: str
    granularity: str = "fine"
    config: str | None = None  # default: <best_dir>/<cell>.yaml
    best_dir: str = BEST_DIR
    top_k: int = 1
    studies: str = STORAGE  # where the study <cell> lives (for --top-k > 1)
    seeds: int = 3
    train_on: str = "train"
    out: str = RETRAIN_DIR
    data_dir: str | None = None
    baseline: str = BASELINE
    overrides: tuple[str, ...] = ()
    address: str | None = None
    gpus_per_run: float | None = None
    accelerator: str = "auto"
    progress: bool = True
    overwrite: bool = False  # retrain finished seed runs whose config differs from the one asked for

    def __post_init__(self) -> None:
        if self.seeds < 1 or self.top_k < 1:
            raise DistnerError("--seeds and --top-k must be >= 1")
        if self.train_on not in ("train", "train+dev"):
            raise DistnerError(f"--train-on {shorten(self.train_on)}: use train or train+dev")

    @property
    def cell(self) -> Cell:
        return Cell(self.lang, self.granularity)


@dataclass(frozen=True)
class ReportOptions:
    """`distner report`: which cells, read from where, written where (report.build_report)."""

    langs: tuple[str, ...] = ("en", "hi", "bn")
    granularities: tuple[str, ...] = ("fine", "coarse")
    retrain_dir: str = RETRAIN_DIR
    out: str = REPORT_DIR
    finished_only: bool = False  # leave out cells without retrain results instead of failing
    against: str | None = None  # an earlier report.json to compare the tuned models with

    def __post_init__(self) -> None:
        # an empty list would write an empty report over the last one
        if not self.langs:
            raise DistnerError("--langs: no language given (e.g. --langs en,hi,bn)")
        if not self.granularities:
            raise DistnerError("--granularities: none given (e.g. --granularities fine,coarse)")

    @property
    def cells(self) -> list[Cell]:
        return [Cell(lang, g) for lang in self.langs for g in self.granularities]
