"""The option dataclasses are the one source of the CLI's defaults."""

from __future__ import annotations

import sys

import pytest

from distner.cli import _retrain_options, _tune_options, build_parser
from distner.options import ReportOptions, RetrainOptions, TuneOptions, default


def test_flags_without_values_give_the_dataclass_defaults():
    p = build_parser()
    assert _tune_options(p.parse_args(["tune", "--lang", "hi"]), "hi", "fine") == TuneOptions(lang="hi")
    assert _retrain_options(p.parse_args(["retrain", "--lang", "hi"]), "hi", "fine") == RetrainOptions(
        lang="hi"
    )
    args = p.parse_args(["report"])
    assert (tuple(args.langs), tuple(args.granularities), args.retrain_dir, args.out) == (
        ReportOptions().langs,
        ReportOptions().granularities,
        ReportOptions().retrain_dir,
        ReportOptions().out,
    )


def test_help_names_the_dataclass_defaults(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["distner"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["retrain", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"(default {default(RetrainOptions, 'baseline')})" in out
    assert f"default {default(RetrainOptions, 'out')}" in out


def test_default_of_a_required_or_unknown_field_is_an_error():
    with pytest.raises(KeyError, match="no default"):
        default(TuneOptions, "lang")
    with pytest.raises(KeyError, match="no field"):
        default(TuneOptions, "nope")
