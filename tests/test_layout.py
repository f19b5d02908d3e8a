"""The module map in docs/index.md names every module of distner/, and no more: a newcomer reads
the layout in one place."""

from __future__ import annotations

import re

from .helpers import ROOT


def test_the_module_map_names_every_module():
    text = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    block = text[text.index("| module | concern |") :].split("\n\n")[0]
    named = set(re.findall(r"`(\w+)\.py`", block))
    modules = {p.stem for p in (ROOT / "distner").glob("*.py")} - {"__init__", "__main__"}
    assert named == modules
