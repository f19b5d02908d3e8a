"""Inference and scoring with a trained model: decoding, `predict_tags`, the one `evaluate` used for
dev, test and any labelled file, and rebuilding a finished run from its folder (`load_run`), used
by `distner evaluate` / `predict`.

Reads: a run folder's `config.yaml` and `model.pt` (or a retrain cell's `final.json` naming one),
CoNLL files. Writes: `<run>/eval-<name>.json` (evaluate_run), a tagged CoNLL file (predict_file).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distner.config import REFERENCE_SEQ_LEN, RunConfig, read_yaml_mapping
from distner.core.errors import DistnerError, one_line
from distner.core.fileio import atomic_write_text, write_json
from distner.core.paths import check_output_file, check_within
from distner.data.conll import Sentence, format_conll, read_conll, split_path, with_granularity
from distner.data.vocab import PAD, UNK, UNK_ID, BatchDataset, BucketBatchSampler, Vocab, encode
from distner.evaluation.metrics import score
from distner.labels import COARSE_TYPES, FINE_TYPES, repair_iob2
from distner.model import runs
from distner.model.tagger import Tagger
from distner.pretrained.e5 import word_vectors
from distner.pretrained.features import Features

EVAL_BATCH = 256  # sentences per evaluation batch (length-sorted, so little padding)


def decode_tags(
    model: Tagger, scores: torch.Tensor, lengths: torch.Tensor, tags: Sequence[str]
) -> list[list[str]]:
    """Tag names per real token, made valid IOB2 (a no-op for the CRF; entity scores unaffected)."""
    return [repair_iob2([tags[j] for j in row]) for row in model.decode(scores, lengths)]


@torch.no_grad()
def predict_tags(
    model: Tagger,
    sentences: Sequence[Sentence],
    vocab: Vocab,
    tags: Sequence[str],
    device: torch.device | str = "cpu",
    batch_size: int = EVAL_BATCH,
    chars: Vocab | None = None,
    features: Sequence[Features] | None = None,
) -> list[list[str]]:
    """Tags for every token of every sentence (no truncation), in input order. A model with
    encoder features gets them from `features` (one tensor a sentence, e.g. from the cache) or
    runs the encoder on the sentences itself."""
    model, vocab = with_unseen_words(model, vocab, sentences)
    model.eval().to(device)
    # sentences without tokens keep their empty tag list; the network needs length >= 1
    keep = [i for i, s in enumerate(sentences) if len(s)]
    feats = None
    if model.cfg.encoder_features:
        if features is None:
            from distner.pretrained.features import word_features

            feats = word_features([sentences[i].tokens for i in keep], model.cfg, device)
        else:
            feats = [features[i] for i in keep]
    enc = encode(
        [Sentence(sentences[i].id, sentences[i].tokens, None) for i in keep], vocab, tags, None, chars, feats
    )
    data = BatchDataset(enc, device)
    out: list[list[str]] = [[] for _ in sentences]
    for idx in BucketBatchSampler(enc.lengths.tolist(), batch_size, shuffle=False):
        b = data[idx]
        logits = model(b.tokens, b.lengths, *b.inputs())
        for i, tag_seq in zip(idx, decode_tags(model, logits, b.lengths, tags)):
            out[keep[i]] = tag_seq
    return out


def with_unseen_words(model: Tagger, vocab: Vocab, sentences: Sequence[Sentence]) -> tuple[Tagger, Vocab]:
    """With subword_vectors, the words of `sentences` the run never saw get their pooled piece
    vectors (new rows on a copy of the network; the trained rows unchanged) instead of <unk>.
    Otherwise the model and vocabulary as they are."""
    if not model.cfg.subword_vectors:
        return model, vocab
    words = list(dict.fromkeys(t for s in sentences for t in s.tokens))
    new = [w for w, i in zip(words, vocab.lookup(words)) if i == UNK_ID and w not in (PAD, UNK)]
    if not new:
        return model, vocab
    trained = model.embedding.weight.detach()
    rows = word_vectors(new, model.cfg.subword_pool).to(trained)
    wider = copy.deepcopy(model, memo={id(model.embedding): model.embedding})  # shared, then replaced
    wider.embedding = nn.Embedding.from_pretrained(
        torch.cat([trained, rows]), freeze=True, padding_idx=model.embedding.padding_idx
    )
    return wider, Vocab((*vocab.itos, *new))


def evaluate(
    model: Tagger,
    sentences: Sequence[Sentence],
    vocab: Vocab,
    tags: Sequence[str],
    seq_len: int = REFERENCE_SEQ_LEN,
    device: torch.device | str = "cpu",
    chars: Vocab | None = None,
    features: Sequence[Features] | None = None,
) -> dict[str, Any]:
    """The one evaluation used for dev, test and any labelled file."""
    gold = labels_of(sentences)
    pred = predict_tags(model, sentences, vocab, tags, device, chars=chars, features=features)
    return score(gold, pred, seq_len)


def labels_of(sentences: Sequence[Sentence], what: str = "gold") -> list[list[str]]:
    """Every sentence's tags; a sentence without any cannot be scored."""
    out = []
    for s in sentences:
        if s.tags is None:
            raise DistnerError(f"sentence {s.id}: evaluation needs {what} tags")
        out.append(list(s.tags))
    return out


@dataclass(frozen=True)
class LoadedRun:
    run_dir: Path
    model: Tagger
    cfg: RunConfig
    vocab: Vocab
    tags: tuple[str, ...]
    lang: str
    granularity: str
    data_dir: str
    chars: Vocab | None = None


def load_run(run_dir: str | os.PathLike) -> LoadedRun:
    """Rebuild a trained model from its run folder (config.yaml + model.pt), strictly: config.yaml
    must hold every config key (a default filled in could silently build another network) and
    model.pt must be readable weights of exactly that network."""
    run = runs.finished_run(run_dir)
    meta = read_yaml_mapping(run / runs.CONFIG)
    weights = run / runs.WEIGHTS
    cfg, vocab, tags, chars, lang, granularity = runs.read_meta(meta, run / runs.CONFIG)
    # unseen words must get vectors, and new text features, from the file it was trained with
    if cfg.model.subword_vectors or cfg.model.encoder_features:
        runs.check_pretrained(meta.get("pretrained"), run / runs.CONFIG)
    model = Tagger(cfg.model, len(vocab), len(tags), len(chars) if chars else 0, tags)
    try:
        model.load_state_dict(runs.read_weights(weights))
    except RuntimeError as e:  # missing, unexpected or differently shaped tensors
        detail = one_line(str(e).partition(":")[2], 200)
        raise DistnerError(f"{weights}: weights do not fit the network in config.yaml ({detail})") from None
    model.eval()
    return LoadedRun(run, model, cfg, vocab, tags, lang, granularity, str(meta.get("data_dir") or ""), chars)


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
    source = str(Path(predictions or path).resolve())
    if input_file is not None and _made_from_another(run.run_dir / f"eval-{name}.json", source):
        # two inputs with one base name (a/test.conll, b/test.conll) keep a file each
        name += "-" + hashlib.sha256(source.encode()).hexdigest()[:8]
    out = check_within(run.run_dir / f"eval-{name}.json", run.run_dir)  # a received run: no link out
    check_output_file(out, "--model", inputs=[path, predictions])
    gold = with_granularity(read_conll(path), run.granularity)
    seq_len = run.cfg.train.scoring_len
    if predictions is not None:
        types = FINE_TYPES if run.granularity == "fine" else COARSE_TYPES
        pred = read_conll(predictions, types=types)
        _check_aligned(gold, pred, predictions)
        metrics = score(labels_of(gold), labels_of(pred, "predicted"), seq_len)
    else:
        metrics = evaluate(run.model, gold, run.vocab, run.tags, seq_len, chars=run.chars)
    metrics["source"] = source
    return name, metrics, write_json(out, metrics, within=run.run_dir)


def _made_from_another(path: Path, source: str) -> bool:
    """Whether an earlier evaluation file at `path` scored another input than `source`."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("source")
    except FileNotFoundError:
        return False
    except (OSError, ValueError, AttributeError):
        return True  # unreadable or not ours: leave it alone
    return recorded != source


def predict_file(run_dir: str | os.PathLike, input_file: str | os.PathLike, output: str | os.PathLike) -> int:
    """Tag `input_file` and write it in MultiCoNER format; returns the number of sentences."""
    run = load_run(run_dir)
    model_files = [Path(run_dir) / runs.FINAL, *runs.own_files(run.run_dir)]
    check_output_file(output, "--output", inputs=[input_file, *model_files])
    # labels, if any, are ignored: accept either granularity's types
    sentences = read_conll(input_file, require_tags=False, types={*FINE_TYPES, *COARSE_TYPES})
    tags = predict_tags(run.model, sentences, run.vocab, run.tags, chars=run.chars)
    atomic_write_text(output, format_conll(sentences, tags))
    return len(sentences)
