import gzip
import random

import pytest
import torch

from distner.data import (
    BatchDataset,
    BucketBatchSampler,
    Corpus,
    Vocab,
    encode,
    format_conll,
    load_split,
    read_conll,
    read_vectors,
    split_path,
)
from distner.errors import DistnerError
from distner.labels import COARSE_TO_FINE, tag_set
from distner.training import fit

from .helpers import tiny_config, write


def test_reads_fixture_with_any_number_of_blank_lines(tiny_dir):
    train = read_conll(tiny_dir / "en" / "train.conll")
    dev = read_conll(tiny_dir / "en" / "dev.conll")  # one blank line between sentences
    test = read_conll(tiny_dir / "en" / "test.conll")  # three
    assert (len(train), len(dev), len(test)) == (12, 3, 3)
    assert train[0].id == "tiny-train-0\tdomain=en"
    assert train[0].tokens == ("alice", "smith", "sang", "in", "paris")
    assert train[0].tags == ("B-Artist", "I-Artist", "O", "O", "B-HumanSettlement")


def test_gzip_and_plain_agree(tmp_path, tiny_dir):
    text = (tiny_dir / "en" / "train.conll").read_text(encoding="utf-8")
    gz = tmp_path / "train.conll.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write(text)
    assert read_conll(gz) == read_conll(tiny_dir / "en" / "train.conll")


def test_keeps_zero_width_characters(tmp_path):
    word = "क\u200dष\u200c"  # ZWJ and ZWNJ are part of the word form
    p = write(tmp_path / "zw.conll", f"# id z\tdomain=hi\n{word} _ _ O\nदिल्ली _ _ B-HumanSettlement\n")
    assert read_conll(p)[0].tokens[0] == word


@pytest.mark.parametrize(
    "body,line,message",
    [
        ("a _ _ O\nb _ O\n", 3, "expected 4 columns"),
        ("a _ _ O\nb _ _ B-Wizard\n", 3, "unknown entity type 'Wizard'"),
        ("a _ _ O\nb _ _ X-Artist\n", 3, "malformed tag"),
        ("a _ _ O\nb _ _ I-Artist\n", 3, "IOB2 needs B-Artist"),
        ("a _ _ B-Artist\nb _ _ I-Athlete\n", 3, "follows 'B-Artist'"),
        ("a _ _ I-Artist\n", 2, "IOB2 needs B-Artist"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, body, line, message):
    p = write(tmp_path / "bad.conll", "# id x\tdomain=en\n" + body)
    with pytest.raises(DistnerError) as e:
        read_conll(p)
    assert str(e.value).startswith(f"{p}:{line}: ")
    assert message in str(e.value)


def test_empty_file(tmp_path):
    p = write(tmp_path / "empty.conll", "\n\n")
    with pytest.raises(DistnerError, match=r"empty\.conll:1: no sentences"):
        read_conll(p)


def test_not_utf8(tmp_path):
    p = tmp_path / "latin.conll"
    p.write_bytes(b"# id x\n\xe9t\xe9 _ _ O\n")
    with pytest.raises(DistnerError, match=r"latin\.conll:2: not valid UTF-8"):
        read_conll(p)


def test_missing_file_and_split(tmp_path, tiny_dir):
    with pytest.raises(DistnerError, match="file not found"):
        read_conll(tmp_path / "nope.conll")
    with pytest.raises(DistnerError, match="split 'train' not found"):
        split_path(tmp_path, "hi", "train")
    assert split_path(tiny_dir, "english", "dev") == tiny_dir / "en" / "dev.conll"


def test_data_dir_from_environment(monkeypatch, tiny_dir):
    monkeypatch.setenv("DISTNER_DATA", str(tiny_dir))
    assert split_path(None, "en", "test") == tiny_dir / "en" / "test.conll"
    monkeypatch.delenv("DISTNER_DATA")
    with pytest.raises(DistnerError, match="DISTNER_DATA"):
        split_path(None, "en", "test")


def test_prediction_input_may_lack_tags(tmp_path):
    p = write(tmp_path / "raw.conll", "# id a\tdomain=en\nhello\nworld\n\n# id b\tdomain=en\nx _ _ O\n")
    sents = read_conll(p, require_tags=False)
    assert sents[0].tags is None and sents[0].tokens == ("hello", "world")
    with pytest.raises(DistnerError, match="expected 4 columns"):
        read_conll(p)


def test_vocab_min_freq_and_specials(tiny_dir):
    train = read_conll(tiny_dir / "en" / "train.conll")
    v1, v2 = Vocab.build(train), Vocab.build(train, min_freq=2)
    assert v1.itos[:2] == ("<pad>", "<unk>")
    assert "paris" in v2.itos and "smith" not in v2.itos and len(v2) < len(v1)
    assert v2.lookup(["paris", "smith"])[1] == 1


def test_encode_truncates_only_when_asked(tiny_dir):
    train = read_conll(tiny_dir / "en" / "train.conll")
    vocab, tags = Vocab.build(train), tag_set("fine")
    full, cut = encode(train, vocab, tags), encode(train, vocab, tags, max_len=3)
    assert full.lengths.tolist() == [len(s) for s in train]
    assert int(cut.lengths.max()) == 3 and cut.tokens.shape[1] == 3
    assert (full.labels[full.tokens == 0] == -100).all()  # padding never has a label


def test_format_round_trip(tmp_path, tiny_dir):
    sents = read_conll(tiny_dir / "en" / "train.conll")
    out = write(tmp_path / "rt.conll", format_conll(sents, [s.tags for s in sents]))
    assert read_conll(out) == sents


def test_tabs_bom_crlf_and_spaces_read_like_the_release(tmp_path, tiny_dir):
    """Columns split on any run of spaces or tabs; a BOM and CRLF endings are accepted."""
    plain = tiny_dir / "en" / "dev.conll"
    text = plain.read_text(encoding="utf-8")
    lines = [ln if ln.startswith("# id") else ln.replace(" ", "\t") for ln in text.split("\n")]
    variants = {
        "tabs.conll": "\n".join(lines),
        "mixed.conll": text.replace(" _ _ ", " \t_  _\t "),
        "bom-crlf.conll": "\ufeff" + text.replace("\n", "\r\n"),
    }
    for name, body in variants.items():
        p = tmp_path / name
        p.write_bytes(body.encode("utf-8"))
        assert read_conll(p) == read_conll(plain), name
    gz = tmp_path / "bom.conll.gz"
    with gzip.open(gz, "wb") as f:
        f.write(("\ufeff" + text).encode("utf-8"))
    assert read_conll(gz) == read_conll(plain)


def test_unicode_spaces_stay_inside_tokens(tmp_path):
    p = write(tmp_path / "nbsp.conll", "# id n\tdomain=en\nnew\u00a0york _ _ B-HumanSettlement\n")
    assert read_conll(p)[0].tokens == ("new\u00a0york",)


def test_header_without_tokens_is_an_empty_sentence(tmp_path):
    p = write(tmp_path / "e.conll", "# id a\n\n# id b\nx _ _ O\n\n# id c\n# id d\ny _ _ O\n# id e\n")
    sents = read_conll(p)
    assert [(s.id, len(s)) for s in sents] == [("a", 0), ("b", 1), ("c", 0), ("d", 1), ("e", 0)]
    out = write(tmp_path / "rt.conll", format_conll(sents, [s.tags for s in sents]))
    assert read_conll(out) == sents
    with pytest.raises(DistnerError, match="no sentences"):
        read_conll(write(tmp_path / "headers.conll", "# id a\n# id b\n"))


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not-gzip"])
def test_damaged_gzip_is_one_error(tmp_path, tiny_dir, damage):
    data = gzip.compress((tiny_dir / "en" / "train.conll").read_bytes())
    body = {
        "truncated": data[: len(data) // 2],
        "flipped": data[:40] + bytes(b ^ 0xFF for b in data[40:80]) + data[80:],
        "not-gzip": b"# id a\nx _ _ O\n",
    }[damage]
    p = tmp_path / "train.conll.gz"
    p.write_bytes(body)
    with pytest.raises(DistnerError, match=r"train\.conll\.gz: damaged or truncated gzip file"):
        read_conll(p)


def test_long_tag_is_not_echoed_whole(tmp_path):
    p = write(tmp_path / "long.conll", "# id a\nx _ _ B-" + "Z" * 100_000 + "\n")
    with pytest.raises(DistnerError, match="unknown entity type") as e:
        read_conll(p)
    assert len(str(e.value)) < 500


def test_official_release_layout(tmp_path, tiny_dir):
    """The MultiCoNER II download as it comes (EN-English/en_train.conll, ...), no renaming."""
    for split in ("train", "dev", "test"):
        write(tmp_path / "EN-English" / f"en_{split}.conll", (tiny_dir / "en" / f"{split}.conll").read_text())
    assert split_path(tmp_path, "english", "dev") == tmp_path / "EN-English" / "en_dev.conll"
    train, dev = (load_split(tmp_path, "en", split, "coarse") for split in ("train", "dev"))
    assert len(train) == len(read_conll(tiny_dir / "en" / "train.conll"))
    assert {t[2:] for s in dev for t in s.tags if t != "O"} <= set(COARSE_TO_FINE)
    # distner's own layout wins where both are present; a missing split names both places
    write(tmp_path / "en" / "dev.conll", (tiny_dir / "en" / "test.conll").read_text())
    assert split_path(tmp_path, "en", "dev") == tmp_path / "en" / "dev.conll"
    with pytest.raises(DistnerError, match=r"split 'train' not found \(nor the release's BN-Bangla/bn_train"):
        split_path(tmp_path, "bn", "train")


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
