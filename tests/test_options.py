"""The options dataclasses are the one source of the CLI: every flag is a field of the same name,
with the field's default, help and choices; lists are comma-separated; old spellings still work
for one release with a one-line note."""

from __future__ import annotations

import argparse
import dataclasses
import sys

import pytest

from distner.cli.main import COMMANDS, _retrain_options, _tune_options, build_parser, main
from distner.core.flags import build, flag_name
from distner.options import (
    FeaturesOptions,
    ReportOptions,
    RetrainOptions,
    StatsOptions,
    TrainOptions,
    TuneOptions,
    default,
    parse_variants,
)


def _parser(command: str) -> argparse.ArgumentParser:
    """The subparser of one command ("data stats" included)."""
    p = build_parser()
    for word in command.split():
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[word]
    return p


def _flags(command: str) -> dict[str, argparse.Action]:
    return {s: a for a in _parser(command)._actions for s in a.option_strings} | {
        a.dest: a for a in _parser(command)._actions if not a.option_strings
    }


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_field_is_a_flag_of_the_same_name(name):
    cmd = COMMANDS[name]
    flags, have = _flags(name), set()
    for options in cmd.options:
        for f in dataclasses.fields(options):
            if f.name in cmd.skip or not f.metadata.get("cli", True):
                assert flag_name(f) not in flags or f.name not in cmd.skip, (name, f.name)
                continue
            key = f.name if f.metadata.get("positional") else flag_name(f)
            assert key in flags, (name, f.name)
            assert flags[key].dest == f.name, (name, f.name)
            if f.metadata.get("help") and f.name not in have:  # a shared field: the first one's help
                assert flags[key].help.startswith(f.metadata["help"].replace("%", "%%")[:30]), (name, f.name)
            have.add(f.name)


def test_a_shared_name_is_one_thing():
    """Where one command's options classes share a field (the pipeline: tune, retrain and report),
    it is one flag, so it must have one default and one type in all of them."""
    shared = 0
    for cmd in COMMANDS.values():
        seen: dict[str, tuple[object, object]] = {}
        for options in cmd.options:
            for f in dataclasses.fields(options):
                if f.name in cmd.skip:
                    continue
                shared += f.name in seen
                assert seen.setdefault(f.name, (f.default, f.type)) == (f.default, f.type), f.name
    assert shared >= 5  # storage, best_dir, address, data_dir, retrain_dir, granularities


def test_flags_without_values_give_the_dataclass_defaults():
    p = build_parser()
    assert _tune_options(p.parse_args(["tune", "--lang", "hi"])) == TuneOptions(lang="hi")
    assert _retrain_options(p.parse_args(["retrain", "--lang", "hi"])) == RetrainOptions(lang="hi")
    assert build(ReportOptions, p.parse_args(["report"])) == ReportOptions()
    assert build(TrainOptions, p.parse_args(["train", "--lang", "hi"])) == TrainOptions(lang="hi")
    assert build(StatsOptions, p.parse_args(["data", "stats"])) == StatsOptions()


def test_flags_reach_their_fields_parsed():
    p = build_parser()
    args = ["tune", "--lang", "hi", "--time-budget", "1h30m", "--checkpoint-every", "auto", "--pack", "2",
            "--start-from", "a,b.yaml", "--start-from", "c.yaml", "--verbose", "0"]  # fmt: skip
    opts = _tune_options(p.parse_args(args))
    assert (opts.time_budget, opts.checkpoint_every, opts.pack, opts.verbose) == (5400.0, 0, 2, 0)
    assert opts.start_from == ("a,b.yaml", "c.yaml")  # free text is repeated, never split
    # lists: comma-separated, repeatable, values add up
    report = build(ReportOptions, p.parse_args(["report", "--langs", "en,hi", "--langs", "bn"]))
    assert report.langs == ("en", "hi", "bn")
    assert build(ReportOptions, p.parse_args(["report", "--langs", " en,,hi, "])).langs == ("en", "hi")
    feats = build(FeaturesOptions, p.parse_args(["features", "--lang", "hi", "--splits", "train , dev"]))
    assert feats.splits == ("train", "dev")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["features", "--lang", "hi", "--splits", "train,tset"], "invalid choice 'tset'"),
        (["tune", "--lang", "hi", "--time-budget", "soon"], "argument --time-budget: 'soon': use e.g. 2h"),
        (["tune", "--lang", "hi", "--checkpoint-every", "0"], "expected auto or a whole number"),
        (
            ["tune", "--lang", "hi", "--cpus-per-trial", "x"],
            "argument --cpus-per-trial: expected a number, got 'x'",
        ),
    ],
)
def test_a_bad_value_names_its_flag(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2
    assert needle in capsys.readouterr().err


def test_old_spellings_work_with_a_note(capsys, tmp_path):
    p = build_parser()
    report = build(ReportOptions, p.parse_args(["report", "--out", str(tmp_path)]))
    assert report.report_dir == str(tmp_path)
    stats = build(StatsOptions, p.parse_args(["data", "stats", "--lang", "hi", "--lang", "en"]))
    assert stats.langs == ("hi", "en")
    assert (
        _tune_options(p.parse_args(["tune", "--lang", "hi", "--granularity", "both"])).granularity == "both"
    )
    notes = capsys.readouterr().err.splitlines()
    assert notes == [
        "distner: note: --out is deprecated (still accepted in distner 0.2); use --report-dir",
        "distner: note: --lang is deprecated (still accepted in distner 0.2); use --langs",
        "distner: note: --lang is deprecated (still accepted in distner 0.2); use --langs",
        "distner: note: --granularity both is deprecated (still accepted in distner 0.2); "
        "use --granularities fine,coarse",
    ]
    # the pipeline never had --out: no alias there
    with pytest.raises(SystemExit):
        p.parse_args(["pipeline", "--out", str(tmp_path)])


def test_one_line_for_options_that_contradict(capsys, tmp_path):
    code = main(["evaluate", "--model", str(tmp_path), "--split", "dev", "--input", "x.conll"])
    err = capsys.readouterr().err
    assert code == 2 and err == "distner: error: --split and --input: give one of them, not both\n"
    code = main(["tune", "--lang", "hi", "--granularity", "fine", "--granularities", "fine,coarse"])
    assert code == 2 and "--granularity and --granularities" in capsys.readouterr().err


def test_help_names_the_dataclass_defaults(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["distner"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["retrain", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"(default {default(RetrainOptions, 'baseline')})" in out
    assert f"(default {default(RetrainOptions, 'retrain_dir')})" in out
    assert "--out" not in out  # old spellings are accepted, not advertised


def test_default_of_a_required_or_unknown_field_is_an_error():
    with pytest.raises(KeyError, match="no default"):
        default(TuneOptions, "lang")
    with pytest.raises(KeyError, match="no field"):
        default(TuneOptions, "nope")


def test_seeds_are_a_count_or_a_list():
    p = build_parser()
    assert _retrain_options(p.parse_args(["retrain", "--lang", "hi", "--seeds", "2"])).seed_list == [1, 2]
    got = _retrain_options(p.parse_args(["retrain", "--lang", "hi", "--seeds", "5,2,9"]))
    assert got.seeds == (5, 2, 9) and got.seed_list == [5, 2, 9]


@pytest.mark.parametrize(
    "seeds, says", [("0", "must be >= 1"), ("1,1", "give each seed once"), ("1,x", "expected a count N")]
)
def test_bad_seeds_are_one_line(seeds, says, capsys):
    with pytest.raises(SystemExit) as e:
        main(["retrain", "--lang", "hi", "--seeds", seeds])
    err = capsys.readouterr().err.splitlines()[-1] + "\n"  # after argparse's usage line
    assert e.value.code == 2
    assert says in err and err.count("\n") == 1


def test_variants_name_their_overrides_and_own_seeds():
    assert parse_variants(["winner:", "linear:lr_schedule=linear,encoder_lr=1e-4", "no-crf@1:crf=false"]) == {
        "winner": ([], None),
        "linear": (["lr_schedule=linear", "encoder_lr=1e-4"], None),
        "no-crf": (["crf=false"], (1,)),
    }


@pytest.mark.parametrize(
    "variants, says",
    [
        (["linear"], "expected NAME[@SEEDS]:KEY=VALUE"),
        (["baseline:"], "the name 'baseline' is taken"),
        (["a:", "a:crf=true"], "the name 'a' is taken"),
        (["a@:crf=true"], "expected NAME[@SEEDS]"),
        (["../x:crf=true"], "--variant"),
    ],
)
def test_bad_variants_are_one_line(variants, says, capsys):
    argv = ["retrain", "--lang", "hi"] + [x for v in variants for x in ("--variant", v)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err


def test_an_experiment_takes_no_flag_its_file_says(capsys, tmp_path):
    code = main(["pipeline", "--experiment", "experiments/six-cells.yaml", "--num-samples", "3"])
    err = capsys.readouterr().err
    assert (
        code == 2
        and err.startswith("distner: error: --num-samples: the experiment file")
        and err.count("\n") == 1
    )
    assert main(["pipeline", "--dry-run"]) == 2
    assert "--dry-run: goes with --experiment FILE" in capsys.readouterr().err
    assert main(["pipeline", "--experiment", str(tmp_path / "none.yaml"), "--dry-run"]) == 2
    assert "none.yaml: file not found" in capsys.readouterr().err
