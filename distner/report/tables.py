"""Every table distner prints or writes: plain text for the terminal (`table`) and Markdown for
report.md (`markdown_table`), with the rows of metrics, per-type scores, studies and retraining."""

from __future__ import annotations

import math
from typing import Any

from distner.config import REFERENCE_SEQ_LEN
from distner.records import Candidate, RetrainRecord, Stat, StudyFacts, StudySummary, start_label

COLUMNS = (
    ("entity_macro_f1", "entity macro-F1"),
    ("entity_micro_f1", "entity micro-F1"),
    ("token_accuracy", "token acc"),
    ("seed_style_macro_f1", "padded-token macro-F1*"),
    ("seed_style_accuracy", "padded-token acc*"),
)


def table(rows: list[list[str]]) -> str:
    """Aligned plain-text columns (the first left-aligned, the rest right-aligned) under a rule."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def mean_std(d: Stat | dict[str, Any]) -> str:
    """A {mean, std} score over seeds in percent: "75.66 +- 0.41"."""
    return f"{100 * d['mean']:.2f} +- {100 * d['std']:.2f}"


def pct(v: float | None) -> str:
    """A 0..1 score in percent, "-" when missing (None or NaN: a study with no finished trial)."""
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"


def markdown_table(rows: list[list[str]]) -> str:
    """A GitHub Markdown table: the first row is the header."""
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def metrics_table(metrics: dict[str, Any]) -> str:
    """One row per split present (dev, test, or an evaluated file)."""
    rows = [["split", *(label for _, label in COLUMNS)]]
    for split, m in metrics.items():
        if isinstance(m, dict) and "entity_macro_f1" in m:
            rows.append([split, *(f"{100 * m[k]:.2f}" for k, _ in COLUMNS)])
    note = "* inflated: the class report's token-level method, padding counted (see docs/metrics.md)"
    return table(rows) + "\n" + note


def study_table(s: StudySummary) -> str:
    """One row from a study's summary.json: best and baseline dev F1, trials by state, time."""
    rows = [
        [
            "study",
            "best dev F1",
            "baseline dev F1",
            "trials",
            "completed",
            "stopped early",
            "failed",
            "not run",
            "wall",
            "active",
            "GPU-h",
        ],
        [
            s["study"],
            pct(s["best_dev_f1"]),
            pct(s["baseline_dev_f1"]),
            str(s["trials"]),
            str(s["completed"]),
            str(s["stopped_early"]),
            str(s["failed"] + s["diverged"]),
            str(s["not_run"]),
            "-" if s["wall_seconds"] is None else f"{s['wall_seconds']:.0f}s",
            "-" if s.get("active_seconds") is None else f"{s['active_seconds']:.0f}s",
            f"{s['gpu_hours']:.3f}",
        ],
    ]
    return table(rows)


def tuning_bought_table(st: StudyFacts) -> str | None:
    """Markdown rows of a study's tuned winner, its warm starts (configs transferred, e.g. another
    cell's winner or a study's rank-N trial, as --start-from spells them) and the reference
    baseline: dev score and epochs run. None without warm starts."""
    if not st.get("start_from") or st.get("best_dev_f1") is None:
        return None
    epochs = lambda v: "-" if v is None else str(v)  # noqa: E731
    rows = [["study trial", "dev entity macro-F1", "epochs run"]]
    # a warm start can win its cell's study outright: then the cell's tuning found nothing better
    same = [start_label(x) for x in st["start_from"] if x.get("trial") and x["trial"] == st.get("best_trial")]
    winner = f"tuned winner (= warm start `{same[0]}`)" if same else "tuned winner"
    rows.append([winner, pct(st["best_dev_f1"]), epochs(st.get("best_epochs_run"))])
    rows += [
        [f"warm start `{start_label(x)}`", pct(x["best_dev_f1"]), epochs(x["epochs_run"])]
        for x in st["start_from"]
    ]
    if st.get("baseline_dev_f1") is not None:
        rows.append(
            [
                "reference baseline (trial 1)",
                pct(st["baseline_dev_f1"]),
                epochs(st.get("baseline_epochs_run")),
            ]
        )
    note = "Epochs run: a trial that ASHA stopped early was scored after fewer epochs."
    return markdown_table(rows) + "\n\n" + note


def retrain_table(r: RetrainRecord) -> str:
    """One row per variant of a cell's retrain.json: test entity F1, mean +- std over seeds."""
    rows = [["variant", "test entity macro-F1", "test entity micro-F1", "seeds"]]
    for name, v in r["variants"].items():
        t = v["test"]
        rows.append(
            [name, mean_std(t["entity_macro_f1"]), mean_std(t["entity_micro_f1"]), str(len(v["runs"]))]
        )
    return table(rows)


def stats_table(per_split: dict[str, dict[str, Any]]) -> str:
    """`distner data stats`: one row per split of data.corpus_stats' counts."""
    rows = [
        ["split", "sentences", "tokens", "entities", "len p50", "p95", "max", f">{REFERENCE_SEQ_LEN} tokens"]
    ]
    for split, s in per_split.items():
        ln = s["length"]
        rows.append(
            [
                split,
                *(str(s[k]) for k in ("sentences", "tokens", "entities")),
                *(str(ln[k]) for k in ("p50", "p95", "max")),
                f"{100 * s[f'truncated_at_{REFERENCE_SEQ_LEN}']:.1f}%",
            ]
        )
    return table(rows)


def candidates_table(candidates: dict[str, Candidate], selected: str | None) -> str:
    """The variants a final model was picked among: what each sets, dev and test macro-F1 over seeds."""
    rows = [["variant", "sets", "seeds", "dev macro-F1", "test macro-F1", "test micro-F1"]]
    for name, c in candidates.items():
        sets = ", ".join(f"{k}={v}" for k, v in c["set"].items()) or "-"
        rows.append(
            [
                f"**{name}** (picked)" if name == selected else name,
                sets,
                str(c["test"]["entity_macro_f1"]["n"]),
                *(
                    mean_std(scores[key]) if key in scores else "-"  # old records kept some scores
                    for scores, key in (
                        (c["dev"], "entity_macro_f1"),
                        (c["test"], "entity_macro_f1"),
                        (c["test"], "entity_micro_f1"),
                    )
                ),
            ]
        )
    return markdown_table(rows)
