"""Start points of a study (tune/start.py): a config file or a finished study's rank-N trial, with
keys set over it, in --start-from's string form or an experiment's mapping form. Real files: study
folders written by distner's own writers (trials.csv, summary.json, trial folders' config.yaml) and
the studies committed under results/."""

from __future__ import annotations

import json
import math

import pytest

from distner.config import RunConfig, load_config
from distner.core import manifest
from distner.core.errors import DistnerError
from distner.core.fileio import write_json, write_yaml
from distner.records import TrialRow, start_label, write_trials
from distner.spaces import load_space
from distner.tune.start import StartPoint, parse_start, resolve_start_points, start_rows
from distner.tune.study import Study, StudyFiles, summarise

from ..helpers import ROOT, write

E5 = "encoder_features: e5\nembedding_dim: 384\n"
SPACE = E5 + "hidden_dim: {choice: [16, 520]}\nencoder_layers: {choice: [last4, last8]}\n"
SPACE += "encoder_train_layers: {choice: [0, auto]}\nepochs: 3\n"
# trial id, dev score, state, searched values (hidden_dim, encoder_layers, encoder_train_layers)
TRIALS = [
    ("aaaa0001", 0.50, "completed", (520, "last4", 0)),  # the baseline
    ("aaaa0002", 0.70, "completed", (16, "last8", "auto")),  # best
    ("aaaa0003", math.nan, "failed", (16, "last4", 0)),
    ("aaaa0004", 0.60, "stopped_early", (16, "last4", "auto")),  # second
]


def make_study(tmp_path, with_trial_folders: bool = True):
    """A finished study's folder as distner writes it: trials.csv, summary.json, a manifest and
    (unless copied for publication) each trial's folder with its run's config.yaml."""
    space_file = write(tmp_path / "space.yaml", SPACE)
    space = load_space(space_file)
    folder = tmp_path / "runs" / "hi-fine"
    folder.mkdir(parents=True)
    names = [p.name for p in space.params]
    rows = []
    for i, (trial, f1, state, values) in enumerate(TRIALS, 1):
        params = dict(zip(names, values))
        rows.append(
            TrialRow(i, trial, params, f1, 3, state, 10.0, "node", i == 1, "", f"run_trial_{trial}_{i}_x")
        )
        if with_trial_folders:
            cfg = RunConfig.from_flat({**space.base(), **params})
            write_yaml(folder / rows[-1].trial_dir / "config.yaml", {"config": cfg.to_flat(), "lang": "hi"})
    write_trials(folder / "trials.csv", rows, names)
    study = Study("hi-fine", "hi", "fine", str(tmp_path / "runs"), str(tmp_path / "best"))
    summary = summarise(rows, study, space, ("s", "a", 0, "auto"), (0.0, 1.0, 1), 60.0)
    write_json(folder / "summary.json", summary)
    manifest.write(folder, manifest.Manifest("study", "hi-fine", {"space_sha256": space.sha256()}))
    return folder, space


def test_the_string_form():
    p = parse_start("best/hi-fine.yaml")
    assert p == StartPoint("best/hi-fine.yaml", None, (), "best/hi-fine.yaml")
    p = parse_start("runs/hi-fine,rank=2,encoder_lr=1e-4,extra_train_langs=bn,en,lr_schedule=linear")
    assert (p.path, p.rank) == ("runs/hi-fine", 2)
    assert dict(p.overrides) == {"encoder_lr": 1e-4, "extra_train_langs": "bn,en", "lr_schedule": "linear"}
    assert parse_start("a,b.yaml,epochs=2").path == "a,b.yaml"  # a comma in the path
    assert parse_start(" x.yaml , epochs = 2 ").overrides == (("epochs", 2),)
    assert parse_start("x.yaml,encoder_train_layers=auto").overrides == (("encoder_train_layers", "auto"),)
    assert parse_start("x.yaml", relative_to="experiments").path == "experiments/x.yaml"
    assert parse_start("/abs/x.yaml", relative_to="experiments").path == "/abs/x.yaml"


@pytest.mark.parametrize(
    "spec,message",
    [
        ("", "--start-from : expected PATH[,KEY=VALUE...][,rank=N]"),
        (",epochs=1", "--start-from ,epochs=1: expected PATH"),
        ("x.yaml,epochz=1", "--start-from x.yaml,epochz=1: unknown config key 'epochz'"),
        ("x.yaml,epochs=one", "--start-from x.yaml,epochs=one: key 'epochs' needs a int, got 'one'"),
        ("x.yaml,=3", "--start-from x.yaml,=3: expected KEY=VALUE, got '=3'"),
        ("d,rank=0", "--start-from d,rank=0: rank must be a whole number >= 1, got 0"),
        ("d,rank=two", "--start-from d,rank=two: rank must be a whole number >= 1, got 'two'"),
        ("d,rank=1,rank=2", "--start-from d,rank=1,rank=2: rank is given twice"),
        (
            "x.yaml,encoder_train_layers=most",
            "--start-from x.yaml,encoder_train_layers=most: encoder_train_layers: must be an integer in "
            "0-12 or auto, got 'most'",
        ),
    ],
)
def test_bad_strings_are_one_line_naming_the_spec(spec, message):
    with pytest.raises(DistnerError) as e:
        parse_start(spec)
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)


def test_the_mapping_form(tmp_path):
    folder, _ = make_study(tmp_path)
    p = parse_start({"study": "runs/hi-fine", "rank": 2, "set": {"lr": "3e-3", "crf": True}}, tmp_path)
    assert p == StartPoint(str(folder), 2, (("lr", 3e-3), ("crf", True)))
    assert p.describe() == f"{folder},lr=0.003,crf=True,rank=2"
    assert p.where == f"--start-from {folder},lr=0.003,crf=True,rank=2"
    q = parse_start({"config": "c.yaml", "set": ["epochs=2"]}, source="exp.yaml: start")
    assert (q.path, q.rank, q.overrides, q.where) == (
        "c.yaml",
        None,
        (("epochs", 2),),
        "exp.yaml: start c.yaml,epochs=2",
    )
    assert parse_start({"study": str(folder)}).describe() == f"{folder},rank=1"  # a study's rank is shown


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"config": "c.yaml", "study": "d"}, "give one of config: PATH or study: DIR"),
        ({"set": {"epochs": 1}}, "give one of config: PATH or study: DIR"),
        ({"config": "c.yaml", "ranks": 2}, "unknown key 'ranks' (known: config, study, rank, set)"),
        ({"config": "c.yaml", "rank": 2}, "rank picks a study's trial; give study: DIR"),
        ({"study": "d", "rank": True}, "rank must be a whole number >= 1, got True"),
        ({"config": 3}, "config: expected a path, got 3"),
        ({"config": "c.yaml", "set": "epochs=1"}, "set: expected a mapping of config keys, got 'epochs=1'"),
        ({"config": "c.yaml", "set": {"epochs": "x"}}, "key 'epochs' needs a int, got 'x'"),
        ({"config": "c.yaml", "set": {"nope": 1}}, "unknown config key 'nope'"),
        ({"config": "runs"}, "runs is a folder; a study's trial is study: DIR"),
        ({"study": "space.yaml"}, "space.yaml is a file, not a study folder; give config: PATH"),
        (["c.yaml"], "expected PATH[,KEY=VALUE...][,rank=N] or a mapping"),
    ],
)
def test_bad_mappings_are_one_line(tmp_path, spec, message):
    make_study(tmp_path)
    with pytest.raises(DistnerError) as e:
        parse_start(spec, tmp_path, source="exp.yaml: start")
    assert str(e.value).startswith("exp.yaml: start ") and message in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_a_config_file_with_overrides(tmp_path):
    """A config file's start point is load_config with the overrides as --set: a file's auto is
    resolved with encoder_layers as the overrides leave it."""
    path = write(tmp_path / "c.yaml", E5 + "encoder_layers: last4\nencoder_train_layers: auto\nlr: 0.02\n")
    ((p, cfg),) = resolve_start_points([f"{path},encoder_layers=last8,hidden_dim=64"])
    assert cfg == load_config(path, ["encoder_layers=last8", "hidden_dim=64"])
    assert (cfg.model.encoder_train_layers, cfg.model.hidden_dim, cfg.train.lr) == (8, 64, 0.02)
    assert resolve_start_points([{"config": str(path)}])[0][1] == load_config(path)
    with pytest.raises(DistnerError) as e:
        resolve_start_points([f"{path},encoder_train_layers=2"])
    assert str(e.value).startswith(f"--start-from {path},encoder_train_layers=2: ")
    assert "encoder_layers=last4: with encoder_train_layers=2 it must lie" in str(e.value)


def test_a_studys_rank_n_trial(tmp_path):
    """rank=N: the study's N-th best finished trial by dev (failed ones are not ranked), its full
    config from its trial folder; a searched auto is auto again under overrides."""
    folder, space = make_study(tmp_path)
    best, second = resolve_start_points([str(folder), f"{folder},rank=2"])
    assert best[0].trial().trial == "aaaa0002" and second[0].trial().trial == "aaaa0004"
    assert (best[1].model.hidden_dim, best[1].model.encoder_layers, best[1].model.encoder_train_layers) == (
        16,
        "last8",
        8,
    )
    assert second[1] == RunConfig.from_flat({**space.base(), "hidden_dim": 16, "encoder_train_layers": 4})
    ((_, moved),) = resolve_start_points([f"{folder},rank=2,encoder_layers=last8,lr=0.001"])
    assert (moved.model.encoder_layers, moved.model.encoder_train_layers, moved.train.lr) == (
        "last8",
        8,
        0.001,
    )
    ((_, third),) = resolve_start_points([f"{folder},rank=3,hidden_dim=32"])  # the baseline, a number
    assert (third.model.hidden_dim, third.model.encoder_train_layers) == (32, 0)


def test_a_published_studys_trials_are_rebuilt_from_its_space(tmp_path):
    """A study copied for publication has no trial folders: its trial's config is rebuilt from
    the space its summary.json names and its trials.csv row, the same config as with them."""
    with_folders, _ = make_study(tmp_path / "a")
    copied, _ = make_study(tmp_path / "b", with_trial_folders=False)
    for rank in (1, 2, 3):
        ((_, a),) = resolve_start_points([f"{with_folders},rank={rank}"])
        ((_, b),) = resolve_start_points([f"{copied},rank={rank}"])
        assert a == b
    # the space file is no longer the one the study searched (its manifest says): refused
    write(tmp_path / "b" / "space.yaml", SPACE.replace("[16, 520]", "[8, 16, 520]"))
    with pytest.raises(DistnerError, match=r"rank=2: .* is not the space the study searched"):
        resolve_start_points([f"{copied},rank=2"])


def test_the_committed_studies_give_their_winners_and_runners_up():
    """What the focus round's runner-up start point was, computed by hand before start points could
    name a study's rank: a first-round study's winner is its best/<cell>.yaml, and its runner-up
    (rank=2) has the searched values of the committed start (results/pretrained/focus/starts/)."""
    focus = load_space(ROOT / "tune_spaces" / "pretrained_focus.yaml")
    for cell in ("bn-fine", "hi-fine", "en-fine"):
        study = ROOT / "results" / "pretrained" / "studies" / cell
        (winner, w), (runner_up, r) = resolve_start_points([str(study), {"study": str(study), "rank": 2}])
        assert w == load_config(ROOT / "results" / "pretrained" / "best" / f"{cell}.yaml")
        assert runner_up.trial().trial == StudyFiles(study).ranked()[1].trial
        hand = ROOT / "results" / "pretrained" / "focus" / "starts" / f"{cell}-runner-up.yaml"
        assert focus.start_point(r, runner_up.where) == focus.start_point(hand)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("nope.yaml", "--start-from {tmp}/nope.yaml: {tmp}/nope.yaml: no config file or study folder there"),
        ("space.yaml,rank=2", "--start-from {tmp}/space.yaml,rank=2: rank=2 picks a study's trial; "),
        (
            "runs/hi-fine,rank=4",
            "--start-from {tmp}/runs/hi-fine,rank=4: rank=4, but study {tmp}/runs/hi-fine has 3 "
            "finished trial(s)",
        ),
        ("runs,rank=1", "--start-from {tmp}/runs,rank=1: {tmp}/runs is a folder without trials.csv"),
        (
            "runs/hi-fine,hidden_dim=-3",
            "--start-from {tmp}/runs/hi-fine,hidden_dim=-3: hidden_dim: must be > 0",
        ),
    ],
)
def test_bad_start_points_are_one_line_naming_them(tmp_path, spec, message):
    make_study(tmp_path)
    with pytest.raises(DistnerError) as e:
        resolve_start_points([f"{tmp_path}/{spec}"])
    assert str(e.value).startswith(message.format(tmp=tmp_path)), str(e.value)
    assert "\n" not in str(e.value)


def test_summary_rows_record_what_was_used(tmp_path):
    """summary.json's start_from rows: the path, the rank and source trial of a study's start,
    the overrides; reports spell them as --start-from does."""
    folder, space = make_study(tmp_path)
    plain = write(tmp_path / "c.yaml", E5 + "hidden_dim: 520\n")
    starts = resolve_start_points([str(plain), f"{folder},rank=2,hidden_dim=520"])
    rows = StudyFiles(folder).trials()
    got = start_rows(rows, space, starts)
    assert got[0] == {"config": str(plain), "trial": "aaaa0001", "best_dev_f1": 0.5, "epochs_run": 3}
    assert got[1] == {
        "config": str(folder),
        "rank": 2,
        "source_trial": "aaaa0004",
        "overrides": {"hidden_dim": 520},
        "trial": None,  # this study never ran (520, last4, auto)
        "best_dev_f1": None,
        "epochs_run": None,
    }
    assert json.loads(json.dumps(got)) == got  # what summary.json holds
    assert [start_label(r) for r in got] == [str(plain), f"{folder},hidden_dim=520,rank=2"]
