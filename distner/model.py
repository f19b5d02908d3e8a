"""The tagger network: a plain nn.Module, independent of Lightning and Ray."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import ModelConfig


class Tagger(nn.Module):
    """Embedding -> (Bi)LSTM -> Linear, producing per-token tag logits.

    With the default ModelConfig this is exactly the seed's network. Padding (token id 0) sits at
    the end of each row; a unidirectional LSTM never lets it reach real positions, so packing is
    only needed (and only paid for) when the LSTM also reads right-to-left.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, num_tags: int):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(
            cfg.embedding_dim,
            cfg.hidden_dim,
            num_layers=cfg.num_layers,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
            batch_first=True,
        )
        # Identity when off: the seed had no dropout, and a p=0 Dropout still costs a pass
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.proj = nn.Linear(cfg.hidden_dim * (2 if cfg.bidirectional else 1), num_tags)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens [B, L] -> logits [B, L, num_tags]."""
        x = self.dropout(self.embedding(tokens))
        if self.cfg.bidirectional:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
        else:
            out, _ = self.lstm(x)
        return self.proj(self.dropout(out))
