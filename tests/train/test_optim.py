"""train/optim.py: Adam's two rates (tagger, trained encoder layers) and the schedule that scales both."""

from __future__ import annotations

import math

import pytest
import torch

from distner.config import ModelConfig, TrainConfig
from distner.model.tagger import Tagger
from distner.train.optim import make_optimizer


def _rates(opt: torch.optim.Optimizer) -> list[float]:
    return [g["lr"] for g in opt.param_groups]


@pytest.fixture
def model() -> Tagger:
    return Tagger(ModelConfig(16, 8), vocab_size=20, num_tags=5)


def test_constant_is_plain_adam(model):
    opt, schedule = make_optimizer(model, TrainConfig(lr=0.01), total_steps=7)
    assert isinstance(opt, torch.optim.Adam) and schedule is None and _rates(opt) == [0.01]


@pytest.mark.parametrize(
    ("name", "at_half"),
    [("linear", 0.5), ("cosine", 0.5 * (1 + math.cos(math.pi / 2)))],
)
def test_a_schedule_reaches_zero_at_the_last_step(model, name, at_half):
    """Over total_steps (epochs x batches) steps: the rate starts at lr, is at the schedule's half-way value
    after half of them and at 0 after the last."""
    opt, schedule = make_optimizer(model, TrainConfig(lr=0.01, epochs=2, lr_schedule=name), total_steps=10)
    assert schedule is not None and _rates(opt) == [0.01]
    seen = []
    for _ in range(10):
        opt.step()
        schedule.step()
        seen.append(_rates(opt)[0])
    assert seen[4] == pytest.approx(0.01 * at_half)
    assert seen[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(seen, seen[1:]))  # never rises
