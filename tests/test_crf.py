import itertools

import pytest
import torch

from distner.crf import CRF, iob2_constraints
from distner.labels import is_valid_iob2 as valid

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
