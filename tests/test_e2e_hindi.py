"""End to end on the real Hindi data: `distner train`, `predict`, `evaluate` as a user runs them."""

import json

import pytest

from distner.data import read_conll

from .helpers import run


def test_train_predict_evaluate_on_real_hindi(real_data, tmp_path):
    out = tmp_path / "run"
    proc = run(
        "train",
        "--lang",
        "hindi",
        "--granularity",
        "fine",
        "--data-dir",
        real_data,
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
    assert test["sentences"] == 929 and test["tokens"] == 15255  # every token, none truncated
    assert 0.0 <= test["entity_macro_f1"] <= 1.0
    assert test["seed_style_accuracy"] > test["token_accuracy"]  # padding inflates

    src = real_data / "hi" / "test.conll.gz"
    pred = tmp_path / "pred.conll"
    proc = run("predict", "--model", out, "--input", src, "--output", pred)
    assert proc.returncode == 0, proc.stderr
    gold_s, pred_s = read_conll(src), read_conll(pred)
    assert [(s.id, s.tokens) for s in gold_s] == [(s.id, s.tokens) for s in pred_s]

    proc = run("evaluate", "--model", out, "--input", src, "--predictions", pred)
    assert proc.returncode == 0, proc.stderr
    scored = json.loads((out / "eval-input-test-predictions.json").read_text())
    for key in ("entity_macro_f1", "entity_micro_f1", "token_accuracy", "seed_style_macro_f1"):
        assert scored[key] == pytest.approx(test[key])


@pytest.mark.slow
def test_issue_command_learns_entities(real_data, tmp_path):
    """The acceptance command of the foundation issue, on all of Hindi train."""
    proc = run(
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
