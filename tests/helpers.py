"""Plain helpers shared by the test modules (fixtures live in conftest.py; tests import from here,
never from each other)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = Path(__file__).resolve().parent / "fixtures" / "tiny"
REAL_DATA = (ROOT.parent / "shared" / "data" / "multiconer2").resolve()
# Tune search space of the Ray tests: tiny networks, plus the seed's 520 so that the baseline can run
# as trial one (`% epochs`).
SPACE = """
embedding_dim: {choice: [16, 520]}
hidden_dim: {choice: [16, 520]}
epochs: %d
batch_size: {choice: [35, 64]}
lr: {loguniform: [3.0e-3, 3.0e-2]}
max_train_sentences: 300
max_eval_sentences: 150
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run(*args, env=None) -> subprocess.CompletedProcess:
    """`python -m distner ARGS` in a subprocess, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "distner", *map(str, args)], capture_output=True, text=True, env=env
    )


def ray_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server|ray::"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}
