"""How much memory a config needs to train, estimated from its sizes alone (no torch): packing
sizes its members by it, and a fit refuses a model that cannot fit before allocating it."""

from __future__ import annotations

import os

from distner.config import SUBWORD_DIM, RunConfig
from distner.core.errors import DistnerError


def training_bytes(cfg: RunConfig, vocab: int, tags: int, longest: int) -> int:
    """A rough upper estimate of one member's device memory: weights, gradients and Adam's two
    moments (4 copies of the parameters), and a training step's activations (kept for backward)."""
    m, t = cfg.model, cfg.train
    dirs = 2 if m.bidirectional else 1
    width = m.embedding_dim + (m.char_channels if m.char_features else 0)
    width += SUBWORD_DIM if m.encoder_features else 0
    lstm = 0
    for layer in range(m.num_layers):
        inp = width if layer == 0 else m.hidden_dim * dirs
        lstm += dirs * 4 * m.hidden_dim * (inp + m.hidden_dim + 2)
    params = vocab * m.embedding_dim + lstm + (m.hidden_dim * dirs + 1) * tags + tags * tags
    steps = t.batch_size * (t.seq_len or longest)
    per_position = width + m.num_layers * dirs * 6 * m.hidden_dim + 3 * tags
    if m.encoder_train_layers:  # each trained BERT layer: its weights, and per word piece (~3 a word,
        # whole sentences) attention and feed-forward activations of 16 x 384 values and 12 x 128 scores
        params += m.encoder_train_layers * 12 * SUBWORD_DIM * SUBWORD_DIM
        per_position += 3 * m.encoder_train_layers * (16 * SUBWORD_DIM + 12 * 128)
    return 4 * (4 * params + 2 * steps * per_position)


def machine_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(cfg: RunConfig, vocab: int, tags: int, longest: int, have: int, where: str) -> None:
    """One line, before anything is allocated, when training `cfg` cannot fit in `have` bytes."""
    need = training_bytes(cfg, vocab, tags, longest)
    if need > have:
        m = cfg.model
        raise DistnerError(
            f"embedding_dim={m.embedding_dim}, hidden_dim={m.hidden_dim}, num_layers={m.num_layers}: "
            f"training needs ~{need / 2**30:.1f} GiB (weights, gradients, Adam state, activations) and "
            f"{where} has {have / 2**30:.1f} GiB; choose smaller sizes"
        )
