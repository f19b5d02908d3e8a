"""`distner pipeline --smoke` end to end on CPU (synthetic corpus): tune -> retrain -> report, then
idempotent reruns."""

from __future__ import annotations

import json
import os
import shutil
import statistics

import pytest
from PIL import Image

from distner.data.conll import read_conll
from distner.labels import COARSE_TYPES, FINE_TYPES, tag_set

from ..helpers import report_fits_its_type, run_cli

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses

SMOKE_PIPELINE = ("pipeline", "--langs", "hi", "--granularities", "fine,coarse", "--smoke", "--verbose", "0")


def distner(*args, cwd, data):
    return run_cli(*args, cwd=cwd, env={**os.environ, "DISTNER_DATA": str(data)})


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, synthetic_data):
    cwd = tmp_path_factory.mktemp("pipeline")
    proc = distner(*SMOKE_PIPELINE, cwd=cwd, data=synthetic_data)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, synthetic_data


def test_report_json_is_consistent_with_run_folders(pipeline):
    cwd, _ = pipeline
    report = json.loads((cwd / "reports" / "report.json").read_text())
    assert set(report["cells"]) == {"hi-fine", "hi-coarse"}
    assert report_fits_its_type(report)  # the keys records.Report and CellReport name
    for c in report["cells"].values():
        assert c["seeds"] == [1, 2]
        for variant, key in (("tuned", "tuned"), ("baseline", "baseline")):
            runs = c["runs"][variant]
            vals = [
                json.loads((cwd / r["run_dir"] / "metrics.json").read_text())["test"]["entity_macro_f1"]
                for r in runs
            ]
            assert len(vals) == 2
            assert c[key]["entity_macro_f1"]["mean"] == pytest.approx(statistics.fmean(vals))
            assert c[key]["entity_macro_f1"]["std"] == pytest.approx(statistics.stdev(vals))
        assert c["gain"]["entity_macro_f1"] == pytest.approx(
            c["tuned"]["entity_macro_f1"]["mean"] - c["baseline"]["entity_macro_f1"]["mean"]
        )
        assert c["study"]["trials"] == 4
        assert c["published_seed_style"]["macro_f1"] in (0.68, 0.81)
        assert len(c["final"]["coarse_confusion"]["matrix"]) == 7
        assert c["tuned"]["seed_style_accuracy"]["mean"] > c["tuned"]["token_accuracy"]["mean"]


def test_report_names_no_absolute_path(pipeline):
    """Committed reports must not carry the folders of the machine that made them."""
    cwd, _ = pipeline

    def strings(x):
        if isinstance(x, dict):
            return [s for v in x.values() for s in strings(v)]
        if isinstance(x, list):
            return [s for v in x for s in strings(v)]
        return [x] if isinstance(x, str) else []

    text = [s for s in strings(json.loads((cwd / "reports" / "report.json").read_text()))]
    assert text and not [s for s in text if s.startswith("/") or str(cwd) in s]
    assert str(cwd) not in (cwd / "reports" / "report.md").read_text()
    final = json.loads((cwd / "reports" / "report.json").read_text())["cells"]["hi-fine"]["final"]
    assert (cwd / final["run_dir"] / "model.pt").is_file()  # relative to the project root


def test_report_finished_only_leaves_out_cells_not_run(pipeline, tmp_path):
    cwd, data = pipeline
    args = ("report", "--langs", "hi,bn", "--granularities", "fine", "--report-dir", tmp_path / "r")
    assert distner(*args, cwd=cwd, data=data).returncode == 2  # bn-fine was never run
    proc = distner(*args, "--finished-only", cwd=cwd, data=data)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads((tmp_path / "r" / "report.json").read_text())["cells"]) == {"hi-fine"}


def test_report_keeps_the_cells_retrained_elsewhere(pipeline, tmp_path):
    """--keep-reported: a cell whose run folders are not here (retrained on another machine) keeps
    its entry and figures from the report.json already there; the cells retrained here are rewritten."""
    cwd, data = pipeline
    out = tmp_path / "r"
    args = ("report", "--langs", "hi", "--granularities", "fine,coarse", "--report-dir", out)
    assert distner(*args, cwd=cwd, data=data).returncode == 0
    before = json.loads((out / "report.json").read_text())
    coarse_png = (out / "hi-coarse-study.png").read_bytes()
    here = cwd / "elsewhere"  # the runs of hi-fine only: hi-coarse's were on another machine
    shutil.copytree(cwd / "runs" / "retrain" / "hi-fine", here / "hi-fine")
    again = (*args, "--retrain-dir", here, "--finished-only")
    proc = distner(*again, cwd=cwd, data=data)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads((out / "report.json").read_text())["cells"]) == {"hi-fine"}  # without the flag

    assert distner(*args, cwd=cwd, data=data).returncode == 0  # both cells again
    (out / "hi-coarse-study.png").write_bytes(coarse_png)
    proc = distner(*again, "--keep-reported", cwd=cwd, data=data)
    assert proc.returncode == 0, proc.stderr
    after = json.loads((out / "report.json").read_text())
    assert list(after["cells"]) == ["hi-fine", "hi-coarse"]  # in the order asked for
    assert after["cells"]["hi-coarse"] == before["cells"]["hi-coarse"]
    assert after["cells"]["hi-fine"]["runs"]["tuned"][0]["run_dir"].startswith("elsewhere/hi-fine/")
    assert (out / "hi-coarse-study.png").read_bytes() == coarse_png
    md = (out / "report.md").read_text()
    assert "## hi-coarse" in md and "| hi-coarse |" in md and "| hi-fine |" in md
    assert report_fits_its_type(after)

    # a kept cell's figure that is gone is one line naming it, and nothing is written
    (out / "hi-coarse-study.png").unlink()
    written = (out / "report.json").read_bytes()
    proc = distner(*again, "--keep-reported", cwd=cwd, data=data)
    assert proc.returncode != 0 and "hi-coarse-study.png is missing" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert (out / "report.json").read_bytes() == written


def test_report_md_and_figures(pipeline):
    cwd, _ = pipeline
    md = (cwd / "reports" / "report.md").read_text()
    assert "| cell | tuned macro-F1" in md and "| hi-fine |" in md and "| hi-coarse |" in md
    assert "### Per type (final model, test)" in md and "## Method" in md
    pngs = sorted((cwd / "reports").glob("*.png"))
    assert {p.name for p in pngs} >= {"hi-fine-study.png", "hi-fine-confusion.png", "hi-coarse-study.png"}
    for p in pngs:
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            assert im.format == "PNG" and 400 <= im.width <= 2000 and 200 <= im.height <= 2000
        assert f"]({p.name})" in md


@pytest.mark.parametrize("gran", ["fine", "coarse"])
def test_final_model_predicts(pipeline, tmp_path, gran):
    cwd, data = pipeline
    src, out = data / "hi" / "dev.conll.gz", tmp_path / "p.conll"
    proc = distner(
        "predict", "--model", f"runs/retrain/hi-{gran}", "--input", src, "--output", out, cwd=cwd, data=data
    )
    assert proc.returncode == 0, proc.stderr
    gold = read_conll(src)
    pred = read_conll(out, types=FINE_TYPES if gran == "fine" else COARSE_TYPES)  # IOB2 checked too
    assert [(s.id, s.tokens) for s in pred] == [(s.id, s.tokens) for s in gold]  # every sentence back
    assert all(s.tags is not None and len(s.tags) == len(s.tokens) for s in pred)
    tags = {t for s in pred for t in s.tags}
    assert tags <= set(tag_set(gran)) and tags != {"O"}  # the cell's labels, and some entities found
    assert f"tagged {len(gold)} sentences" in proc.stderr


def test_rerun_skips_and_deleted_cell_is_redone(pipeline):
    cwd, data = pipeline
    fine_model = (
        cwd
        / "runs/retrain/hi-fine"
        / json.loads((cwd / "runs/retrain/hi-fine/final.json").read_text())["run_dir"]
        / "model.pt"
    )
    coarse_retrain = cwd / "runs/retrain/hi-coarse"
    stamp = fine_model.stat().st_mtime_ns
    again = distner(
        *SMOKE_PIPELINE,
        cwd=cwd,
        data=data,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("- done") == 4 and "epoch 1/" not in again.stderr
    shutil.rmtree(coarse_retrain)
    redo = distner(
        *SMOKE_PIPELINE,
        cwd=cwd,
        data=data,
    )
    assert redo.returncode == 0, redo.stderr[-2000:]
    assert "hi-coarse: retrain - 2 seeds" in redo.stderr and redo.stderr.count("- done") == 3
    assert (coarse_retrain / "retrain.json").is_file()
    assert fine_model.stat().st_mtime_ns == stamp  # the other cell was left alone


def test_missing_inputs_name_the_command(tmp_path, synthetic_data):
    proc = distner("report", "--langs", "bn", "--granularities", "fine", cwd=tmp_path, data=synthetic_data)
    assert proc.returncode == 2 and "distner retrain --lang bn --granularity fine" in proc.stderr
    assert not (tmp_path / "reports").exists()
    proc = distner("retrain", "--lang", "bn", cwd=tmp_path, data=synthetic_data)
    assert proc.returncode == 2 and "distner tune --lang bn --granularity fine" in proc.stderr
