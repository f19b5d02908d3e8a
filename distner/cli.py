"""Command line: parse arguments, call plain functions, print. No logic of its own."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from . import __version__
from .errors import DistnerError, StudyInterrupted

DATA_HELP = "data root laid out as {lang}/{split}.conll[.gz] (default: $DISTNER_DATA)"


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR", help=DATA_HELP)


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
    p.add_argument("--lang", required=True, help="en|english, hi|hindi, bn|bengali|bangla")
    p.add_argument("--granularity", default="fine", help="fine (33 types) or coarse (6 groups)")
    p.add_argument(
        "--config", metavar="FILE", help="flat YAML of config keys, e.g. tune_spaces/baseline.yaml"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override one config key (repeatable), e.g. --set epochs=1 --set hidden_dim=64",
    )
    _add_data_dir(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/train/<lang>-<granularity>)")
    p.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "evaluate",
        help="score a trained model on a split or a labelled file",
        description="Score a run's model. Prints the table and writes RUN_DIR/eval-<name>.json.",
    )
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="folder written by distner train")
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
    p.add_argument("--model", required=True, metavar="RUN_DIR")
    p.add_argument(
        "--input", required=True, metavar="FILE", help="CoNLL file; its labels, if any, are ignored"
    )
    p.add_argument("--output", required=True, metavar="FILE")

    p = sub.add_parser(
        "tune",
        help="run a Ray Tune + Optuna + ASHA study",
        description=(
            "Search hyperparameters for one language (and one or both granularities) on dev. Starts a local "
            "Ray instance sized to this machine, or joins a cluster with --address. Writes the study under "
            "STORAGE/NAME (trials.csv, summary.json, optuna.db, per-trial runs) and best/<lang>-<gran>.yaml."
        ),
    )
    p.add_argument("--lang", required=True, help="en|english, hi|hindi, bn|bengali|bangla")
    p.add_argument("--granularity", default="fine", choices=["fine", "coarse", "both"])
    p.add_argument(
        "--space",
        default=None,
        metavar="YAML",
        help="search space (default: tune_spaces/default.yaml; smoke.yaml with --smoke)",
    )
    p.add_argument(
        "--num-samples", type=int, default=None, metavar="N", help="trials (default 64; 4 with --smoke)"
    )
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        metavar="N",
        help="cap on trials running at once (default: as many as resources allow)",
    )
    p.add_argument("--cpus-per-trial", type=float, default=1.0, metavar="C")
    p.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        metavar="G",
        help="fraction of a GPU per trial (default: 0.25 when GPUs exist, else 0)",
    )
    p.add_argument(
        "--time-budget",
        default=None,
        metavar="DURATION",
        help="stop starting trials after this long, e.g. 2h, 90m, 1h30m",
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="auto|HOST:PORT",
        help="join a running Ray cluster (default: start a local instance)",
    )
    p.add_argument(
        "--storage",
        default="runs",
        metavar="DIR|s3://...|gs://...",
        help="where studies live (default: runs/); shared storage on multi-node clusters",
    )
    p.add_argument("--name", default=None, help="study name (default: <lang>-<granularity>[-smoke])")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study of this name")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="quick end-to-end check: data sample, tiny space, 4 trials x 2 epochs",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the Optuna TPE sampler")
    p.add_argument("--best-dir", default="best", metavar="DIR", help="where best/<lang>-<gran>.yaml goes")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Ray Tune's progress output")
    _add_data_dir(p)

    p = sub.add_parser(
        "board",
        help="start TensorBoard on a study or run folder",
        description="Start TensorBoard over every trial of a study (or a folder of runs); prints its URL.",
    )
    p.add_argument(
        "logdir", nargs="?", default="runs", help="study or run folder, local or s3:///gs:// (default: runs)"
    )
    p.add_argument("--port", type=int, default=6006, help="0 picks a free port")
    p.add_argument("--host", default="localhost", help="interface to bind (default: localhost only)")

    p = sub.add_parser("data", help="inspect the data")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    s = dsub.add_parser("stats", help="sentences, tokens, entities per type, length percentiles")
    s.add_argument("--lang", action="append", help="language (repeatable; default: all three)")
    s.add_argument("--granularity", default="fine")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_data_dir(s)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .labels import normalize_granularity, normalize_lang
    from .reporting import metrics_table
    from .training import Corpus, fit

    lang, gran = normalize_lang(args.lang), normalize_granularity(args.granularity)
    cfg = load_config(args.config, args.overrides)
    corpus = Corpus.load(args.data_dir, lang, gran)
    out = Path(args.out or f"runs/train/{lang}-{gran}")
    print(f"distner train: {lang}-{gran}, {len(corpus.train)} train sentences -> {out}", file=sys.stderr)
    result = fit(cfg, corpus, out, accelerator=args.accelerator, progress=not args.quiet)
    print(metrics_table(result.metrics))
    print(f"best epoch {result.best_epoch}/{result.epochs_run}; run folder: {result.out_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_run
    from .reporting import metrics_table

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
    from .evaluation import predict_file

    n = predict_file(args.model, args.input, args.output)
    print(f"tagged {n} sentences -> {args.output}", file=sys.stderr)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .tuning import TuneOptions, parse_duration, run_study, summary_table

    grans = ["fine", "coarse"] if args.granularity == "both" else [args.granularity]
    space = args.space or ("tune_spaces/smoke.yaml" if args.smoke else "tune_spaces/default.yaml")
    samples = args.num_samples or (4 if args.smoke else 64)
    budget = parse_duration(args.time_budget) if args.time_budget else None
    for gran in grans:
        name = args.name and (args.name if len(grans) == 1 else f"{args.name}-{gran}")
        opts = TuneOptions(
            lang=args.lang,
            granularity=gran,
            space=space,
            num_samples=samples,
            max_concurrent=args.max_concurrent,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            time_budget_s=budget,
            address=args.address,
            storage=args.storage,
            name=name,
            resume=args.resume,
            seed=args.seed,
            data_dir=args.data_dir,
            best_dir=args.best_dir,
            verbose=args.verbose,
        )
        if args.smoke and not args.name:
            from .labels import normalize_lang

            opts = replace(opts, name=f"{normalize_lang(args.lang)}-{gran}-smoke")
        result = run_study(opts)
        print(summary_table(result))
        print(
            f"study: {result.study_path}\ntrials: {result.results_dir / 'trials.csv'}\n"
            f"best config: {result.best_config_path}"
        )
    return 0


def cmd_board(args: argparse.Namespace) -> int:
    from .monitoring import serve_tensorboard

    serve_tensorboard(args.logdir, port=args.port, host=args.host)
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from .data import SPLITS, corpus_stats, load_split
    from .labels import LANGUAGE_CODES, normalize_lang

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
    from .reporting import table

    for lang, per_split in stats.items():
        rows = [["split", "sentences", "tokens", "entities", "len p50", "p95", "max", ">25 tokens"]]
        for split, s in per_split.items():
            ln = s["length"]
            rows.append(
                [
                    split,
                    str(s["sentences"]),
                    str(s["tokens"]),
                    str(s["entities"]),
                    str(ln["p50"]),
                    str(ln["p95"]),
                    str(ln["max"]),
                    f"{100 * s['truncated_at_25']:.1f}%",
                ]
            )
        print(f"== {lang} ==\n{table(rows)}")
        types = per_split["train"]["entities_per_type"]
        print("train entities per type: " + ", ".join(f"{t} {n}" for t, n in types.items()) + "\n")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "tune": cmd_tune,
    "board": cmd_board,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = cmd_data_stats if args.command == "data" else COMMANDS[args.command]
    try:
        return handler(args)
    except StudyInterrupted as e:
        print(f"distner: {e}", file=sys.stderr)
        return 130
    except DistnerError as e:
        print(f"distner: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("distner: interrupted", file=sys.stderr)
        return 130
