"""Evaluate and predict with a finished run folder (used by `distner evaluate` / `predict`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .data import Sentence, format_conll, read_conll, split_path, with_granularity
from .errors import DistnerError
from .fileio import atomic_write_text, write_json
from .labels import COARSE_TYPES, FINE_TYPES
from .metrics import score
from .paths import RUN_FILES, check_output_file
from .training import evaluate, load_run, predict_tags


def _check_aligned(gold: list[Sentence], pred: list[Sentence], pred_path: str | os.PathLike) -> None:
    if len(gold) != len(pred):
        raise DistnerError(f"{pred_path}: {len(pred)} sentences, but the gold file has {len(gold)}")
    for g, p in zip(gold, pred):
        if g.id != p.id or g.tokens != p.tokens:
            raise DistnerError(f"{pred_path}: sentence {p.id} does not match gold sentence {g.id}")
        if p.tags is None:
            raise DistnerError(f"{pred_path}: sentence {p.id} has no predicted tags")


def evaluate_run(
    run_dir: str | os.PathLike,
    split: str | None = None,
    input_file: str | os.PathLike | None = None,
    predictions: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> tuple[str, dict[str, Any], Path]:
    """Score a run on a split (default test) or labelled file; returns (name, metrics, written path)."""
    run = load_run(run_dir)
    if input_file is not None:
        path, name = Path(input_file), f"input-{Path(input_file).name.split('.')[0]}"
    else:
        split = split or "test"
        path = split_path(data_dir or run.data_dir or None, run.lang, split)
        name = split
    name += "-predictions" if predictions is not None else ""
    out = check_output_file(run.run_dir / f"eval-{name}.json", "--model", inputs=[path, predictions])
    gold = with_granularity(read_conll(path), run.granularity)
    seq_len = run.cfg.train.seq_len or 25
    if predictions is not None:
        types = FINE_TYPES if run.granularity == "fine" else COARSE_TYPES
        pred = read_conll(predictions, types=types)
        _check_aligned(gold, pred, predictions)
        metrics = score([list(s.tags) for s in gold], [list(s.tags) for s in pred], seq_len)  # type: ignore[arg-type]
    else:
        metrics = evaluate(run.model, gold, run.vocab, run.tags, seq_len, chars=run.chars)
    metrics["source"] = str(Path(predictions or path).resolve())
    return name, metrics, write_json(out, metrics)


def predict_file(run_dir: str | os.PathLike, input_file: str | os.PathLike, output: str | os.PathLike) -> int:
    """Tag `input_file` and write it in MultiCoNER format; returns the number of sentences."""
    run = load_run(run_dir)
    model_files = [Path(run_dir) / "final.json", *(run.run_dir / f for f in RUN_FILES)]
    check_output_file(output, "--output", inputs=[input_file, *model_files])
    # labels, if any, are ignored: accept either granularity's types
    sentences = read_conll(input_file, require_tags=False, types={*FINE_TYPES, *COARSE_TYPES})
    tags = predict_tags(run.model, sentences, run.vocab, run.tags, chars=run.chars)
    atomic_write_text(output, format_conll(sentences, tags))
    return len(sentences)
