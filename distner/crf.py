"""A linear-chain CRF whose transitions forbid invalid IOB2 moves, so Viterbi only ever returns
valid sequences (no `I-X` after `O`, after another type, or at the start).

Vectorised over the batch; loops only over positions (sentences are short). Tested against brute
force enumeration in tests/test_crf.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NEG = -1e4  # a forbidden move: exp(NEG) underflows to 0 next to real scores


def iob2_constraints(tags: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(allowed_start [T], allowed[T_prev, T_next]) as booleans for an IOB2 tag list."""
    n = len(tags)
    start = torch.ones(n, dtype=torch.bool)
    allowed = torch.ones(n, n, dtype=torch.bool)
    for j, nxt in enumerate(tags):
        if nxt.startswith("I-"):
            start[j] = False
            for i, prev in enumerate(tags):
                allowed[i, j] = prev[2:] == nxt[2:] and prev != "O"
    return start, allowed


class CRF(nn.Module):
    def __init__(self, tags: Sequence[str]):
        super().__init__()
        n = len(tags)
        self.transitions = nn.Parameter(torch.zeros(n, n))
        self.start = nn.Parameter(torch.zeros(n))
        self.end = nn.Parameter(torch.zeros(n))
        start_ok, allowed = iob2_constraints(tags)
        self.register_buffer("start_mask", torch.where(start_ok, 0.0, NEG), persistent=False)
        self.register_buffer("trans_mask", torch.where(allowed, 0.0, NEG), persistent=False)

    def _trans(self) -> torch.Tensor:
        return self.transitions + self.trans_mask

    def _start(self) -> torch.Tensor:
        return self.start + self.start_mask

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per sentence. emissions [B, L, T]; tags [B, L] (any value
        where mask is False); mask [B, L] with real tokens first."""
        tags = tags.masked_fill(~mask, 0)
        return (self.log_partition(emissions, mask) - self.score(emissions, tags, mask)).mean()

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b = torch.arange(emissions.shape[0], device=emissions.device)
        trans = self._trans()
        s = self._start()[tags[:, 0]] + emissions[b, 0, tags[:, 0]]
        for t in range(1, emissions.shape[1]):
            step = trans[tags[:, t - 1], tags[:, t]] + emissions[b, t, tags[:, t]]
            s = s + step * mask[:, t]
        last = tags.gather(1, (mask.sum(1, keepdim=True) - 1).clamp(min=0)).squeeze(1)
        return s + self.end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        trans = self._trans()
        alpha = self._start() + emissions[:, 0]  # [B, T]
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t : t + 1], nxt, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best valid tag sequence per sentence (its real length)."""
        trans = self._trans()
        score = self._start() + emissions[:, 0]
        history = []
        for t in range(1, emissions.shape[1]):
            cand = score.unsqueeze(2) + trans.unsqueeze(0)  # [B, prev, next]
            best, idx = cand.max(dim=1)
            history.append(idx)
            score = torch.where(mask[:, t : t + 1], best + emissions[:, t], score)
        score = score + self.end
        lengths = mask.sum(1).tolist()
        last = score.argmax(1).tolist()
        hist = [h.cpu() for h in history]
        out = []
        for i, n in enumerate(lengths):
            path = [last[i]]
            for t in range(n - 1, 0, -1):
                path.append(int(hist[t - 1][i, path[-1]]))
            out.append(path[::-1])
        return out
