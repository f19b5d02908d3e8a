"""Accuracy levers beyond the seed: char-CNN features, CRF output, pretrained vectors, dropouts."""

from __future__ import annotations

import gzip

import pytest
import torch

from distner.config import load_config
from distner.data import Corpus, Vocab, read_conll, read_vectors
from distner.errors import DistnerError
from distner.evaluation import load_run, predict_tags
from distner.labels import is_valid_iob2
from distner.training import fit

from .helpers import run_cli, write

TINY = ["embedding_dim=8", "hidden_dim=8", "epochs=2", "batch_size=4", "lr=0.05"]


def test_char_vocab_keeps_zero_width_joiners(tmp_path):
    p = write(tmp_path / "zw.conll", "# id z\tdomain=hi\nक\u200dष _ _ O\n")
    v = Vocab.build_chars(read_conll(p))
    assert "\u200d" in v.itos and v.itos[:2] == ("<pad>", "<unk>")


@pytest.mark.parametrize(
    "levers",
    [
        ["char_features=true"],
        ["crf=true"],
        [
            "char_features=true",
            "crf=true",
            "bidirectional=true",
            "num_layers=2",
            "lstm_dropout=0.2",
            "word_dropout=0.1",
            "dropout=0.1",
        ],
    ],
)
def test_levers_train_save_and_reload(tmp_path, tiny_dir, levers):
    corpus = Corpus.load(tiny_dir, "en", "fine")
    res = fit(load_config(None, [*TINY, *levers]), corpus, tmp_path, progress=False)
    run_ = load_run(tmp_path)
    assert run_.cfg == load_config(None, [*TINY, *levers])
    if "char_features=true" in levers:
        assert run_.chars is not None and run_.model.chars is not None
    tags = predict_tags(run_.model, corpus.test, run_.vocab, run_.tags, chars=run_.chars)
    assert [len(t) for t in tags] == [len(s) for s in corpus.test]
    # reloaded model reproduces the run's own test score
    from distner.metrics import score

    again = score([list(s.tags) for s in corpus.test], tags)
    assert again["entity_macro_f1"] == pytest.approx(res.metrics["test"]["entity_macro_f1"])


def _vec_file(path, words, dim=8, header=True, gz=False):
    torch.manual_seed(0)
    lines = [f"{len(words)} {dim}"] if header else []
    vecs = torch.randn(len(words), dim)
    lines += [w + " " + " ".join(f"{x:.5f}" for x in v.tolist()) for w, v in zip(words, vecs)]
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return vecs


@pytest.mark.parametrize("gz", [False, True])
def test_pretrained_vectors_frozen_and_oov_words_kept(tmp_path, tiny_dir, gz):
    path = tmp_path / ("v.vec.gz" if gz else "v.vec")
    words = ["paris", "berlin", "zanzibar"]  # zanzibar never occurs in train
    vecs = _vec_file(path, words, gz=gz)
    corpus = Corpus.load(tiny_dir, "en", "fine")
    cfg = load_config(None, [*TINY, f"pretrained_vectors={path}", "freeze_embeddings=true"])
    fit(cfg, corpus, tmp_path / "run", progress=False)
    run_ = load_run(tmp_path / "run")
    emb = run_.model.embedding.weight
    for w, v in zip(words, vecs):
        assert w in run_.vocab.itos
        torch.testing.assert_close(emb[run_.vocab.itos.index(w)], v, atol=1e-4, rtol=0)


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
        fit(load_config(None, [*TINY, f"pretrained_vectors={ok}"]), corpus, tmp_path / "r", progress=False)


@pytest.mark.integration  # distner's CLI in a subprocess
def test_crf_and_chars_end_to_end_on_hindi(data_root, tmp_path):
    """`distner train --set crf=true --set char_features=true` on CPU; Viterbi output is valid IOB2."""
    out = tmp_path / "run"
    proc = run_cli(
        "train",
        "--lang",
        "hi",
        "--data-dir",
        data_root,
        "--out",
        out,
        "--quiet",
        "--set",
        "crf=true",
        "--set",
        "char_features=true",
        "--set",
        "epochs=1",
        "--set",
        "embedding_dim=32",
        "--set",
        "hidden_dim=32",
        "--set",
        "max_train_sentences=1500",
    )
    assert proc.returncode == 0, proc.stderr
    run_ = load_run(out)
    test = read_conll(data_root / "hi" / "test.conll.gz")
    from distner.data import BatchDataset, encode

    enc = encode(test, run_.vocab, run_.tags, None, run_.chars)
    b = BatchDataset(enc)[list(range(len(test)))]
    with torch.no_grad():
        scores = run_.model(b.tokens, b.lengths, b.word_chars, b.word_index)
        raw = run_.model.decode(scores, b.lengths)  # straight from Viterbi, before any repair
    assert len(raw) == len(test)
    assert all(is_valid_iob2([run_.tags[j] for j in seq]) for seq in raw)
    pred = tmp_path / "pred.conll"
    assert (
        run_cli(
            "predict", "--model", out, "--input", data_root / "hi" / "test.conll.gz", "--output", pred
        ).returncode
        == 0
    )
    assert len(read_conll(pred)) == len(test)  # the strict reader rejects any invalid IOB2


def test_vectors_file_is_parsed_once_until_it_changes(tmp_path):
    path = write(tmp_path / "v.vec", "paris 0.1 0.2 0.3\n")
    first = read_vectors(path)
    assert read_vectors(path) is first  # a reused Ray worker does not parse it again
    write(path, "paris 0.5 0.2 0.3\nberlin 0.1 0.2 0.3\n")  # rewritten in place: read afresh
    words, vecs = read_vectors(path)
    assert words == ["paris", "berlin"] and vecs[0, 0].item() == pytest.approx(0.5)
