"""A report cell's figures: the study's curve, the importances and the confusion matrix, as PNG
files named for the cell; the confusion matrix only when the final model's scores are at hand."""

from __future__ import annotations

import copy

from distner.records import read_report
from distner.report.figures import figures

from ..helpers import ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_cell_has_its_three_figures_or_two_without_the_final_run(tmp_path):
    cell, c = next(iter(read_report(ROOT / "results" / "report.json")["cells"].items()))
    assert c["study"]["best_so_far"] and c["study"]["importances"] and c["final"]["coarse_confusion"]
    names = figures(cell, c, tmp_path)
    assert names == [f"{cell}-study.png", f"{cell}-importance.png", f"{cell}-confusion.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert all((tmp_path / n).read_bytes().startswith(PNG) for n in names)
    gone = copy.deepcopy(c)
    gone["final"]["coarse_confusion"] = None
    (tmp_path / "no-run").mkdir()
    assert figures(cell, gone, tmp_path / "no-run") == names[:2]
