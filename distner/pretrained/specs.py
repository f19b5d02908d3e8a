"""What a feature cache file stores per word (`Spec`), for one config or for every config a
search space can pick. Light on purpose (no torch): a study's driver asks which caches to build
before it loads the encoder, and a space without e5 never loads torch there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from distner.config import AUTO, ENCODER_LAYERS, ModelConfig, auto_train_layers, encoder_layer_ids

if TYPE_CHECKING:
    from distner.spaces import Space


class Spec(NamedTuple):
    """What a cache file stores per word: the hidden states of `layers` (ids, 0 = embeddings),
    averaged when `mean`; or, with `pieces`, layer `layers[0]`'s states of every word piece: the
    input of the top layers that `encoder_train_layers` trains."""

    layers: tuple[int, ...]
    mean: bool
    pieces: bool = False


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
