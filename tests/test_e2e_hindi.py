"""End to end on Hindi: `distner train`, `predict`, `evaluate` as a user runs them, on the synthetic
corpus (fast suite) and on the real data (slow)."""

import json

import pytest

from distner.data.conll import read_conll

from .helpers import run_cli


@pytest.mark.integration  # distner's CLI in a subprocess
def test_train_predict_evaluate_on_hindi(data_root, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "train",
        "--lang",
        "hindi",
        "--granularity",
        "fine",
        "--data-dir",
        data_root,
        "--out",
        out,
        "--set",
        "epochs=1",
        "--set",
        "embedding_dim=32",
        "--set",
        "hidden_dim=32",
        "--set",
        "max_train_sentences=2000",
    )
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1" in proc.stderr and "entity macro-F1" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    src = data_root / "hi" / "test.conll.gz"
    gold_s = read_conll(src)
    assert max(len(s) for s in gold_s) > 25  # (what the baseline truncates training sentences to)
    assert test["sentences"] == len(gold_s) and test["tokens"] == sum(map(len, gold_s))  # none truncated
    assert test["seed_style_accuracy"] > test["token_accuracy"]  # padding inflates

    pred = tmp_path / "pred.conll"
    proc = run_cli("predict", "--model", out, "--input", src, "--output", pred)
    assert proc.returncode == 0, proc.stderr
    pred_s = read_conll(pred)
    assert [(s.id, s.tokens) for s in gold_s] == [(s.id, s.tokens) for s in pred_s]

    proc = run_cli("evaluate", "--model", out, "--input", src, "--predictions", pred)
    assert proc.returncode == 0, proc.stderr
    scored = json.loads((out / "eval-input-test-predictions.json").read_text())
    for key in ("entity_macro_f1", "entity_micro_f1", "token_accuracy", "seed_style_macro_f1"):
        assert scored[key] == pytest.approx(test[key])


@pytest.mark.slow
def test_issue_command_learns_entities(real_data, tmp_path):
    """The acceptance command of the foundation issue, on all of Hindi train."""
    proc = run_cli(
        "train",
        "--lang",
        "hindi",
        "--granularity",
        "fine",
        "--data-dir",
        real_data,
        "--out",
        tmp_path,
        "--set",
        "epochs=1",
        "--set",
        "embedding_dim=64",
        "--set",
        "hidden_dim=64",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["test"]["entity_macro_f1"] > 0
