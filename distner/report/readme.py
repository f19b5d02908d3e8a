"""Result tables in a Markdown file (the README), generated from experiments' report.json files.

A table is the text between two comments, the first naming the experiments it shows:

    <!-- distner table: experiments/pretrained.yaml experiments/pretrained-focus.yaml
         against experiments/six-cells.yaml -->
    ...generated...
    <!-- end distner table -->

Each cell's row is the final model picked on dev: each experiment's report picks among its own
variants, and a table of several experiments (rounds) takes the pick with the best dev mean. The
row names the experiment and variant, its dev and test macro-F1 over seeds, the reference baseline
retrained beside it and, with `against`, another experiment's pick for the same cell and the gain
over it. `distner tables FILE` rewrites the tables; `--check` fails when one differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from distner.core.errors import DistnerError
from distner.core.fileio import atomic_write_text
from distner.experiments import load_experiment
from distner.labels import Cell
from distner.records import REPORT_JSON, CellReport, Stat, read_report
from distner.report.tables import markdown_table, mean_std

START = re.compile(r"<!-- distner table: (?P<spec>.*?) -->\n", re.DOTALL)
END = "<!-- end distner table -->"
NAMES = {"en": "English", "hi": "Hindi", "bn": "Bengali"}


@dataclass(frozen=True)
class Pick:
    experiment: str
    variant: str
    cell: CellReport

    @property
    def dev(self) -> Stat:
        return self.cell["candidates"][self.variant]["dev"]["entity_macro_f1"]

    @property
    def test(self) -> Stat:
        return self.cell["candidates"][self.variant]["test"]["entity_macro_f1"]


def _reports(paths: list[str], source: str) -> list[tuple[str, dict[str, CellReport]]]:
    out = []
    for path in paths:
        exp = load_experiment(path)
        report = Path(exp.publish) / REPORT_JSON
        if not report.is_file():
            raise DistnerError(f"{source}: {report}: no report yet; run distner pipeline --experiment {path}")
        out.append((exp.name, dict(read_report(report)["cells"])))
    return out


def _pick(reports: list[tuple[str, dict[str, CellReport]]], cell: str) -> Pick | None:
    """The cell's final model across the experiments: each one's own pick, the best on dev."""
    picks = [
        Pick(name, c["selected"], c)
        for name, cells in reports
        if (c := cells.get(cell)) is not None and "selected" in c and "candidates" in c
    ]
    return max(picks, key=lambda p: p.dev["mean"], default=None)


def render(spec: str, source: str = "table") -> str:
    """The Markdown table a spec (experiment files, then optionally `against` and more) names."""
    words = spec.split()
    shown, against = (
        (words, [])
        if "against" not in words
        else (
            words[: words.index("against")],
            words[words.index("against") + 1 :],
        )
    )
    if not shown:
        raise DistnerError(f"{source}: a table names at least one experiment file")
    reports, earlier = _reports(shown, source), _reports(against, source) if against else []
    order = list(dict.fromkeys(c for _, cells in reports for c in cells))
    head = ["cell", "final model (experiment: variant)", "dev macro-F1", "test macro-F1"]
    head += ["against: test", "gain"] if earlier else []
    head += ["reference baseline: test", "gain over it"]
    rows = [head]
    for cell in order:
        pick = _pick(reports, cell)
        if pick is None:
            continue
        c = Cell.parse(cell)
        sets = pick.cell["candidates"][pick.variant]["set"]
        what = f"{pick.experiment}: {pick.variant}" + (
            f" ({', '.join(f'{k}={v}' for k, v in sets.items())})" if sets else ""
        )
        row = [f"{NAMES[c.lang]} {c.granularity}", what, mean_std(pick.dev), mean_std(pick.test)]
        if earlier:
            old = _pick(earlier, cell)
            row += ["-", "-"] if old is None else [mean_std(old.test), _gain(pick.test, old.test)]
        base = pick.cell["baseline"]
        row += (
            ["-", "-"]
            if base is None
            else [mean_std(base["entity_macro_f1"]), _gain(pick.test, base["entity_macro_f1"])]
        )
        rows.append(row)
    return markdown_table(rows) + "\n"


def _gain(a: Stat, b: Stat) -> str:
    return f"{100 * (a['mean'] - b['mean']):+.2f}"


def sync(path: str | Path, check: bool = False) -> list[str]:
    """Rewrite every table in `path` (or, with `check`, only say which differ): the specs of the
    tables that were (or would be) changed."""
    path = Path(path)
    if not path.is_file():
        raise DistnerError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8")
    out, changed, pos = [], [], 0
    for m in START.finditer(text):
        end = text.find(END, m.end())
        if end < 0:
            line = text.count("\n", 0, m.start()) + 1
            raise DistnerError(f"{path}:{line}: a table with no '{END}' after it")
        spec = " ".join(m.group("spec").split())
        table = render(spec, f"{path}:{text.count(chr(10), 0, m.start()) + 1}")
        if text[m.end() : end] != table:
            changed.append(spec)
        out += [text[pos : m.end()], table]
        pos = end
    out.append(text[pos:])
    if changed and not check:
        atomic_write_text(path, "".join(out))
    return changed
