"""The e5 features' disk cache: written whole, reused, rebuilt when damaged, built once per split
for every spec, one builder at a time; `distner features`, prepare, packed members and a study's
driver reading or building it ahead."""

from __future__ import annotations

import csv
import os
import threading

import pytest
import torch

from distner.cli.main import main
from distner.data.conll import Corpus, read_conll
from distner.data.encoded import prepare
from distner.pretrained import cache, features
from distner.pretrained import e5 as pretrained
from distner.train.engine import SharedData

from ..helpers import SPACE, TINY, one_line_error, run_cli, study_options, tiny_config, write
from .conftest import TRAINED, cache_files, model_cfg

pytestmark = pytest.mark.usefixtures("cache_in_tmp")


def test_cache_is_written_whole_reused_and_rebuilt(capsys):
    cfg = model_cfg()
    sentences = [("the", "river"), ("Mumbai",)]
    first = cache.cached_features(sentences, cfg)
    (path,) = cache_files()
    # a file a killed build left behind (its temp name) is never read
    assert not list(cache.cache_dir().glob(".*.tmp"))
    (cache.cache_dir() / f".{path.name}.abc.tmp").write_bytes(b"half a file")
    st = path.stat()
    again = cache.cached_features(sentences, cfg)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)  # read, not rebuilt
    # another corpus, or other layers: another key, a new file
    cache.cached_features([("the", "rivers"), ("Mumbai",)], cfg)
    cache.cached_features(sentences, model_cfg("encoder_mix=scalar"))
    assert len(cache_files()) == 3
    # only a temp file (a build killed before its rename): never read, the features are rebuilt
    os.replace(path, cache.cache_dir() / f".{path.name}.killed.tmp")
    assert all(torch.equal(a, b) for a, b in zip(first, cache.cached_features(sentences, cfg)))
    assert path.is_file() and path.stat().st_ino != st.st_ino and not problems(capsys)
    # a damaged file: one line naming it, then rebuilt in place
    path.write_bytes(path.read_bytes()[:100])
    rebuilt = cache.cached_features(sentences, cfg)
    assert all(torch.equal(a, b) for a, b in zip(first, rebuilt))
    err = problems(capsys)
    assert err == [f"distner: {path}: damaged cache file, rebuilding it (RuntimeError)"] or (
        len(err) == 1 and str(path) in err[0]
    )
    assert cache.cached_features(sentences, cfg)[0].shape == (2, 1, 384)


def _rewrite_features(path, change) -> None:
    """The cache file with its `features` changed by `change` and its offsets left intact."""
    record = torch.load(path, weights_only=True)
    record["features"] = change(record["features"])
    torch.save(record, path)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (
            lambda f: f[..., :-1].contiguous(),
            "rows of shape (1, 383), not (1, 384)",
        ),  # the LSTM's traceback before
        (lambda f: f.index_fill(0, torch.tensor([2]), float("nan")), "values that are not finite"),
        (lambda f: f.index_fill(0, torch.tensor([0]), float("inf")), "values that are not finite"),
    ],
    ids=["width", "nan", "inf"],
)
def test_a_cache_of_the_wrong_width_or_not_finite_is_rebuilt(capsys, damage, why):
    cfg = model_cfg()
    sentences = [("the", "river"), ("Mumbai",)]
    first = cache.cached_features(sentences, cfg)
    (path,) = cache_files()
    _rewrite_features(path, damage)
    rebuilt = cache.cached_features(sentences, cfg)
    assert all(torch.equal(a, b) for a, b in zip(first, rebuilt))  # the encoder's own, again
    assert problems(capsys) == [f"distner: {path}: damaged cache file, rebuilding it ({why})"]
    again = cache.cached_features(sentences, cfg)  # the rebuilt file is read as it is
    assert all(torch.equal(a, b) for a, b in zip(first, again)) and not problems(capsys)


def problems(capsys) -> list[str]:
    """stderr's lines but the progress of a build ("encoding ...", "encoded in ...")."""
    lines = capsys.readouterr().err.strip().splitlines()
    return [x for x in lines if not x.startswith(("distner: encoding ", "distner: encoded in "))]


def test_several_specs_come_from_one_pass_and_match_one_at_a_time(capsys):
    sentences = [("the", "river", "Ganges"), ("अरस्तु", "एक")]
    cfgs = [model_cfg(), model_cfg("encoder_mix=scalar"), model_cfg("encoder_layers=last")]
    specs = [features.spec(c) for c in cfgs]
    built = cache.build_caches(sentences, specs)
    assert len(cache_files()) == 3
    err = capsys.readouterr().err
    assert err.count("distner: encoding 2 sentences") == 1 and "for 3 cache file(s)" in err
    for cfg, feats in zip(cfgs, built):
        alone = features.word_features(sentences, cfg)
        assert all(torch.equal(a, b) for a, b in zip(feats, alone))
        assert all(torch.equal(a, b) for a, b in zip(feats, cache.cached_features(sentences, cfg)))
    # one layer is stored alike for both mixes: one file
    assert features.spec(model_cfg("encoder_layers=last", "encoder_mix=scalar")) == specs[2]
    assert "encoding" not in capsys.readouterr().err  # every file was read


def test_a_second_builder_waits_and_reads_what_the_first_wrote(capsys):
    sentences = [("the", "river")]
    sp = features.spec(model_cfg())
    path = cache.cache_path(sentences, sp)
    theirs = [torch.full((2, 1, 384), 7.0, dtype=torch.float16)]  # not what the encoder computes
    got: list = []
    with cache._build_lock(path):  # the first builder, here
        waiter = threading.Thread(target=lambda: got.append(cache.build_caches(sentences, [sp])))
        waiter.start()
        waiter.join(timeout=3)
        assert waiter.is_alive() and not path.exists()  # it waits; it does not build beside us
        cache._write_cache(path, theirs, [2], pretrained.model_info()["sha256"], sp)
    waiter.join(timeout=60)
    assert not waiter.is_alive() and torch.equal(got[0][0][0], theirs[0])  # read, not rebuilt
    assert "another process is building it; waiting" in capsys.readouterr().err


@pytest.mark.integration  # distner in a subprocess
def test_features_command_builds_then_reads(tmp_path, capsys):
    argv = ["features", "--lang", "en", "--data-dir", str(TINY), "--set", "encoder_layers=last"]
    assert main(argv) == 0
    out = capsys.readouterr()
    files = cache_files()
    assert "distner: encoding" in out.err and len(files) == 3  # train, dev, test
    assert [line.split(":")[0] for line in out.out.splitlines()] == ["en train", "en dev", "en test"]
    assert main(argv) == 0 and "encoding" not in capsys.readouterr().err and cache_files() == files
    for bad, line in (
        (
            ["--splits", "train,exam"],
            "distner: error: argument --splits: invalid choice 'exam' (choose from train, dev, test) "
            "(see distner features --help)",
        ),
        (
            ["--space", "tune_spaces/extended.yaml"],
            "distner: error: --space: give either a space or --config/--set, not both",
        ),
    ):
        assert one_line_error(run_cli(*argv, *bad)) == line


def test_prepare_reads_the_cache_and_packed_members_share_it_only_with_the_same_keys():
    corpus = Corpus.load(TINY, "en", "fine")
    cfg = tiny_config("encoder_features=e5")
    data = prepare(corpus, cfg)
    assert data.train.features is not None and data.train.feature_index is not None
    assert data.train.features.shape == (data.train.num_tokens + 1, 1, 384)
    assert data.dev.features is not None and len(cache_files()) == 2  # train and dev
    sampled = prepare(corpus, cfg.replace(max_train_sentences=3))  # a sample reads the same file
    assert sampled.train.features is not None and len(cache_files()) == 2
    shared = SharedData(corpus, torch.device("cpu"))
    plain = cfg.replace(encoder_features="")
    got = [shared.get(c)[0] for c in (plain, cfg, cfg.replace(encoder_mix="scalar"))]
    assert got[0].train.features is None
    assert got[1].train.features is not None and got[2].train.features is not None
    assert got[1].train.features.shape[1] == 1 and got[2].train.features.shape[1] == 4


@pytest.mark.integration  # distner in a subprocess
def test_extra_train_langs_features_are_built_ahead_and_kept_apart(small_synthetic_data, capsys):
    """`distner features --set extra_train_langs=bn` builds the file of the train split such a config
    trains on (Hindi's, then Bengali's); prepare then reads it, and a packed member without the key
    keeps Hindi's own."""
    argv = ["features", "--lang", "hi", "--data-dir", str(small_synthetic_data), "--splits", "train,dev"]
    assert main([*argv, "--set", "extra_train_langs=bn"]) == 0
    assert len(cache_files()) == 2 and "hi train+bn: " in capsys.readouterr().out
    corpus = Corpus.load(small_synthetic_data, "hi", "fine")
    cfg = tiny_config("encoder_features=e5", "extra_train_langs=bn")
    files = cache_files()
    data = prepare(corpus, cfg)
    assert cache_files() == files and "encoding" not in capsys.readouterr().err  # read, not rebuilt
    bn = [s for s in read_conll(small_synthetic_data / "bn" / "train.conll.gz") if len(s)]
    own = len([s for s in corpus.train if len(s)])
    assert len(data.train.lengths) == own + len(bn)
    shared = SharedData(corpus, torch.device("cpu"))
    got = [shared.get(c)[0] for c in (cfg, cfg.replace(extra_train_langs=""))]
    assert [len(g.train.lengths) for g in got] == [own + len(bn), own]
    line = one_line_error(run_cli(*argv, "--set", "extra_train_langs=hi"))
    assert line == "distner: error: extra_train_langs: hi is this cell's own language"


def test_a_study_builds_the_caches_once_before_its_trials(tmp_path, no_ray_left, capsys):
    from distner.tune.driver import run_study

    write(tmp_path / "space.yaml", SPACE % 1 + "encoder_features: e5\nencoder_layers: last\n")
    opts = study_options(tmp_path, seed=1)
    run_study(opts)
    # the driver encoded train and dev once (never test); the trials only read those files
    assert len(cache_files()) == 2
    assert capsys.readouterr().err.count("distner: encoding") == 2
    rows = list(csv.DictReader(open(tmp_path / "runs" / "en-fine" / "trials.csv")))
    assert len(rows) == 2 and all(r["state"] == "completed" for r in rows)


def test_pieces_are_cached_whole_and_read_back(capsys):
    sentences = [("the", "river"), ("Mumbai",), tuple(["word"] * 600)]  # the last in two windows
    cfg = model_cfg(*TRAINED)
    first = cache.cached_features(sentences, cfg)
    (path,) = cache_files()
    assert path != cache.cache_path(sentences, features.Spec((10,), True))  # not the word file's key
    again = cache.cached_features(sentences, cfg)
    assert "encoding" not in capsys.readouterr().err.split("encoded in")[-1]  # the second call read it
    for a, b in zip(first, again):
        assert isinstance(a, features.Pieces) and isinstance(b, features.Pieces)
        assert torch.equal(a.states, b.states) and torch.equal(a.firsts, b.firsts)
    long = first[2]
    assert len(long.firsts) == 600 and len(long.states) == 604  # two windows, each with <s> and </s>
    assert bool((long.firsts[1:] > long.firsts[:-1]).all()) and int(long.firsts[-1]) < len(long.states)
    path.write_bytes(path.read_bytes()[:100])  # damaged: rebuilt, and the same again
    rebuilt = cache.cached_features(sentences, cfg)
    assert all(torch.equal(a.states, b.states) for a, b in zip(first, rebuilt))  # type: ignore[union-attr]
    assert "damaged cache file" in capsys.readouterr().err
    for damage in (
        lambda f: f[:, :-1].contiguous(),
        lambda f: f.index_fill(0, torch.tensor([3]), float("nan")),
    ):
        _rewrite_features(path, damage)  # pieces of another width, or NaN: rebuilt too
        rebuilt = cache.cached_features(sentences, cfg)
        assert all(torch.equal(a.states, b.states) for a, b in zip(first, rebuilt))  # type: ignore[union-attr]
        assert "damaged cache file" in capsys.readouterr().err
