"""What the tests of distner/pretrained/ share: a fresh feature cache per test (the session's
shared one is for tests that only read features), configs with the encoder on, the cache's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from distner.config import ModelConfig, load_config
from distner.pretrained import cache

TRAINED = ("encoder_train_layers=2", "encoder_layers=last2")


@pytest.fixture
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))


def model_cfg(*extra: str) -> ModelConfig:
    return load_config(overrides=["encoder_features=e5", *extra]).model


def cache_files() -> list[Path]:
    return sorted(cache.cache_dir().glob("*.pt"))
