"""report.md from a report (report.json's contents): the summary table over cells, the comparison
with an earlier report, one section per cell (hyperparameters, candidates, per-type scores, what
tuning bought, importances, figures), and the method.

Reads and writes: nothing (render_markdown returns the text).
"""

from __future__ import annotations

from distner.config import REFERENCE_SEQ_LEN
from distner.records import COMPARED, SELECTED_BY, Against, CellReport, Report
from distner.report.tables import candidates_table, markdown_table, mean_std, tuning_bought_table

METHOD = f"""\
**Method.** Each cell (language x granularity) was tuned on the dev split only: a Ray Tune study
in which Optuna's TPE sampler proposed configurations (the class report's configuration, the
reference, was always trial one) and ASHA stopped weak trials early, all scored by dev entity
macro-F1. The best configuration and the reference baseline were then retrained from scratch with
several seeds and each run's best-dev-epoch model was scored once on the test split; tables show
mean +- standard deviation over seeds. Test data never influenced a choice. **Entity macro-F1** is
the official MultiCoNER measure: exact-match spans (type and both boundaries), F1 per entity type,
averaged over types; micro-F1 pools all spans. **Padded-token** numbers reproduce the class
report's method: token-level scikit-learn scores with every sentence padded or truncated to
{REFERENCE_SEQ_LEN} tokens and padded positions counted as a class of their own. Most positions are
padding or `O`, which any model gets right, so accuracy sits near 0.9 even for a model that finds
no entity at all: those numbers are inflated and are shown only to put ours beside the published
ones. The published figures come from a different test split (the official one), so compare them only loosely.
"""


def render_markdown(report: Report) -> str:
    parts = _summary(report)
    if report.get("against"):
        parts += _against(report["against"])
    for cell, c in report["cells"].items():
        parts += _cell(cell, c)
    parts += ["## Method", "", report["method"]]
    return "\n".join(parts)


def _summary(report: Report) -> list[str]:
    """The title and the table of every cell's test scores beside the baseline's and the published ones."""
    rows = [
        [
            "cell",
            "tuned macro-F1",
            "baseline macro-F1",
            "gain",
            "tuned micro-F1",
            "baseline micro-F1",
            "padded-token acc / macro-F1, ours* ",
            "published acc / macro-F1*",
            "trials",
            "GPU-h",
        ]
    ]
    for cell, c in report["cells"].items():
        ss, pub, st, base, gain = c["tuned"], c["published_seed_style"], c["study"], c["baseline"], c["gain"]
        rows.append(
            [
                cell,
                mean_std(c["tuned"]["entity_macro_f1"]),
                "-" if base is None else mean_std(base["entity_macro_f1"]),
                "-" if gain is None else f"{100 * gain['entity_macro_f1']:+.2f}",
                mean_std(c["tuned"]["entity_micro_f1"]),
                "-" if base is None else mean_std(base["entity_micro_f1"]),
                # a variant whose runs kept only entity scores (older records) has none
                f"{100 * ss['seed_style_accuracy']['mean']:.1f} / "
                f"{100 * ss['seed_style_macro_f1']['mean']:.1f}"
                if "seed_style_accuracy" in ss
                else "-",
                f"{100 * pub['accuracy']:.0f} / {100 * pub['macro_f1']:.0f}",
                "-" if st["trials"] is None else str(st["trials"]),
                "-" if st["gpu_hours"] is None else f"{st['gpu_hours']:.3f}",
            ]
        )
    return [
        "# distner report",
        "",
        "Test-split entity-level scores, mean +- std over retraining seeds (percent).",
        "",
        markdown_table(rows),
        "",
        "\\* inflated token-level numbers (padding counted); published ones are the class report's "
        f"({report['published_source']}), on a different test split.",
        "",
    ]


def _against(a: Against) -> list[str]:
    """This report's tuned scores beside an earlier report's, per cell in both."""
    rows = [["cell", "tuned macro-F1", "earlier tuned", "gain", "tuned micro-F1", "earlier tuned", "gain"]]
    for cell, g in a["cells"].items():
        rows.append(
            [cell]
            + [
                x
                for key in COMPARED
                for x in (
                    mean_std(g[key]["this"]),
                    mean_std(g[key]["earlier"]),
                    f"{100 * g[key]['gain']:+.2f}",
                )
            ]
        )
    return [
        "## Against an earlier report",
        "",
        f"This report's tuned models against the tuned models of `{a['source']}` (test, entity level, "
        "mean +- std over seeds; the gain is the difference of the means).",
        "",
        markdown_table(rows),
        "",
    ]


def _cell(cell: str, c: CellReport) -> list[str]:
    """One cell's section: its runs, hyperparameters, candidates, scores per type, the study, figures."""
    parts = [
        f"## {cell}",
        "",
        f"Seeds {c['seeds']}, trained on {c['train_on']}; final model: `{c['final']['run_dir']}`.",
        "",
    ]
    parts += ["### Winning hyperparameters", "", _hyperparameters(c), ""]
    if len(c.get("candidates", {})) > 1:
        parts += [
            f"### Candidates (picked on {SELECTED_BY}: {c.get('selected')})",
            "",
            candidates_table(c["candidates"], c.get("selected")),
            "",
        ]
    parts += _per_type(c)
    bought = tuning_bought_table(c["study"])
    if bought:
        parts += ["### What tuning this cell bought (dev, inside the study)", "", bought, ""]
    if c["study"]["importances"]:
        imp = ", ".join(f"{k} {v:.2f}" for k, v in c["study"]["importances"].items())
        parts += [f"Optuna parameter importances: {imp}.", ""]
    return parts + [f"![{f}]({f})" for f in c["figures"]] + [""]


def _hyperparameters(c: CellReport) -> str:
    """The tuned values that differ from the reference baseline's (epochs and lr always)."""
    keys = [k for k in c["hyperparameters"]["tuned"] if not k.startswith("max_")]
    hp = [["hyperparameter", "tuned", "reference baseline"]]
    tuned_hp, base_hp = c["hyperparameters"]["tuned"], c["hyperparameters"]["baseline"]
    hp += [
        [k, str(tuned_hp[k]), str(base_hp.get(k, "-"))]
        for k in keys
        if tuned_hp[k] != base_hp.get(k) or k in ("epochs", "lr")
    ]
    return markdown_table(hp)


def _per_type(c: CellReport) -> list[str]:
    """The final model's test scores per entity type, or why there are none."""
    if not c["final"]["per_type"]:
        return [
            f"Per-type scores need the final model's run folder (`{c['final']['run_dir']}`), "
            "which is not on the machine that wrote this report.",
            "",
        ]
    pt = [["type", "precision", "recall", "F1", "support"]]
    pt += [
        [
            t,
            f"{100 * v['precision']:.1f}",
            f"{100 * v['recall']:.1f}",
            f"{100 * v['f1']:.1f}",
            str(v["support"]),
        ]
        for t, v in sorted(c["final"]["per_type"].items())
    ]
    return ["### Per type (final model, test)", "", markdown_table(pt), ""]
