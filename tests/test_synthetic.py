"""The synthetic corpus the fast suite runs on looks like the release to distner, and is learnable."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from distner.data.conll import read_conll
from distner.labels import FINE_TYPES, is_valid_iob2

from .helpers import run_cli
from .synthetic import LANGS, SIZES, write_corpus

HEADER = re.compile(
    r"# id [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\tdomain=(en|hi|bn)"
)
ZERO_WIDTH = "\u200c\u200d"
DANDA = "\u0964"
# each language's own script (and, for hi and bn, zero-width (non-)joiners as in the release)
WORD = {
    "en": re.compile(r"[a-z]+|\."),
    "hi": re.compile(rf"[\u0900-\u0963\u0966-\u097f{ZERO_WIDTH}]+|{DANDA}"),
    "bn": re.compile(rf"[\u0980-\u09ff{ZERO_WIDTH}]+|{DANDA}"),
}


@pytest.mark.parametrize("lang", LANGS)
def test_release_layout_scripts_and_labels(synthetic_data, lang):
    for split, n in SIZES.items():
        path = synthetic_data / lang / f"{split}.conll.gz"
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
        assert text.startswith("\n# id ") and text.endswith(" O\n\n")  # as released
        blocks = text.strip("\n").split("\n\n\n")  # two blank lines between sentences
        assert len(blocks) == n
        for block in blocks:
            header, *lines = block.split("\n")
            assert HEADER.fullmatch(header) and header.endswith(f"domain={lang}"), header
            assert lines and all(
                len(line.split(" ")) == 4 and line.split(" ")[1:3] == ["_", "_"] for line in lines
            )
        sentences = read_conll(path)  # distner's strict reader: IOB2 and the 33 spellings checked
        assert len(sentences) == n and len({s.id for s in sentences}) == n
        assert all(is_valid_iob2(s.tags) for s in sentences)
        assert {t[2:] for s in sentences for t in s.tags if t != "O"} == set(
            FINE_TYPES
        )  # all 33, every split
        tokens = [t for s in sentences for t in s.tokens]
        assert all(WORD[lang].fullmatch(t) for t in tokens), [
            t for t in tokens if not WORD[lang].fullmatch(t)
        ]
        if lang != "en":
            assert any(c in t for t in tokens for c in ZERO_WIDTH)
        assert max(len(s) for s in sentences) > 25  # some longer than the baseline's training truncation


@pytest.mark.integration  # distner's CLI in a subprocess
def test_distner_reads_it_as_a_data_root(synthetic_data):
    for lang, gran, types in (("bn", "fine", 33), ("en", "coarse", 6)):
        proc = run_cli(
            "data", "stats", "--langs", lang, "--granularity", gran, "--data-dir", synthetic_data, "--json"
        )
        assert proc.returncode == 0, proc.stderr
        stats = json.loads(proc.stdout)[lang]
        for split, n in SIZES.items():
            assert stats[split]["sentences"] == n and len(stats[split]["entities_per_type"]) == types


def test_same_seed_same_bytes(tmp_path):
    def files(seed, where):
        root = write_corpus(tmp_path / where, seed=seed, sizes={"train": 40, "dev": 35, "test": 35})
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.gz"))}

    a = files(5, "a")
    assert len(a) == 9 and a == files(5, "b")
    other = files(6, "c")
    assert all(a[k] != other[k] for k in a)


@pytest.mark.integration  # distner's CLI in a subprocess
def test_a_small_model_learns_it(synthetic_data, tmp_path):
    """What keeps 'the model learned something' meaningful on this corpus: a small unidirectional
    LSTM tagger, 4 epochs on 400 Hindi sentences, finds most entities of unseen sentences."""
    net = ("embedding_dim=32", "hidden_dim=32", "epochs=4", "batch_size=16", "lr=0.05")
    proc = run_cli(
        "train",
        "--lang",
        "hi",
        "--data-dir",
        synthetic_data,
        "--out",
        tmp_path,
        "--quiet",
        *(x for kv in net for x in ("--set", kv)),
    )
    assert proc.returncode == 0, proc.stderr
    test = json.loads((tmp_path / "metrics.json").read_text())["test"]
    assert test["entity_macro_f1"] > 0.8, test["entity_macro_f1"]
    assert len(test["per_type"]) == 33
