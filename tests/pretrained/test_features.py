"""e5 word features: first-piece states per word, windows for long sentences, and the specs a
config or a study's space asks for."""

from __future__ import annotations

import pytest
import torch

from distner.pretrained import e5 as pretrained
from distner.pretrained import encoder, features

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
