"""The layout a newcomer relies on: docs/index.md's module map names every module of distner/ and
no more, and a module's unit tests live in its file (tests/test_<module>.py)."""

from __future__ import annotations

import ast
import re

from .helpers import ROOT

MODULES = {p.stem for p in (ROOT / "distner").glob("*.py")} - {"__init__", "__main__"}
# test files named for no one module: what crosses modules through real processes and Ray (every
# test in them integration or slow) ...
ACROSS = {"bad_input", "folders", "full_disk", "multinode", "e2e_hindi", "wheel"}
# ... and checks of the repository itself rather than of a module
REPOSITORY = {
    "layout": "this layout",
    "docs": "the docs' commands",
    "results": "the committed results/",
    "synthetic": "the tests' synthetic corpus (tests/synthetic.py)",
}


def test_the_module_map_names_every_module():
    text = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    block = text[text.index("| module | concern |") :].split("\n\n")[0]
    named = set(re.findall(r"`(\w+)\.py`", block))
    assert named == MODULES


def _tier_marks(node: ast.AST) -> set[str]:
    """integration/slow marks of a module-level `pytestmark` or a test's decorators."""
    return set(re.findall(r"pytest\.mark\.(integration|slow)", ast.unparse(node)))


def test_unit_tests_live_in_their_modules_file():
    stray = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        name = path.stem.removeprefix("test_")
        assert name in MODULES | ACROSS | REPOSITORY.keys(), f"{path.name}: named for no module of distner"
        if name not in ACROSS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(_tier_marks(n) for n in tree.body if ast.unparse(n).startswith("pytestmark =")):
            continue  # the whole file
        tests = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
        stray += [f"{path.name}::{t.name}" for t in tests if not any(map(_tier_marks, t.decorator_list))]
    assert not stray, f"unit tests outside their module's file: {stray}"


def test_the_config_table_names_every_key():
    """docs/index.md's "Config keys at a glance" is the one place that lists them all."""
    from distner.config import FIELD_TYPES

    text = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    section = text[text.index("## Config keys at a glance") :].split("\n## ")[0]
    rows = [line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")]
    assert rows == list(FIELD_TYPES)  # every key once, in the order `distner` writes config.yaml
