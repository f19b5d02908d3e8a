import itertools

import pytest
import torch

from distner.data.conll import read_conll
from distner.evaluation.evaluate import load_run
from distner.labels import is_valid_iob2 as valid
from distner.model.crf import CRF, iob2_constraints

from ..helpers import run_cli

TAGS = ["O", "B-A", "I-A", "B-B", "I-B"]


def brute(crf, em, n):
    """All valid sequences of length n with their scores."""
    seqs = [s for s in itertools.product(range(len(TAGS)), repeat=n) if valid([TAGS[i] for i in s])]
    mask = torch.ones(1, n, dtype=torch.bool)
    scores = torch.stack([crf.score(em[:, :n], torch.tensor([s]), mask)[0] for s in seqs])
    return seqs, scores


def test_constraints():
    start, allowed = iob2_constraints(TAGS)
    assert start.tolist() == [True, True, False, True, False]
    assert allowed[1, 2] and allowed[2, 2] and not allowed[0, 2] and not allowed[1, 4] and not allowed[2, 4]


@pytest.mark.parametrize("seed", range(4))
def test_partition_and_viterbi_match_brute_force(seed):
    torch.manual_seed(seed)
    crf = CRF(TAGS)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    em = torch.randn(2, 4, len(TAGS))
    lengths = [4, 3]
    mask = torch.tensor([[True] * 4, [True] * 3 + [False]])
    logz = crf.log_partition(em, mask)
    paths = crf.viterbi(em, mask)
    for i, n in enumerate(lengths):
        seqs, scores = brute(crf, em[i : i + 1], n)
        # invalid sequences carry ~zero probability, so the partition equals the valid-only one
        assert logz[i].item() == pytest.approx(torch.logsumexp(scores, 0).item(), abs=1e-4)
        assert tuple(paths[i]) == seqs[int(scores.argmax())]
        assert valid([TAGS[j] for j in paths[i]])


def test_nll_decreases_when_training():
    torch.manual_seed(0)
    crf = CRF(TAGS)
    em = torch.randn(3, 5, len(TAGS), requires_grad=True)
    gold = torch.tensor([[1, 2, 0, 3, 4], [0, 0, 1, 2, 2], [3, 0, 0, 0, 0]])
    mask = torch.ones(3, 5, dtype=torch.bool)
    opt = torch.optim.Adam([em, *crf.parameters()], lr=0.1)
    first = crf.nll(em, gold, mask).item()
    for _ in range(50):
        opt.zero_grad()
        loss = crf.nll(em, gold, mask)
        loss.backward()
        opt.step()
    assert loss.item() < first / 4
    assert crf.viterbi(em, mask) == gold.tolist()


def _reference_log_partition(crf, em, mask):
    """The textbook forward algorithm: logsumexp over [B, prev, next] at every step."""
    trans = crf.transitions + crf.trans_mask
    alpha = crf.start + crf.start_mask + em[:, 0]
    for t in range(1, em.shape[1]):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + em[:, t]
        alpha = torch.where(mask[:, t : t + 1], nxt, alpha)
    return torch.logsumexp(alpha + crf.end, dim=1)


@pytest.mark.parametrize("scale", [1.0, 10.0, 40.0])
def test_matrix_product_forward_equals_logsumexp_forward(scale):
    from distner.labels import tag_set

    tags = tag_set("fine")
    torch.manual_seed(int(scale))
    crf = CRF(tags)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(std=2.0)
    lengths = torch.tensor([9, 1, 5, 9, 3, 7])
    mask = torch.arange(9).unsqueeze(0) < lengths.unsqueeze(1)
    em = (scale * torch.randn(6, 9, len(tags))).requires_grad_()
    ours = crf.log_partition(em, mask)
    ref = _reference_log_partition(crf, em, mask)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-3)
    g_ours = torch.autograd.grad(ours.sum(), em)[0]
    g_ref = torch.autograd.grad(ref.sum(), em)[0]
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-3, atol=1e-4)


def test_gradients_stay_finite_with_extreme_scores():
    torch.manual_seed(0)
    crf = CRF(TAGS)
    em = (500 * torch.randn(4, 12, len(TAGS))).requires_grad_()
    gold = torch.zeros(4, 12, dtype=torch.long)
    mask = torch.ones(4, 12, dtype=torch.bool)
    loss = crf.nll(em, gold, mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(em.grad).all()


def test_viterbi_matches_brute_force_on_mixed_lengths():
    torch.manual_seed(5)
    crf = CRF(TAGS)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    lengths = [5, 1, 3, 2, 4]
    em = torch.randn(len(lengths), 5, len(TAGS))
    mask = torch.arange(5).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    paths = crf.viterbi(em, mask)
    for i, n in enumerate(lengths):
        seqs, scores = brute(crf, em[i : i + 1], n)
        assert tuple(paths[i]) == seqs[int(scores.argmax())]


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
    from distner.data.vocab import BatchDataset, encode

    enc = encode(test, run_.vocab, run_.tags, None, run_.chars)
    b = BatchDataset(enc)[list(range(len(test)))]
    with torch.no_grad():
        scores = run_.model(b.tokens, b.lengths, b.word_chars, b.word_index)
        raw = run_.model.decode(scores, b.lengths)  # straight from Viterbi, before any repair
    assert len(raw) == len(test)
    assert all(valid([run_.tags[j] for j in seq]) for seq in raw)
    pred = tmp_path / "pred.conll"
    assert (
        run_cli(
            "predict", "--model", out, "--input", data_root / "hi" / "test.conll.gz", "--output", pred
        ).returncode
        == 0
    )
    assert len(read_conll(pred)) == len(test)  # the strict reader rejects any invalid IOB2
