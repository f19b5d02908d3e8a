"""A report cell's PNG figures: the study's best-so-far curve, Optuna's importances, and the final
model's coarse confusion matrix (test).

Reads: nothing (the cell's report entry). Writes: `<out>/<cell>-study.png`, `-importance.png`,
`-confusion.png`, each whole or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distner.core.fileio import write_output
from distner.records import CellReport


def figures(cell: str, c: CellReport, out: Path) -> list[str]:
    """Draw the cell's figures into `out`; their file names, in the order the report shows them."""
    # Figure objects, not pyplot: no backend is chosen for the process and nothing global is kept
    import matplotlib.ticker
    from matplotlib.figure import Figure

    names = []
    curve = c["study"]["best_so_far"]
    if curve:
        fig = Figure(figsize=(6, 3.5))
        ax = fig.subplots()
        ax.plot(range(1, len(curve) + 1), [100 * v for v in curve], marker="o", label="best so far")
        baseline = c["study"].get("baseline_dev_f1")
        if baseline is not None:
            ax.axhline(
                100 * baseline,
                color="grey",
                ls="--",
                label="reference baseline (trial 1)",
            )
        ax.set(xlabel="trial", ylabel="dev entity macro-F1 (%)", title=f"{cell}: study progress")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.legend(loc="lower right")
        fig.tight_layout()
        names.append(_save(fig, out / f"{cell}-study.png"))
    imp = c["study"]["importances"]
    if imp:
        fig = Figure(figsize=(6, 0.4 * len(imp) + 1.2))
        ax = fig.subplots()
        keys = list(imp)[::-1]
        ax.barh(keys, [imp[k] for k in keys])
        ax.set(xlabel="importance (Optuna PED-ANOVA)", title=f"{cell}: what mattered")
        fig.tight_layout()
        names.append(_save(fig, out / f"{cell}-importance.png"))
    cm = c["final"]["coarse_confusion"]
    if cm is None:  # the final model's run folder is not on this machine
        return names
    m = [[v / max(1, sum(row)) for v in row] for row in cm["matrix"]]
    fig = Figure(figsize=(5.5, 4.8))
    ax = fig.subplots()
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cm["labels"])), cm["labels"], rotation=45, ha="right")
    ax.set_yticks(range(len(cm["labels"])), cm["labels"])
    for i, row in enumerate(cm["matrix"]):
        for j, v in enumerate(row):
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if m[i][j] > 0.5 else "black",
            )
    ax.set(xlabel="predicted", ylabel="gold", title=f"{cell}: token confusion, coarse groups (test)")
    fig.colorbar(im, ax=ax, fraction=0.046, label="row share")
    fig.tight_layout()
    names.append(_save(fig, out / f"{cell}-confusion.png"))
    return names


def _save(fig: Any, path: Path) -> str:
    write_output(path, lambda f: fig.savefig(f, format="png", dpi=110))
    return path.name
