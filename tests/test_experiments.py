"""Experiment files: what a file says becomes one frozen Experiment, and every mistake is one line
naming the file and key before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from distner.core.errors import DistnerError
from distner.experiments import load_experiment

from .helpers import ROOT, write

pytestmark = pytest.mark.unit

GOOD = """\
cells: [hi-fine, bn-coarse]
tune:
  space: tune_spaces/smoke.yaml
  num_samples: 3
  start_from:
    - {config: start.yaml, set: {hidden_dim: 16}}
variants:
  winner: {}
  linear: {set: {lr_schedule: linear}, cells: [hi-fine]}
seeds: [1, 3]
"""


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # experiment files name paths relative to the project root
    write(tmp_path / "start.yaml", "hidden_dim: 8\n")
    return tmp_path


def test_a_file_reads_into_an_experiment(folder):
    exp = load_experiment(write(folder / "experiments/two.yaml", GOOD))
    assert exp.name == "two" and exp.cells == ("hi-fine", "bn-coarse") and exp.seeds == (1, 3)
    assert exp.tune is not None and exp.tune.num_samples == 3 and exp.tune.grace_period == 1
    assert exp.tune.start_from == ({"config": "start.yaml", "set": {"hidden_dim": 16}},)
    assert [v.name for v in exp.variants_of("hi-fine")] == ["winner", "linear"]
    assert [v.name for v in exp.variants_of("bn-coarse")] == ["winner"]
    assert exp.variants[1].sets() == ["lr_schedule=linear"]
    assert (exp.runs, exp.publish) == ("runs/experiments/two", "results/two")
    assert exp.config_of("hi-fine") == Path("results/two/best/hi-fine.yaml")
    assert exp.baseline


def test_a_time_budget_is_a_duration_and_numbers_are_numbers(folder):
    text = GOOD.replace("  num_samples: 3\n", "  num_samples: 3\n  time_budget: 1h30m\n  cpus_per_trial: 2\n")
    text = text.replace("variants:", "  cells: {bn-coarse: {time_budget: 45}}\nvariants:")
    exp = load_experiment(write(folder / "e.yaml", text))
    hi, bn = exp.tune_of("hi-fine"), exp.tune_of("bn-coarse")
    assert hi is not None and bn is not None
    assert (hi.time_budget, bn.time_budget) == (5400.0, 45.0)
    assert hi.cpus_per_trial == 2.0 and isinstance(hi.cpus_per_trial, float)


def test_a_count_of_seeds_means_one_to_n_and_config_names_each_cells_winner(folder):
    write(folder / "best/hi-fine.yaml", "hidden_dim: 8\n")
    exp = load_experiment(write(folder / "e.yaml", "cells: [hi-fine]\nconfig: best/{cell}.yaml\nseeds: 2\n"))
    assert exp.seeds == (1, 2) and exp.tune is None and exp.config_of("hi-fine") == Path("best/hi-fine.yaml")
    assert [v.name for v in exp.variants] == ["winner"]


@pytest.mark.parametrize(
    "text, says",
    [
        ("cells: [hi-fine]\nconfig: best/{cell}.yaml\nsamples: 3\n", "unknown key 'samples'"),
        ("cells: [hi-fine, hi-fine]\nconfig: best/{cell}.yaml\n", "cell hi-fine is listed twice"),
        ("cells: [hi-fine, hindi-fine]\nconfig: best/{cell}.yaml\n", "cell hi-fine is listed twice"),
        ("cells: [xx-fine]\nconfig: best/{cell}.yaml\n", "xx"),
        ("cells: [bn-fine]\nconfig: best/{cell}.yaml\n", "best/bn-fine.yaml: file not found"),
        ("cells: [hi-fine]\n", "name either tune"),
        ("config: best/{cell}.yaml\n", "no cells"),
        (
            "cells: [hi-fine]\ntune: {space: nowhere.yaml}\n",
            "tune: space: nowhere.yaml: search space file not",
        ),
        (
            "cells: [hi-fine]\ntune: {space: tune_spaces/smoke.yaml, time_budget: soon}\n",
            "time_budget: 'soon': use",
        ),
        (
            "cells: [hi-fine]\ntune: {space: tune_spaces/smoke.yaml, num_samples: lots}\n",
            "tune: num_samples: expected a whole number, got 'lots'",
        ),
        (
            "cells: [hi-fine]\ntune: {space: tune_spaces/smoke.yaml, num_samples: 0}\n",
            "--num-samples: must be",
        ),
        (
            "cells: [hi-fine]\n"
            "tune: {space: tune_spaces/smoke.yaml, cells: {hi-fine: {grace_period: 1.5}}}\n",
            "tune: cells: hi-fine: grace_period: expected a whole number, got '1.5'",
        ),
        (
            "cells: [hi-fine]\ntune: {space: tune_spaces/smoke.yaml, cpus_per_trial: true}\n",
            "cpus_per_trial: expected a number",
        ),
        (
            "cells: [hi-fine]\ntune: {space: tune_spaces/smoke.yaml, samples: 3}\n",
            "tune: unknown key 'samples'",
        ),
        (
            "cells: [hi-fine]\ntune: {space: tune_spaces/smoke.yaml, start_from: [gone.yaml]}\n",
            "start_from[0]: gone.yaml: file not found",
        ),
        (
            "cells: [hi-fine]\ntune: {space: tune_spaces/smoke.yaml, start_from: [{study: gone}]}\n",
            "start_from[0]: study gone: folder not found",
        ),
        ("cells: [hi-fine]\nconfig: best/{cell}.yaml\nvariants: {a: {set: {hiden_dim: 3}}}\n", "hiden_dim"),
        ("cells: [hi-fine]\nconfig: best/{cell}.yaml\nvariants: {a: {set: {hidden_dim: x}}}\n", "hidden_dim"),
        ("cells: [hi-fine]\nconfig: best/{cell}.yaml\nvariants: {a: {cells: [bn-fine]}}\n", "not one of"),
        ("cells: [hi-fine]\nconfig: best/{cell}.yaml\nvariants: {baseline: {}}\n", "'baseline' names"),
        ("cells: [hi-fine]\nconfig: best/{cell}.yaml\nvariants: {}\n", "no variant"),
        ("cells: [hi-fine]\nconfig: best/{cell}.yaml\nseeds: [1, 1]\n", "a seed is listed twice"),
        ("cells: [hi-fine]\nconfig: best/{cell}.yaml\nseeds: 0\n", "expected a count or a list"),
        ("cells: [hi-fine]\nconfig: best/{cell}.yaml\nbaseline: maybe\n", "baseline: expected true"),
    ],
)
def test_each_mistake_is_one_line_naming_the_file(folder, text, says):
    write(folder / "best/hi-fine.yaml", "hidden_dim: 8\n")
    path = write(folder / "bad.yaml", text)
    with pytest.raises(DistnerError) as e:
        load_experiment(path)
    assert says in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith(str(path))


def test_a_missing_experiment_file_is_one_line(folder):
    with pytest.raises(DistnerError, match="nowhere.yaml: file not found"):
        load_experiment(folder / "nowhere.yaml")


def test_every_committed_experiment_loads():
    import os

    files = sorted((ROOT / "experiments").glob("*.yaml"))
    assert files, "experiments/ holds the files behind the published tables"
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for f in files:
            load_experiment(f.relative_to(ROOT))
    finally:
        os.chdir(cwd)


def test_start_points_fill_in_the_cell_and_keep_to_their_cells(folder):
    for cell in ("hi-fine", "bn-coarse"):
        write(folder / f"best/{cell}.yaml", "hidden_dim: 8\n")
    text = """\
cells: [hi-fine, bn-coarse]
tune:
  space: tune_spaces/smoke.yaml
  start_from:
    - best/{cell}.yaml
    - {config: best/hi-fine.yaml, cells: [bn-coarse], set: {embedding_dim: 16}}
"""
    exp = load_experiment(write(folder / "e.yaml", text))
    assert exp.tune is not None
    assert exp.tune.start_points("hi-fine") == ["best/hi-fine.yaml"]
    assert exp.tune.start_points("bn-coarse") == [
        "best/bn-coarse.yaml",
        {"config": "best/hi-fine.yaml", "set": {"embedding_dim": 16}},
    ]
    bad = text.replace("best/{cell}.yaml\n", "gone/{cell}.yaml\n")
    with pytest.raises(DistnerError, match=r"start_from\[0\]: gone/hi-fine.yaml: file not found"):
        load_experiment(write(folder / "bad.yaml", bad))


def test_a_variant_may_have_its_own_seeds(folder):
    write(folder / "best/hi-fine.yaml", "hidden_dim: 8\n")
    text = """\
cells: [hi-fine]
config: best/{cell}.yaml
variants:
  winner: {}
  no-crf: {set: {crf: false}, seeds: [1]}
"""
    exp = load_experiment(write(folder / "e.yaml", text))
    assert [v.flag() for v in exp.variants] == ["winner:", "no-crf@1:crf=False"]
