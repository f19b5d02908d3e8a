"""data/conll.py: MultiCoNER files read strictly (one line naming the file and line for anything else),
written back, found in either layout."""

from __future__ import annotations

import gzip

import pytest

from distner.core.errors import DistnerError
from distner.data.conll import format_conll, load_split, read_conll, split_path
from distner.labels import COARSE_TO_FINE

from ..helpers import write


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
