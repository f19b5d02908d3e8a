"""data/vocab.py: vocabularies, encoding, length-bucketed batches (each sentence once, little padding,
seeded), vectors files."""

from __future__ import annotations

import random

import pytest
import torch

from distner.core.errors import DistnerError
from distner.data.conll import Corpus, read_conll
from distner.data.vocab import BatchDataset, BucketBatchSampler, Vocab, encode, read_vectors
from distner.labels import tag_set
from distner.train.fit import fit

from ..helpers import tiny_config, write


def test_vocab_min_freq_and_specials(tiny_dir):
    train = read_conll(tiny_dir / "en" / "train.conll")
    v1, v2 = Vocab.build(train), Vocab.build(train, min_freq=2)
    assert v1.itos[:2] == ("<pad>", "<unk>")
    assert "paris" in v2.itos and "smith" not in v2.itos and len(v2) < len(v1)
    assert v2.lookup(["paris", "smith"])[1] == 1
    # above every count, nothing but <pad> and <unk> would be left: refused, naming both numbers
    with pytest.raises(
        DistnerError, match=r"^min_freq=3: no training word is seen that often \(each is seen at most 2"
    ):
        Vocab.build(train, min_freq=3)


def test_encode_truncates_only_when_asked(tiny_dir):
    train = read_conll(tiny_dir / "en" / "train.conll")
    vocab, tags = Vocab.build(train), tag_set("fine")
    full, cut = encode(train, vocab, tags), encode(train, vocab, tags, max_len=3)
    assert full.lengths.tolist() == [len(s) for s in train]
    assert int(cut.lengths.max()) == 3 and cut.tokens.shape[1] == 3
    assert (full.labels[full.tokens == 0] == -100).all()  # padding never has a label


def test_char_vocab_keeps_zero_width_joiners(tmp_path):
    p = write(tmp_path / "zw.conll", "# id z\tdomain=hi\nक\u200dष _ _ O\n")
    v = Vocab.build_chars(read_conll(p))
    assert "\u200d" in v.itos and v.itos[:2] == ("<pad>", "<unk>")


def test_bad_vectors_files(tmp_path, tiny_dir):
    bad = write(tmp_path / "bad.vec", "2 3\nparis 0.1 0.2 0.3\nberlin 0.1 x 0.3\n")
    with pytest.raises(DistnerError, match=r"bad\.vec:3: not a number"):
        read_vectors(bad)
    short = write(tmp_path / "short.vec", "paris 0.1 0.2 0.3\nberlin 0.1\n")
    with pytest.raises(DistnerError, match=r"short\.vec:2: expected a word and 3 numbers"):
        read_vectors(short)
    ok = write(tmp_path / "ok.vec", "paris 0.1 0.2 0.3\n")
    corpus = Corpus.load(tiny_dir, "en", "fine")
    with pytest.raises(DistnerError, match="set embedding_dim=3"):
        fit(tiny_config(f"pretrained_vectors={ok}"), corpus, tmp_path / "r", progress=False)


def test_vectors_file_is_parsed_once_until_it_changes(tmp_path):
    path = write(tmp_path / "v.vec", "paris 0.1 0.2 0.3\n")
    first = read_vectors(path)
    assert read_vectors(path) is first  # a reused Ray worker does not parse it again
    write(path, "paris 0.5 0.2 0.3\nberlin 0.1 0.2 0.3\n")  # rewritten in place: read afresh
    words, vecs = read_vectors(path)
    assert words == ["paris", "berlin"] and vecs[0, 0].item() == pytest.approx(0.5)


# lengths shaped like MultiCoNER's (mean ~15, long tail to ~60)
LENGTHS = [max(1, min(68, int(random.Random(i).lognormvariate(2.6, 0.45)))) for i in range(7000)]


def _share(lengths, batches):
    real = sum(lengths[i] for b in batches for i in b)
    total = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1 - real / total


@pytest.mark.parametrize("batch_size", [35, 64])
def test_each_sentence_once_and_little_padding(batch_size):
    s = BucketBatchSampler(LENGTHS, batch_size, shuffle=True, seed=1)
    batches = list(s)
    assert len(batches) == len(s)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    assert sum(len(b) == batch_size for b in batches) >= len(batches) - 3  # one short batch per chunk
    assert _share(LENGTHS, batches) <= 0.05
    plain = [list(range(i, min(i + batch_size, 7000))) for i in range(0, 7000, batch_size)]
    assert _share(LENGTHS, plain) > 0.3  # what random batches would pad


def test_order_depends_only_on_seed_and_epoch():
    a, b = BucketBatchSampler(LENGTHS, 35, seed=7), BucketBatchSampler(LENGTHS, 35, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert second != first and sorted(map(sorted, second)) != sorted(map(sorted, first))  # new batches
    b.set_epoch(1)
    assert list(b) == second  # a resumed fit at epoch 1 sees the same batches
    assert list(BucketBatchSampler(LENGTHS, 35, seed=8)) != first


def test_evaluation_order_is_sorted_by_length():
    batches = list(BucketBatchSampler(LENGTHS, 256, shuffle=False))
    flat = [LENGTHS[i] for b in batches for i in b]
    assert flat == sorted(LENGTHS, reverse=True) and len(flat) == len(LENGTHS)


def test_every_batch_lists_longest_first():
    for batch in BucketBatchSampler(LENGTHS, 35, seed=3):
        lens = [LENGTHS[i] for i in batch]
        assert lens == sorted(lens, reverse=True)


def test_batches_spell_each_distinct_word_once(tiny_dir):
    train = read_conll(tiny_dir / "en" / "train.conll")
    vocab, chars = Vocab.build(train), Vocab.build_chars(train)
    enc = encode(train, vocab, tag_set("fine"), None, chars)
    batch = BatchDataset(enc)[list(range(len(train)))]
    width = max(len(s) for s in train)
    assert batch.tokens.shape == (len(train), width) and batch.word_index.shape == (len(train), width)
    words = {t for s in train for t in s.tokens}
    assert len(batch.word_chars) == len(words) + 1  # + the padding row
    for i, s in enumerate(train):
        for j, tok in enumerate(s.tokens):
            row = batch.word_chars[batch.word_index[i, j]]
            assert row[: len(tok)].tolist() == chars.lookup(tok) and not row[len(tok) :].any()
    assert batch.word_chars.shape[1] == max(len(w) for w in words)  # trimmed to the longest word


def _vocab_tags(tiny_dir):
    train = read_conll(tiny_dir / "en" / "train.conll")
    return Vocab.build(train), tag_set("fine")


def test_batches_stay_on_the_device_they_were_built_on(tiny_dir):
    train = read_conll(tiny_dir / "en" / "train.conll")
    enc = encode(train, *_vocab_tags(tiny_dir), None, Vocab.build_chars(train))
    batch = BatchDataset(enc, "cpu")[[0, 1]]
    moved = batch.to("meta")
    assert moved.tokens.device.type == "meta" and moved.word_chars.device.type == "meta"
    assert moved.lengths.device.type == "cpu"  # packing reads lengths on the host
    assert torch.equal(batch.lengths, moved.lengths)
