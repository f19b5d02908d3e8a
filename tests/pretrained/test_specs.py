"""What a feature cache file stores per word: a config's spec, and every spec a space can pick."""

from __future__ import annotations

from distner.pretrained.specs import Spec, space_specs
from distner.spaces import load_space

from ..helpers import ROOT


def test_space_specs_are_every_layers_and_mix_a_study_can_pick(tmp_path):
    assert space_specs(load_space(ROOT / "tune_spaces" / "extended.yaml")) == []
    specs = space_specs(load_space(ROOT / "tune_spaces" / "pretrained.yaml"))
    assert specs == [Spec((9, 10, 11, 12), True), Spec((9, 10, 11, 12), False), Spec((12,), True)]
    fixed = tmp_path / "s.yaml"
    fixed.write_text("encoder_features: e5\nencoder_layers: last2\nhidden_dim: {choice: [8, 520]}\n")
    assert space_specs(load_space(fixed)) == [Spec((11, 12), True)]
    # trained top layers: their input, the pieces of the layer below them
    fixed.write_text("encoder_features: e5\nencoder_layers: last\nencoder_train_layers: {choice: [0, 2]}\n")
    assert space_specs(load_space(fixed)) == [Spec((12,), True), Spec((10,), True, True)]
    # auto: the layers each encoder_layers value reads, trained (their input, the layer below them)
    fixed.write_text(
        "encoder_features: e5\nencoder_layers: {choice: [last4, 3-5]}\n"
        "encoder_train_layers: {choice: [0, auto]}\n"
    )
    assert space_specs(load_space(fixed)) == [
        Spec((9, 10, 11, 12), True),
        Spec((3, 4, 5), True),
        Spec((8,), True, True),
        Spec((2,), True, True),
    ]
    fixed.write_text(
        "encoder_features: e5\nencoder_layers: {choice: [last4, last8]}\nencoder_train_layers: auto\n"
    )
    assert space_specs(load_space(fixed)) == [Spec((8,), True, True), Spec((4,), True, True)]
