"""Tensors from sentences: vocabularies, encoding, batches and their length-bucketed order, and
pretrained vectors files. The files themselves are read by data/conll.py."""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from distner.core.errors import DistnerError
from distner.data.conll import Sentence, read_lines, split_columns
from distner.pretrained.features import Features, Pieces

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1  # their ids in every Vocab
IGNORE_INDEX = -100  # label id for padding: never enters the loss or a metric


@dataclass(frozen=True)
class Vocab:
    """Index <-> string maps; index PAD_ID (0) is padding, UNK_ID (1) unknown."""

    itos: tuple[str, ...]

    @classmethod
    def build(cls, sentences: Iterable[Sentence], min_freq: int = 1, extra: Iterable[str] = ()) -> Vocab:
        """Train words seen `min_freq` times, most frequent first, then `extra` words (e.g. those
        that have pretrained vectors) not already in."""
        counts = Counter(t for s in sentences for t in s.tokens)
        most = max(counts.values(), default=0)
        if min_freq > 1 and most < min_freq:  # every word would be <unk>: nothing to learn from
            raise DistnerError(
                f"min_freq={min_freq}: no training word is seen that often (each is seen at most {most} "
                "times), so the vocabulary would hold only <pad> and <unk>; lower min_freq"
            )
        words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        seen = set(words)
        words += [w for w in dict.fromkeys(extra) if w not in seen and w not in (PAD, UNK)]
        return cls((PAD, UNK, *words))

    @classmethod
    def build_chars(cls, sentences: Iterable[Sentence]) -> Vocab:
        """Characters as Unicode code points (zero-width joiners included: they are part of words)."""
        counts = Counter(ch for s in sentences for t in s.tokens for ch in t)
        return cls((PAD, UNK, *sorted(counts, key=lambda c: (-counts[c], c))))

    def __len__(self) -> int:
        return len(self.itos)

    def lookup(self, tokens: Sequence[str]) -> list[int]:
        stoi = self._stoi
        return [stoi.get(t, UNK_ID) for t in tokens]

    @property
    def _stoi(self) -> dict[str, int]:
        cached = self.__dict__.get("_stoi_cache")
        if cached is None:
            cached = {w: i for i, w in enumerate(self.itos)}
            object.__setattr__(self, "_stoi_cache", cached)
        return cached


MAX_WORD_LEN = 20  # characters per word seen by the char encoder (longer words are cut)


@dataclass(frozen=True)
class Encoded:
    """A split as padded tensors: tokens/labels [N, L] (label IGNORE_INDEX on padding), lengths [N].

    With character features, each distinct word form is spelled once: `words` [N, L] gives every
    position's row of `word_chars` [V, MAX_WORD_LEN] (row 0 is padding), so a batch runs the char
    encoder over its distinct words only.

    With encoder features, `feature_index` [N, L] gives every position's row of `features`
    [R, k, 384] (float16, row 0 is padding): a batch gathers its rows on the device. With trained
    encoder layers the rows are word pieces instead: `feature_index` [N, P] gives each sentence's
    piece rows of `features` [R, 384], and `feature_first` [N, L] each word's first-piece position.
    """

    tokens: torch.Tensor
    labels: torch.Tensor
    lengths: torch.Tensor
    words: torch.Tensor | None = None
    word_chars: torch.Tensor | None = None
    feature_index: torch.Tensor | None = None
    features: torch.Tensor | None = None
    feature_first: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.lengths.numel())

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


def encode(
    sentences: Sequence[Sentence],
    vocab: Vocab,
    tags: Sequence[str],
    max_len: int | None = None,
    chars: Vocab | None = None,
    features: Sequence[Features] | None = None,
) -> Encoded:
    """Encode sentences, truncating to `max_len` tokens when given (training only). `features`, one
    [len(sentence), k, 384] tensor a sentence (pretrained.features.word_features), become rows of
    `Encoded.features`; with `pretrained.features.Pieces` a sentence, every piece does (a truncated
    sentence keeps all its pieces: the trained layers see the whole sentence, as the frozen ones did)."""
    tag_index = {t: i for i, t in enumerate(tags)}
    lens = [min(len(s), max_len) if max_len else len(s) for s in sentences]
    width = max(lens, default=1) or 1
    x = torch.zeros((len(sentences), width), dtype=torch.long)
    y = torch.full((len(sentences), width), IGNORE_INDEX, dtype=torch.long)
    for i, (s, n) in enumerate(zip(sentences, lens)):
        x[i, :n] = torch.tensor(vocab.lookup(s.tokens[:n]), dtype=torch.long)
        if s.tags is not None:
            try:
                y[i, :n] = torch.tensor([tag_index[t] for t in s.tags[:n]], dtype=torch.long)
            except KeyError as e:
                raise DistnerError(f"sentence {s.id}: tag {e.args[0]} is not in the tag set") from None
    words = word_chars = None
    if chars is not None:
        forms: dict[str, int] = {}
        words = torch.zeros((len(sentences), width), dtype=torch.long)
        for i, (s, n) in enumerate(zip(sentences, lens)):
            words[i, :n] = torch.tensor([forms.setdefault(t, len(forms) + 1) for t in s.tokens[:n]])
        word_chars = torch.zeros((len(forms) + 1, MAX_WORD_LEN), dtype=torch.long)
        for form, row in forms.items():
            ids = chars.lookup(form[:MAX_WORD_LEN])
            word_chars[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    feature_index = feature_rows = feature_first = None
    if features is not None and any(isinstance(f, Pieces) for f in features):
        pieces = [f for f in features if isinstance(f, Pieces)]
        counts = [len(p.states) for p in pieces]
        feature_rows = torch.cat([torch.zeros((1, 384), dtype=torch.float16), *(p.states for p in pieces)])
        feature_index = torch.zeros((len(sentences), max(counts, default=1) or 1), dtype=torch.long)
        feature_first = torch.zeros((len(sentences), width), dtype=torch.long)
        start = 1
        for i, (p, n) in enumerate(zip(pieces, lens, strict=True)):
            feature_index[i, : len(p.states)] = torch.arange(start, start + len(p.states))
            feature_first[i, :n] = p.firsts[:n]
            start += len(p.states)
    elif features is not None:
        kept = [f[:n] for f, n in zip(features, lens) if isinstance(f, torch.Tensor)]
        pad = torch.zeros((1, *kept[0].shape[1:]) if kept else (1, 1, 384), dtype=torch.float16)
        feature_rows = torch.cat([pad, *(f.to(torch.float16) for f in kept)])
        feature_index = torch.zeros((len(sentences), width), dtype=torch.long)
        start = 1
        for i, n in enumerate(lens):
            feature_index[i, :n] = torch.arange(start, start + n)
            start += n
    return Encoded(
        x,
        y,
        torch.tensor(lens, dtype=torch.long),
        words,
        word_chars,
        feature_index,
        feature_rows,
        feature_first,
    )


class Batch(NamedTuple):
    """One training or evaluation batch, trimmed to its longest sentence.

    `lengths` always stays on the CPU: packing needs it there, and reading it then costs no device
    sync. With character features, `word_chars` [U, W] spells the batch's U distinct words (W its
    longest word) and `word_index` [B, L] points each position at its row. With encoder features,
    `features` [B, L, k, 384] holds each position's frozen encoder states (float16; zeros on padding);
    with trained encoder layers, `features` [B, P, 384] holds the pieces' input states, `piece_mask`
    [B, P] marks real pieces and `piece_first` [B, L] each word's first piece.
    """

    tokens: torch.Tensor
    labels: torch.Tensor
    lengths: torch.Tensor
    word_chars: torch.Tensor | None = None
    word_index: torch.Tensor | None = None
    features: torch.Tensor | None = None
    piece_first: torch.Tensor | None = None
    piece_mask: torch.Tensor | None = None

    def inputs(self) -> tuple[torch.Tensor | None, ...]:
        """The network's inputs after tokens and lengths, in `Tagger.forward`'s order."""
        return self.word_chars, self.word_index, self.features, self.piece_first, self.piece_mask

    def to(self, device: torch.device | str) -> Batch:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=True)

        return Batch(
            move(self.tokens),
            move(self.labels),
            self.lengths,
            *(None if t is None else move(t) for t in self.inputs()),
        )


class BatchDataset(torch.utils.data.Dataset):
    """Whole batches by index list: one tensor slice per batch instead of per-sample collation.

    The big tensors are moved to `device` once; each batch only sends its small index tensors, and
    everything that decides a shape (lengths, distinct words) is read from CPU copies, so building
    a batch never waits for the device.
    """

    def __init__(self, data: Encoded, device: torch.device | str = "cpu"):
        self.lengths = data.lengths
        self.words = data.words
        self.tokens, self.labels = data.tokens.to(device), data.labels.to(device)
        self.word_chars = self.word_lens = None
        if data.word_chars is not None:
            self.word_chars = data.word_chars.to(device)
            self.word_lens = (data.word_chars != 0).sum(1)
        self.feature_index, self.features = data.feature_index, None
        if data.features is not None:  # float16 on the device: half the memory of float32
            self.features = data.features.to(device)
        self.feature_first = self.piece_counts = None
        if data.feature_first is not None and data.feature_index is not None:  # trained encoder layers
            self.feature_first = data.feature_first.to(device)
            self.piece_counts = (data.feature_index > 0).sum(1)
        self.device = torch.device(device)

    def __len__(self) -> int:
        return int(self.lengths.numel())

    def __getitem__(self, idx: list[int]) -> Batch:
        index = torch.as_tensor(idx)
        lengths = self.lengths[index]
        width = max(int(lengths.max()), 1)
        on_dev = index.to(self.device, non_blocking=True)
        tokens, labels = self.tokens[on_dev, :width], self.labels[on_dev, :width]
        feats = first = mask = None
        if self.features is not None and self.feature_index is not None:
            if self.piece_counts is not None and self.feature_first is not None:  # pieces
                rows = self.feature_index[index, : max(int(self.piece_counts[index].max()), 1)]
                mask = (rows > 0).to(self.device, non_blocking=True)
                feats = self.features[rows.to(self.device, non_blocking=True)]
                first = self.feature_first[on_dev, :width]
            else:
                feats = self.features[self.feature_index[index, :width].to(self.device, non_blocking=True)]
        chars = inverse = None
        if self.words is not None and self.word_chars is not None and self.word_lens is not None:
            forms, found = torch.unique(self.words[index, :width], return_inverse=True)
            longest = max(int(self.word_lens[forms].max()), 1)
            chars = self.word_chars[forms.to(self.device, non_blocking=True), :longest]
            inverse = found.to(self.device, non_blocking=True)
        return Batch(tokens, labels, lengths, chars, inverse, feats, first, mask)


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """The classic bucket iterator: shuffle, sort chunks of `chunk_batches` batches by length, cut
    them into batches, shuffle the batch order. Batches then hold sentences of similar length (little
    padding) while every epoch still sees new batches in a new order.

    The order depends only on (seed, epoch): Lightning calls `set_epoch` before each epoch, so a
    resumed fit sees the same batches as an uninterrupted one. Without shuffling, sentences are
    sorted by length once (evaluation). Each batch lists its sentences longest first, the order
    that packing for a BiLSTM needs, so it does no sorting or index copies of its own.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        chunk_batches: int = 64,
    ):
        self.lengths = list(lengths)
        self.batch_size, self.shuffle, self.seed, self.chunk = batch_size, shuffle, seed, chunk_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        n, bs = len(self.lengths), self.batch_size
        longest_first = lambda i: -self.lengths[i]  # noqa: E731 - packing needs no re-sort then
        if not self.shuffle:
            order = sorted(range(n), key=longest_first)
            yield from (order[i : i + bs] for i in range(0, n, bs))
            return
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(n, generator=gen).tolist()
        batches: list[list[int]] = []
        for start in range(0, n, bs * self.chunk):
            part = sorted(perm[start : start + bs * self.chunk], key=longest_first)
            batches += [part[i : i + bs] for i in range(0, len(part), bs)]
        for k in torch.randperm(len(batches), generator=gen).tolist():
            yield batches[k]


def make_loader(
    data: Encoded,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dataset: BatchDataset | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader of length-bucketed `Batch`es (seeded shuffling), built on `device`, or over
    `dataset`: the same split already on a device, shared by several loaders (packed trials)."""
    sampler = BucketBatchSampler(data.lengths.tolist(), batch_size, shuffle, seed)
    dataset = dataset if dataset is not None else BatchDataset(data, device)
    return torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=None)


def padding_share(data: Encoded, sampler: Iterable[list[int]]) -> float:
    """Padding positions / all positions computed over one pass of `sampler`'s batches."""
    real = total = 0
    for idx in sampler:
        lengths = data.lengths[idx]
        real += int(lengths.sum())
        total += int(lengths.max()) * len(idx)
    return 1 - real / max(total, 1)


def read_vectors(path: str | os.PathLike, limit: int = 200_000) -> tuple[list[str], torch.Tensor]:
    """The first `limit` vectors of a fastText `.vec` text file (plain or .gz): words and [N, D].

    The optional `N D` header line is skipped; a malformed line is an error naming file and line.
    The last file read is kept (until it changes on disk): a Ray worker reused for several trials
    parses a large vectors file once. Callers must not modify the returned tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise DistnerError(f"{path}: pretrained vectors file not found")
    st = path.stat()
    return _read_vectors(str(path), st.st_mtime_ns, st.st_size, limit)


@functools.lru_cache(maxsize=1)
def _read_vectors(name: str, mtime_ns: int, size: int, limit: int) -> tuple[list[str], torch.Tensor]:
    path = Path(name)
    words: list[str] = []
    rows: list[list[float]] = []
    dim = None
    for lineno, line in read_lines(path):
        parts = split_columns(line)
        if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            continue  # "count dim" header
        if dim is None:
            dim = len(parts) - 1
        if len(parts) != dim + 1 or dim < 1:
            raise DistnerError(f"{path}:{lineno}: expected a word and {dim} numbers, got {len(parts) - 1}")
        try:
            rows.append([float(v) for v in parts[1:]])
        except ValueError:
            raise DistnerError(f"{path}:{lineno}: not a number in the vector") from None
        words.append(parts[0])
        if len(words) >= limit:
            break
    if not words:
        raise DistnerError(f"{path}:1: no vectors in file")
    return words, torch.tensor(rows, dtype=torch.float32)
