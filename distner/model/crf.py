"""A linear-chain CRF whose transitions forbid invalid IOB2 moves, so Viterbi only ever returns
valid sequences (no `I-X` after `O`, after another type, or at the start).

Vectorised over the batch; the forward algorithm and Viterbi loop only over positions (sentences
are short, and length-bucketed batches keep the loop close to each batch's real lengths). Tested against brute
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
    start_mask: torch.Tensor  # buffers, registered in __init__
    trans_mask: torch.Tensor

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
        """Mean negative log-likelihood per sentence. emissions [B, L, T]; tags [B, L] (any valid
        tag id where mask is False); mask [B, L] with real tokens first, every row non-empty.

        Computed in float32 even under mixed precision: the forward algorithm sums over many steps.
        """
        with torch.autocast(emissions.device.type, enabled=False):
            emissions = emissions.float()
            return (self.log_partition(emissions, mask) - self.score(emissions, tags, mask)).mean()

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Score of the given tag path, all positions at once."""
        m = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # [B, L]
        steps = self._trans()[tags[:, :-1], tags[:, 1:]]  # [B, L-1]
        last = tags.gather(1, (mask.sum(1, keepdim=True) - 1).clamp(min=0)).squeeze(1)
        return self._start()[tags[:, 0]] + (emit * m).sum(1) + (steps * m[:, 1:]).sum(1) + self.end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The forward algorithm. Each step's logsumexp over previous tags is done as a matrix
        product in probability space, shifted by the maxima: exp of [B, T] and [T, T] per step
        instead of [B, T, T]. Same math; a tag whose every path is more than ~87 nats below the
        best underflows to probability 1e-38 (clamped, so gradients stay finite)."""
        trans = self._trans()
        t_max = trans.max()
        e_trans = torch.exp(trans - t_max)  # forbidden moves (NEG) become exactly 0
        tiny = torch.finfo(emissions.dtype).tiny
        alpha = self._start() + emissions[:, 0]  # [B, T]
        for t in range(1, emissions.shape[1]):
            a_max = alpha.amax(1, keepdim=True)
            summed = torch.exp(alpha - a_max) @ e_trans
            nxt = torch.log(summed.clamp(min=tiny)) + (a_max + t_max) + emissions[:, t]
            alpha = torch.where(mask[:, t : t + 1], nxt, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best valid tag sequence per sentence (its real length). Runs on the emissions' device;
        only the finished paths are copied back."""
        emissions = emissions.float()
        trans = self._trans()
        keep = torch.arange(trans.shape[0], device=emissions.device).expand(emissions.shape[0], -1)
        score = self._start() + emissions[:, 0]
        history = []
        for t in range(1, emissions.shape[1]):
            best, idx = (score.unsqueeze(2) + trans.unsqueeze(0)).max(dim=1)  # [B, next]
            step = mask[:, t : t + 1]
            history.append(torch.where(step, idx, keep))  # padding points back to itself
            score = torch.where(step, best + emissions[:, t], score)
        cur = (score + self.end).argmax(1)
        path = [cur]
        for idx in reversed(history):
            cur = idx.gather(1, cur.unsqueeze(1)).squeeze(1)
            path.append(cur)
        rows = torch.stack(path[::-1], dim=1).tolist()
        return [row[:n] for row, n in zip(rows, mask.sum(1).tolist())]
