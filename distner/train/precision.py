"""Which accelerator a run trains on and which precision it can train with. Light on purpose (torch
only inside `select_accelerator`, no Lightning): a study's driver checks a space with it before any
trial starts, and `distner train` checks its config before loading Lightning."""

from __future__ import annotations

from distner.core.errors import DistnerError


def check_precision(precision: str, accelerator: str) -> None:
    """16-bit AMP is a GPU's: on a CPU Lightning runs bf16-mixed instead, and the run would record
    a precision it did not train with."""
    if precision == "16-mixed" and accelerator == "cpu":
        raise DistnerError(
            "precision=16-mixed: needs a GPU (on a CPU Lightning would run bf16-mixed instead); "
            "set precision=bf16-mixed or 32"
        )


def select_accelerator(accelerator: str) -> str:
    """The device kind a run trains on, for --accelerator auto, cpu or gpu (gpu where no CUDA device
    is visible is an error); torch is imported only to look for one."""
    if accelerator == "cpu":
        return accelerator
    import torch

    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise DistnerError("--accelerator gpu: no CUDA device is visible")
    return accelerator
