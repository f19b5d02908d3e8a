"""A built wheel, installed outside the checkout, runs a real smoke study from another folder: the
search spaces ship inside the package (slow: builds a wheel and a virtual environment)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .helpers import ROOT

pytestmark = pytest.mark.slow


def _build_wheel(tmp: Path) -> Path:
    # build from a copy, so that nothing (build/, egg-info) is written into the checkout
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "distner", "tune_spaces"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    import setuptools

    # setuptools >= 70.1 builds wheels itself: then no download is needed
    isolation = (
        [] if tuple(map(int, setuptools.__version__.split(".")[:2])) < (70, 1) else ["--no-build-isolation"]
    )
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", tmp / "dist", src]
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("distner-*.whl")
    return wheel


def test_wheel_runs_a_study_from_another_folder(tmp_path, synthetic_data, no_ray_left):
    wheel = _build_wheel(tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)  # torch, ray, ... from this Python
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DISTNER_DATA")}
    # --ignore-installed: the checkout's own (editable) distner is visible through the system site
    install = [py, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", wheel]
    subprocess.run(install, env=env, check=True, timeout=300)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = subprocess.run(
        [
            py,
            "-c",
            "import distner, distner.spaces as s; print(distner.__file__, s.builtin_space('smoke.yaml'))",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stderr[-2000:]
    where = found.stdout.split()
    assert all(Path(p).is_relative_to(env_dir) for p in where), where  # the wheel's copy, not the checkout

    cmd = [env_dir / "bin" / "distner", "tune", "--lang", "hindi", "--smoke", "--data-dir", synthetic_data]
    done = subprocess.run(
        [str(c) for c in cmd], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((elsewhere / "runs" / "hi-fine-smoke" / "summary.json").read_text())
    assert Path(summary["space"]).name == "smoke.yaml" and summary["trials"] >= 1, summary
    assert (elsewhere / "best" / "hi-fine.yaml").is_file()
