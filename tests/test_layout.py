"""The layout a newcomer relies on: docs/index.md's table of the code names every module of
distner/ in its package and no more, tests mirror the package (tests/<package>/test_<module>.py,
both ways), and the import rule holds (lint-imports, and a planted upward import breaks it)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys

import pytest

from .helpers import ROOT

PACKAGE = ROOT / "distner"
# {"": root modules, "tune": modules of distner/tune/, ...}, without __init__/__main__ and the
# flat layout's aliases
MODULES: dict[str, set[str]] = {
    ("" if d == PACKAGE else d.name): {p.stem for p in d.glob("*.py")} - {"__init__", "__main__", "_moved"}
    for d in [PACKAGE, *(d for d in PACKAGE.iterdir() if (d / "__init__.py").is_file())]
    if d.name != "tune_spaces"
}
# test files named for no one module: what crosses modules through real processes and Ray (every
# test in them integration or slow) ...
ACROSS = {"bad_input", "folders", "full_disk", "multinode", "e2e_hindi", "wheel", "machine_shapes"}
# ... and checks of the repository itself rather than of a module
REPOSITORY = {
    "layout": "this layout",
    "docs": "the docs' commands",
    "results": "the committed results/",
    "synthetic": "the tests' synthetic corpus (tests/synthetic.py)",
}
# modules with no test file of their own, and the file whose tests cover them
COVERED_ELSEWHERE = {
    "core/errors": "tests/test_bad_input.py (every one-line error)",
    "core/extras": "tests/pretrained/test_e5.py, tests/pretrained/test_encoder.py (without the extra)",
    "core/fileio": "tests/test_full_disk.py, tests/test_folders.py (atomic writes, full disk)",
    "core/flags": "tests/test_options.py, tests/cli/test_main.py (flags built from options)",
    "core/paths": "tests/test_folders.py (output paths)",
    "data/encoded": "tests/pretrained/test_e5.py, tests/train/test_engine.py, tests/pretrained/test_cache.py",
    "evaluation/evaluate": "tests/model/test_runs.py, tests/cli/test_main.py (evaluate, predict)",
    "model/build": "tests/pretrained/test_e5.py, tests/train/test_fit.py",
    "report/tables": "tests/report/test_markdown.py (report.md's tables), tests/tune/test_driver.py",
    "sizes": "tests/tune/test_packed.py (member sizes)",
    "train/checkpoints": "tests/tune/test_driver.py (checkpoint_every)",
    "train/precision": "tests/tune/test_driver.py, tests/cli/test_main.py (16-mixed on a CPU)",
    "tune/callback": "tests/tune/test_driver.py (each epoch reported, checkpoints a resume continues from)",
    "tune/study": "tests/tune/test_driver.py (a study's files)",
    "tune/trial": "tests/tune/test_driver.py (the trainable)",
}


def _name(package: str, module: str) -> str:
    return f"{package}/{module}" if package else module


def test_the_code_table_names_every_module_in_its_package():
    text = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    section = text[text.index("## The code") :].split("\n## ")[0]
    named: dict[str, set[str]] = {}
    for row in section.splitlines():
        m = re.match(r"\| `distner/(\w*)/?` [^|]*\| ([^|]*)\|", row)
        if m:
            named[m.group(1)] = set(re.findall(r"`(\w+)\.py`", m.group(2)))
    assert named == MODULES


def _tier_marks(node: ast.AST) -> set[str]:
    """integration/slow marks of a module-level `pytestmark` or a test's decorators."""
    return set(re.findall(r"pytest\.mark\.(integration|slow)", ast.unparse(node)))


def test_tests_mirror_the_package():
    """Each test file is named for a module of the package its folder mirrors, and each module has
    a test file or names the file that covers it."""
    tests = ROOT / "tests"
    folders = {d.name for d in tests.iterdir() if (d / "__init__.py").is_file()}
    assert folders == set(MODULES) - {""}, "tests/<package>/ for each package of distner/"
    tested = set()
    for path in sorted(tests.rglob("test_*.py")):
        package = "" if path.parent == tests else path.parent.name
        name = path.stem.removeprefix("test_")
        if package == "" and name in ACROSS | REPOSITORY.keys():
            continue
        assert name in MODULES[package], f"{path.relative_to(ROOT)}: named for no module of distner/{package}"
        tested.add(_name(package, name))
    untested = {_name(p, m) for p, ms in MODULES.items() for m in ms} - tested
    assert untested == set(COVERED_ELSEWHERE), "a module's tests: tests/<package>/test_<module>.py"


def test_unit_tests_live_in_their_modules_file():
    stray = []
    for name in sorted(ACROSS):
        path = ROOT / "tests" / f"test_{name}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(_tier_marks(n) for n in tree.body if ast.unparse(n).startswith("pytestmark =")):
            continue  # the whole file
        tests = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
        stray += [f"{path.name}::{t.name}" for t in tests if not any(map(_tier_marks, t.decorator_list))]
    assert not stray, f"unit tests outside their module's file: {stray}"


def _lint_imports(root) -> subprocess.CompletedProcess:
    lint = shutil.which("lint-imports") or pytest.fail("lint-imports not installed (the dev extra has it)")
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    return subprocess.run([lint, "--no-cache"], cwd=root, capture_output=True, text=True, env=env)


def test_packages_import_one_way_and_an_upward_import_is_caught(tmp_path):
    """The contract in pyproject.toml holds for distner/; a copy with one upward import (core
    reaching up into tune) breaks it, and lint-imports names the import."""
    assert _lint_imports(ROOT).returncode == 0, _lint_imports(ROOT).stdout
    copy = tmp_path / "copy"
    shutil.copytree(PACKAGE, copy / "distner", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    planted = copy / "distner" / "core" / "paths.py"
    planted.write_text(
        planted.read_text() + "\n\ndef _up() -> None:\n    from distner.tune import driver  # noqa\n"
    )
    proc = _lint_imports(copy)
    assert proc.returncode != 0 and "distner.core.paths -> distner.tune.driver" in proc.stdout, proc.stdout


def test_the_config_table_names_every_key():
    """docs/index.md's "Config keys at a glance" is the one place that lists them all."""
    from distner.config import FIELD_TYPES

    text = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    section = text[text.index("## Config keys at a glance") :].split("\n## ")[0]
    rows = [line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")]
    assert rows == list(FIELD_TYPES)  # every key once, in the order `distner` writes config.yaml


# what must import without torch, Ray, Optuna, Lightning, matplotlib or scikit-learn: the CLI starts
# (and checks its inputs) before any of them loads, a study's checks run before Ray starts, report
# reads files only, a packed trial's thin process stays small
LIGHT = [
    *(f"distner.core.{m}" for m in sorted(MODULES["core"])),
    *(f"distner.{m}" for m in sorted(MODULES[""])),
    *(f"distner.{p}" for p in sorted(MODULES) if p),  # no package __init__ imports its modules
    "distner.cli.main",
    "distner.workflow.pipeline",
    "distner.workflow.retrain",
    "distner.report.render",
    "distner.report.facts",
    "distner.report.figures",
    "distner.report.markdown",
    "distner.tune.driver",
    "distner.tune.trial",  # a study's driver imports it to hand Ray the trainable
    "distner.tune.ray_runtime",
    "distner.pretrained.specs",
    "distner.train.precision",
    "distner.tune.study",
    "distner.model.runs",
    "distner.data.conll",
]


@pytest.mark.integration  # a fresh interpreter
def test_the_light_modules_import_nothing_heavy():
    code = (
        "import importlib, sys\n"
        f"for m in {LIGHT!r}: importlib.import_module(m)\n"
        "heavy = {'torch', 'ray', 'optuna', 'pytorch_lightning', 'lightning', 'matplotlib', 'sklearn'}\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
