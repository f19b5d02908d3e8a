"""e5 word features: first-piece states per word, windows for long sentences, and the specs a
config or a study's space asks for."""

from __future__ import annotations

import pytest
import torch

from distner.pretrained import e5 as pretrained
from distner.pretrained import encoder, features

from ..helpers import ROOT
from .conftest import model_cfg

pytestmark = pytest.mark.usefixtures("cache_in_tmp")


def test_word_features_are_first_piece_states_per_word():
    sentences = [("Bollywood", "films", "rivers"), ("अरस्तु", "एक", "दार्शनिक"), ("ঢাকা",)]
    scalar = features.word_features(sentences, model_cfg("encoder_mix=scalar", "encoder_layers=9-12"))
    mean = features.word_features(sentences, model_cfg("encoder_layers=last4"))
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
    states, _ = encoder.hidden_states(f, encoder.encoder(), [ids], torch.device("cpu"))
    want = torch.stack([states[layer][0, firsts] for layer in (9, 10, 11, 12)], dim=1)
    assert torch.allclose(scalar[1].float(), want, atol=1e-2)


def test_a_sentence_longer_than_the_model_is_encoded_in_windows():
    long = tuple(["word"] * 600)  # 600 pieces: more than 510 between <s> and </s>
    (feats,) = features.word_features([long], model_cfg())
    assert feats.shape == (600, 1, 384) and bool(feats.abs().sum(-1).gt(0).all())


def test_space_specs_are_every_layers_and_mix_a_study_can_pick(tmp_path):
    from distner.spaces import load_space

    assert features.space_specs(load_space(ROOT / "tune_spaces" / "extended.yaml")) == []
    specs = features.space_specs(load_space(ROOT / "tune_spaces" / "pretrained.yaml"))
    Spec = features.Spec
    assert specs == [Spec((9, 10, 11, 12), True), Spec((9, 10, 11, 12), False), Spec((12,), True)]
    fixed = tmp_path / "s.yaml"
    fixed.write_text("encoder_features: e5\nencoder_layers: last2\nhidden_dim: {choice: [8, 520]}\n")
    assert features.space_specs(load_space(fixed)) == [Spec((11, 12), True)]
    # trained top layers: their input, the pieces of the layer below them
    fixed.write_text("encoder_features: e5\nencoder_layers: last\nencoder_train_layers: {choice: [0, 2]}\n")
    assert features.space_specs(load_space(fixed)) == [Spec((12,), True), Spec((10,), True, True)]
    # auto: the layers each encoder_layers value reads, trained (their input, the layer below them)
    fixed.write_text(
        "encoder_features: e5\nencoder_layers: {choice: [last4, 3-5]}\n"
        "encoder_train_layers: {choice: [0, auto]}\n"
    )
    assert features.space_specs(load_space(fixed)) == [
        Spec((9, 10, 11, 12), True),
        Spec((3, 4, 5), True),
        Spec((8,), True, True),
        Spec((2,), True, True),
    ]
    fixed.write_text(
        "encoder_features: e5\nencoder_layers: {choice: [last4, last8]}\nencoder_train_layers: auto\n"
    )
    assert features.space_specs(load_space(fixed)) == [Spec((8,), True, True), Spec((4,), True, True)]
