"""Scoring, written once and used for validation, dev and test.

Three views of the same predictions:
- entity level (the official MultiCoNER measure): exact-match spans, per type, micro and macro;
- token level: scikit-learn's classification_report over real tokens only;
- "padded-token" (inflated, for comparison with the class report only): every sentence padded or
  truncated to `seq_len`, padded positions scored as a class of their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from distner.config import REFERENCE_SEQ_LEN
from distner.labels import get_entities

PAD_LABEL = "<pad>"
MONITOR = "val_entity_macro_f1"  # what "best epoch" means everywhere in distner: dev entity macro-F1


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Exact-match span P/R/F1 per type, micro, and macro over types seen in gold or predictions."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g_tags, p_tags in zip(gold, pred):
        if len(g_tags) != len(p_tags):
            raise ValueError(f"sentence lengths differ: {len(g_tags)} gold vs {len(p_tags)} predicted tags")
        gs, ps = set(get_entities(g_tags)), set(get_entities(p_tags))
        n_gold.update(s[0] for s in gs)
        n_pred.update(s[0] for s in ps)
        tp.update(s[0] for s in gs & ps)
    per_type: dict[str, dict[str, float]] = {}
    for t in sorted(set(n_gold) | set(n_pred)):
        p, r, f = _prf(tp[t], n_pred[t], n_gold[t])
        per_type[t] = {"precision": p, "recall": r, "f1": f, "support": n_gold[t], "predicted": n_pred[t]}
    mp, mr, mf = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    k = len(per_type) or 1
    return {
        "entity_micro_precision": mp,
        "entity_micro_recall": mr,
        "entity_micro_f1": mf,
        "entity_macro_precision": sum(v["precision"] for v in per_type.values()) / k,
        "entity_macro_recall": sum(v["recall"] for v in per_type.values()) / k,
        "entity_macro_f1": sum(v["f1"] for v in per_type.values()) / k,
        "per_type": per_type,
    }


def token_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Tag-level report over real tokens (padding never appears here)."""
    from sklearn.metrics import classification_report  # imported when scoring: a second of startup

    y_true = [t for s in gold for t in s]
    y_pred = [t for s in pred for t in s]
    rep = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    return {
        "token_accuracy": rep["accuracy"],
        "token_macro_f1": rep["macro avg"]["f1-score"],
        "token_weighted_f1": rep["weighted avg"]["f1-score"],
    }


def padded_token_scores(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], seq_len: int = REFERENCE_SEQ_LEN
) -> dict:
    """The class report's method, reproduced only to put our numbers beside its published ones.

    Sentences are cut or padded to `seq_len`, and padded positions count as correctly predicted
    `<pad>` tokens (the reference's network learns that trivial mapping), so accuracy and the macro
    average are inflated by padding and by the majority `O` tag.
    """
    from sklearn.metrics import classification_report

    y_true: list[str] = []
    y_pred: list[str] = []
    for g, p in zip(gold, pred):
        pad = [PAD_LABEL] * max(0, seq_len - len(g))
        y_true += list(g[:seq_len]) + pad
        y_pred += list(p[:seq_len]) + pad
    rep = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    return {
        "seed_style_accuracy": rep["accuracy"],
        "seed_style_macro_f1": rep["macro avg"]["f1-score"],
        "seed_style_weighted_f1": rep["weighted avg"]["f1-score"],
        "seed_style_support": len(y_true),
    }


def coarse_confusion(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Token-level confusion between the six coarse groups and O (fine tags are mapped up),
    rows = gold, columns = predicted."""
    from sklearn.metrics import confusion_matrix

    from distner.labels import COARSE_TYPES, FINE_TO_COARSE

    def group(tag: str) -> str:
        return "O" if tag == "O" else FINE_TO_COARSE.get(tag[2:], tag[2:])

    labels = [*COARSE_TYPES, "O"]
    y_true = [group(t) for s in gold for t in s]
    y_pred = [group(t) for s in pred for t in s]
    return {"labels": labels, "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()}


def score(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], seq_len: int = REFERENCE_SEQ_LEN
) -> dict:
    """Everything `metrics.json` holds for one split."""
    out = entity_scores(gold, pred)
    out.update(token_scores(gold, pred))
    out.update(padded_token_scores(gold, pred, seq_len))
    out["coarse_confusion"] = coarse_confusion(gold, pred)
    out["sentences"] = len(gold)
    out["tokens"] = sum(len(s) for s in gold)
    return out
