"""Which precision an accelerator can train with. Light on purpose (no torch): a study's driver
checks a space with it before any trial starts, without loading Lightning."""

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
