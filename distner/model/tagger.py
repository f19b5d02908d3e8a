"""The tagger network: a plain nn.Module, independent of Lightning and Ray."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from distner.config import ENCODER_LAYERS, SUBWORD_DIM, ModelConfig, encoder_layer_ids
from distner.data.vocab import IGNORE_INDEX, PAD_ID, UNK_ID
from distner.model.crf import CRF


class CharCNN(nn.Module):
    """Word vectors from characters: embed, convolve, max-pool over the word's characters."""

    def __init__(self, num_chars: int, dim: int, channels: int, kernel: int):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, dim, padding_idx=PAD_ID)
        self.conv = nn.Conv1d(dim, channels, kernel, padding=kernel // 2)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """chars [N, W] (one word a row, 0 = padding) -> [N, channels]"""
        h = torch.relu(self.conv(self.embedding(chars).transpose(1, 2)))  # [N, channels, W]
        # max over real characters only; ReLU output is >= 0, so masked positions can be 0
        return h.masked_fill((chars == 0).unsqueeze(1), 0.0).amax(dim=2)


class Tagger(nn.Module):
    """Embedding (+ char-CNN, + encoder features: frozen, or from trained top layers) -> (Bi)LSTM ->
    Linear, then softmax or a CRF.

    With the default ModelConfig this is exactly the reference's network. Padding (token id 0) sits at
    the end of each row; a unidirectional LSTM never lets it reach real positions, so packing is
    only needed (and only paid for) when the LSTM also reads right-to-left.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        vocab_size: int,
        num_tags: int,
        num_chars: int = 0,
        tags: Sequence[str] | None = None,
        encoder_top: nn.ModuleList | None = None,
    ):
        """`encoder_top`: the starting weights of encoder_train_layers' layers (a fit's prepared
        data holds them); without it they are made here (a saved run, whose weights replace them)."""
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=PAD_ID)
        width = cfg.embedding_dim
        self.chars = None
        if cfg.char_features:
            if num_chars < 3:
                raise ValueError("char_features needs a character vocabulary")
            self.chars = CharCNN(num_chars, cfg.char_embedding_dim, cfg.char_channels, cfg.char_kernel)
            width += cfg.char_channels
        self.mix: nn.Parameter | None = None
        self.encoder_top: nn.ModuleList | None = None
        if cfg.encoder_features:
            width += SUBWORD_DIM  # the frozen encoder states are inputs; only the mix is trained
            if cfg.encoder_train_layers:  # ... or the encoder's top layers, from e5's weights
                if encoder_top is None:
                    from distner.pretrained.encoder import trainable_layers

                    encoder_top = trainable_layers(cfg.encoder_train_layers)
                self.encoder_top = encoder_top
            if cfg.encoder_mix == "scalar":  # ELMo's scalar mix: softmax(w) over layers, times gamma
                self.mix = nn.Parameter(torch.zeros(len(encoder_layer_ids(cfg.encoder_layers)) + 1))
        self.lstm = nn.LSTM(
            width,
            cfg.hidden_dim,
            num_layers=cfg.num_layers,
            bidirectional=cfg.bidirectional,
            dropout=cfg.lstm_dropout if cfg.num_layers > 1 else 0.0,
            batch_first=True,
        )
        # Identity when off: the reference had no dropout, and a p=0 Dropout still costs a pass
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.proj = nn.Linear(cfg.hidden_dim * (2 if cfg.bidirectional else 1), num_tags)
        self.crf = None
        if cfg.crf:
            if tags is None or len(tags) != num_tags:
                raise ValueError("crf needs the tag names (for IOB2 constraints)")
            self.crf = CRF(tags)
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    def forward(
        self,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        word_chars: torch.Tensor | None = None,
        word_index: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        piece_first: torch.Tensor | None = None,
        piece_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens [B, L], lengths [B] (CPU) -> per-token tag scores [B, L, num_tags].

        With character features, `word_chars` [U, W] spells the batch's distinct words and
        `word_index` [B, L] picks each position's row (see data.Batch): the char encoder runs once
        per distinct word, not once per position. With encoder features, `features` [B, L, k, 384]
        are each position's frozen encoder states (k layers, or k = 1 already averaged). With
        trained encoder layers, `features` [B, P, 384] are the pieces' input states, `piece_mask`
        [B, P] marks real pieces and `piece_first` [B, L] each word's first piece (see data.Batch).
        """
        if self.training and self.cfg.word_dropout > 0:
            drop = torch.rand(tokens.shape, device=tokens.device) < self.cfg.word_dropout
            tokens = tokens.masked_fill(drop & (tokens > UNK_ID), UNK_ID)
        x = self.embedding(tokens)
        if self.chars is not None:
            if word_chars is None or word_index is None:
                raise ValueError("this model uses character features: pass word_chars and word_index")
            x = torch.cat([x, self.chars(word_chars)[word_index]], dim=-1)
        if self.cfg.encoder_features:
            if features is None:
                raise ValueError("this model uses encoder features: pass features")
            f = features.to(x.dtype)
            if self.encoder_top is not None:
                if piece_first is None or piece_mask is None:
                    raise ValueError("this model trains encoder layers: pass piece_first and piece_mask")
                f = self._top_states(f, piece_first, piece_mask)
            if self.mix is None:
                f = f.mean(dim=2)
            else:  # the last weight is gamma (kept in one parameter so that the state dict stays flat)
                w = torch.softmax(self.mix[:-1], dim=0).to(x.dtype)
                f = (f * w[:, None]).sum(dim=2) * self.mix[-1].exp()
            x = torch.cat([x, f], dim=-1)
        x = self.dropout(x)
        if self.cfg.bidirectional:
            lengths = lengths.cpu()
            # distner's batches come longest first; then packing needs no sort and no index copy
            ordered = bool((lengths[:-1] >= lengths[1:]).all())
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=ordered)
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
        else:
            out, _ = self.lstm(x)
        return self.proj(self.dropout(out))

    def _top_states(self, pieces: torch.Tensor, first: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The trained top layers over the pieces [B, P, H]: each word's first-piece states at the
        layers `encoder_layers` picks, [B, L, k, H], as the frozen path's features."""
        assert self.encoder_top is not None
        below = ENCODER_LAYERS - len(self.encoder_top)
        wanted = encoder_layer_ids(self.cfg.encoder_layers)
        x, picked, pad = pieces, [], ~mask
        for layer_id, layer in enumerate(self.encoder_top, start=below + 1):
            x = layer(x, src_key_padding_mask=pad)
            if layer_id in wanted:
                picked.append(x)
        states = torch.stack(picked, dim=2)  # [B, P, k, H]
        index = first[:, :, None, None].expand(-1, -1, *states.shape[2:])
        return states.gather(1, index)

    def param_groups(self, lr: float, encoder_lr: float) -> list[dict]:
        """Adam's parameter groups: the trained encoder layers at `encoder_lr`, the rest at `lr`."""
        top = [] if self.encoder_top is None else list(self.encoder_top.parameters())
        mine = {id(p) for p in top}
        rest = [p for p in self.parameters() if id(p) not in mine]
        return [{"params": rest, "lr": lr}] + ([{"params": top, "lr": encoder_lr}] if top else [])

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over real tokens, or the CRF's negative log-likelihood. Padding is where
        labels are IGNORE_INDEX, so no lengths (and no host-device copy) are needed here."""
        if self.crf is None:
            return self.loss_fn(scores.flatten(0, 1), labels.flatten())
        mask = labels != IGNORE_INDEX
        return self.crf.nll(scores, labels.masked_fill(~mask, 0), mask)

    def decode(self, scores: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Tag ids for each sentence's real tokens: argmax, or IOB2-valid Viterbi with a CRF."""
        if self.crf is None:
            best = scores.argmax(-1).cpu().tolist()
            return [row[:n] for row, n in zip(best, lengths.tolist())]
        mask = torch.arange(scores.shape[1]).unsqueeze(0) < lengths.cpu().unsqueeze(1)
        return self.crf.viterbi(scores, mask.to(scores.device))
