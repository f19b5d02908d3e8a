"""The docs cannot rot: every command shown in README.md and docs/*.md runs (at smoke size)."""

from __future__ import annotations

import pytest

from .docs_commands import PAGES, Runner, extract
from .helpers import ROOT, broken_links

KNOWN = ("distner", "python", "tensorboard", "optuna-dashboard", "pip", "export", "ray", "ssh")


def test_pages_follow_the_command_convention():
    cmds = [c for p in PAGES for c in extract(p)]
    assert len(cmds) > 20
    for c in cmds:
        assert c.text.split()[0] in KNOWN, f"{c.page}:{c.line}: unknown command {c.text!r}"
        assert not c.text.endswith("\\") and "&&" not in c.text and "|" not in c.text.replace("en|", ""), (
            f"{c.page}:{c.line}: one plain command per line, please: {c.text!r}"
        )


def test_every_relative_link_leads_somewhere():
    """README, CHANGELOG and docs/: each relative link's file exists, and its heading if it names one."""
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert {p: broken_links(p) for p in pages} == {p: [] for p in pages}


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_runs(page, real_data, tmp_path, no_ray_left):
    runner = Runner(tmp_path, real_data)
    results = []
    try:
        for cmd in extract(page):
            status, detail = runner.run(cmd)
            results.append((cmd, status, detail))
            assert status != "failed", f"{cmd.page}:{cmd.line}: `{cmd.text}` failed: {detail}"
    finally:
        runner.close()
    for cmd, status, detail in results:
        print(f"{cmd.page}:{cmd.line}: {status}: {cmd.text} [{detail[:120]}]")
