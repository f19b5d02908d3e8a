"""The network for a fit: built from its config and its encoded inputs, pretrained vectors copied
in. Reads and writes nothing."""

from __future__ import annotations

import copy

import torch

from distner.config import RunConfig
from distner.data.encoded import EncodedCorpus
from distner.model.tagger import Tagger
from distner.sizes import check_fits, machine_bytes


def build_model(cfg: RunConfig, data: EncodedCorpus) -> Tagger:
    """The network for a config, with pretrained vectors copied in (and frozen) when asked."""
    longest = max((len(s) for s in data.dev_sentences), default=1)
    check_fits(cfg, len(data.vocab), len(data.tags), longest, machine_bytes(), "this machine")
    # a copy: packed members that share the prepared data train their own layers
    top = copy.deepcopy(data.encoder_top) if cfg.model.encoder_train_layers else None
    model = Tagger(
        cfg.model, len(data.vocab), len(data.tags), len(data.chars) if data.chars else 0, data.tags, top
    )
    if data.vectors is not None:
        ids, vecs = data.vectors
        with torch.no_grad():
            model.embedding.weight[ids] = vecs
        model.embedding.weight.requires_grad_(not cfg.model.freeze_embeddings)
    return model
