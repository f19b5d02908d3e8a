"""Adam and its learning-rate schedule, built the same way for Lightning's loop (`training`) and the
lean trial loop (`engine`), so that both train with the same math (tests/test_engine.py)."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler

from distner.config import TrainConfig
from distner.model.tagger import Tagger


def make_optimizer(
    model: Tagger, t: TrainConfig, total_steps: int
) -> tuple[torch.optim.Adam, LRScheduler | None]:
    """Adam over the tagger (at `lr`) and any trained encoder layers (at `encoder_lr`), and the
    per-step schedule that scales both rates: None for "constant"; "linear" and "cosine" decay
    them to 0 over the run's `total_steps` (epochs x batches), so the last epochs take small steps
    and the dev score settles instead of swinging between epochs."""
    opt = torch.optim.Adam(model.param_groups(t.lr, t.encoder_lr), weight_decay=t.weight_decay)
    total = max(total_steps, 1)
    if t.lr_schedule == "linear":
        return opt, LinearLR(opt, start_factor=1.0, end_factor=0.0, total_iters=total)
    if t.lr_schedule == "cosine":
        return opt, CosineAnnealingLR(opt, T_max=total, eta_min=0.0)
    return opt, None
