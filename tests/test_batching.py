"""Length-bucketed batches: every sentence once per epoch, little padding, seeded, new each epoch."""

from __future__ import annotations

import random

import pytest
import pytorch_lightning as pl
import torch

from distner.config import load_config
from distner.data import BatchDataset, BucketBatchSampler, Corpus, Vocab, encode, make_loader, read_conll
from distner.labels import tag_set
from distner.training import fit

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


def test_lightning_reshuffles_every_epoch(tiny_dir, tmp_path):
    seen: list[list[int]] = []

    class Record(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            seen.append([])

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen[-1].append(int(batch.tokens.sum()))

    cfg = load_config(None, ["embedding_dim=8", "hidden_dim=8", "epochs=3", "batch_size=3"])
    fit(cfg, Corpus.load(tiny_dir, "en", "fine"), tmp_path, progress=False, callbacks=[Record()])
    assert len(seen) == 3 and len({tuple(e) for e in seen}) == 3  # set_epoch reached the sampler
    # the same batches as the sampler alone gives for each epoch
    loader = make_loader(
        encode(Corpus.load(tiny_dir, "en", "fine").train, *_vocab_tags(tiny_dir), 25), 3, True, 42
    )
    for epoch, sums in enumerate(seen):
        loader.sampler.set_epoch(epoch)
        assert [int(b.tokens.sum()) for b in loader] == sums


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
