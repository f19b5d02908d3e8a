"""`distner pipeline --experiment F --smoke`: a two-cell experiment with two variants on the
synthetic corpus (real Ray studies, real fits), its report picking on dev; then `--dry-run` says
every step is done, and a clone without the run folders knows it too and trains nothing."""

from __future__ import annotations

import json
import os
import shutil
import statistics

import pytest

from ..helpers import run_cli, write

pytestmark = pytest.mark.integration  # real Ray studies, distner in subprocesses

EXPERIMENT = """\
cells: [hi-fine, hi-coarse]
tune:
  space: tune_spaces/extended.yaml   # --smoke swaps in the smoke space
  num_samples: 2                     # --smoke runs at most this many
  max_concurrent: 2
variants:
  winner: {}
  wider: {set: {hidden_dim: 24}}
seeds: [1, 2, 3]
"""
SMOKE = "runs/experiments/two/smoke"


def distner(*args, cwd, data):
    return run_cli(*args, cwd=cwd, env={**os.environ, "DISTNER_DATA": str(data)})


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, synthetic_data):
    cwd = tmp_path_factory.mktemp("experiment")
    write(cwd / "experiments/two.yaml", EXPERIMENT)
    proc = distner(
        "pipeline", "--experiment", "experiments/two.yaml", "--smoke", cwd=cwd, data=synthetic_data
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, synthetic_data


def test_the_report_picks_each_cell_on_dev_mean_over_seeds(experiment):
    cwd, _ = experiment
    report = json.loads((cwd / SMOKE / "published/report.json").read_text())
    assert list(report["cells"]) == ["hi-fine", "hi-coarse"]
    for cell, c in report["cells"].items():
        record = json.loads((cwd / SMOKE / "published/retrain" / cell / "retrain.json").read_text())
        assert set(record["variants"]) == {"winner", "wider", "baseline"} and record["seeds"] == [1, 2]
        dev = {
            n: statistics.fmean(r["dev"]["entity_macro_f1"] for r in v["runs"])
            for n, v in record["variants"].items()
            if n != "baseline"
        }
        picked = max(dev, key=dev.__getitem__)
        assert c["selected"] == record["final"]["variant"] == picked
        assert set(c["candidates"]) == {"winner", "wider"}
        assert c["candidates"]["wider"]["set"] == {"hidden_dim": 24}
        assert c["candidates"][picked]["dev"]["entity_macro_f1"]["mean"] == pytest.approx(dev[picked])
        assert c["tuned"] == record["variants"][picked]["test"]
        # the published record is the one the retrain wrote, naming the published study
        written = json.loads((cwd / SMOKE / "retrain" / cell / "retrain.json").read_text())
        assert record == {**written, "study": f"{SMOKE}/published/studies/{cell}"}
    assert "### Candidates (picked on dev" in (cwd / SMOKE / "published/report.md").read_text()
    # the study's small files and its winner are published beside the record; 2 trials, as asked
    trials = (cwd / SMOKE / "published/studies/hi-fine/trials.csv").read_text().splitlines()
    assert len(trials) == 1 + 2
    assert (cwd / SMOKE / "published/best/hi-coarse.yaml").is_file()
    assert not (cwd / "results").exists()  # a smoke run never writes the experiment's own outputs


def test_dry_run_says_every_step_done_and_a_clone_without_runs_trains_nothing(experiment, tmp_path):
    cwd, data = experiment
    dry = distner(
        "pipeline", "--experiment", "experiments/two.yaml", "--smoke", "--dry-run", cwd=cwd, data=data
    )
    lines = dry.stdout.splitlines()
    # per cell: tune, 2 variants x 2 seeds, baseline; then the report
    assert dry.returncode == 0 and len(lines) == 2 * 6 + 1, dry.stdout
    assert all(line.startswith("done  ") for line in lines), dry.stdout
    assert "done  retrain hi-fine wider seed 2  reads" in dry.stdout and "hidden_dim=24" in dry.stdout
    # a clone: the published outputs and the experiment file, no run folders
    clone = tmp_path / "clone"
    shutil.copytree(cwd / "experiments", clone / "experiments")
    shutil.copytree(cwd / SMOKE / "published", clone / SMOKE / "published")
    dry = distner(
        "pipeline", "--experiment", "experiments/two.yaml", "--smoke", "--dry-run", cwd=clone, data=data
    )
    assert all(line.startswith("done  ") for line in dry.stdout.splitlines()), dry.stdout
    again = distner("pipeline", "--experiment", "experiments/two.yaml", "--smoke", cwd=clone, data=data)
    assert again.returncode == 0 and "every step done" in again.stderr, again.stderr[-2000:]
    assert "epoch 1/" not in again.stderr and not (clone / SMOKE / "studies").exists()


def test_a_new_seed_trains_only_itself_and_reuses_the_recorded_runs(experiment, tmp_path):
    cwd, data = experiment
    clone = tmp_path / "clone"
    shutil.copytree(cwd / "experiments", clone / "experiments")
    shutil.copytree(cwd / SMOKE / "published", clone / SMOKE / "published")
    # the experiment asks for one more cell's variant than was run: only those seeds train
    deeper = "\n  deeper: {set: {num_layers: 2}, cells: [hi-coarse]}"
    text = EXPERIMENT.replace("wider: {set: {hidden_dim: 24}}", "wider: {set: {hidden_dim: 24}}" + deeper)
    write(clone / "experiments/two.yaml", text)
    dry = distner(
        "pipeline", "--experiment", "experiments/two.yaml", "--smoke", "--dry-run", cwd=clone, data=data
    )
    todo = [line for line in dry.stdout.splitlines() if line.startswith("todo")]
    assert [t.split("  ")[1] for t in todo] == [
        "retrain hi-coarse deeper seed 1",
        "retrain hi-coarse deeper seed 2",
        "report",
    ], dry.stdout
    before = json.loads((clone / SMOKE / "published/retrain/hi-coarse/retrain.json").read_text())
    proc = distner("pipeline", "--experiment", "experiments/two.yaml", "--smoke", cwd=clone, data=data)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = json.loads((clone / SMOKE / "published/retrain/hi-coarse/retrain.json").read_text())
    assert after["variants"]["deeper"]["config"]["num_layers"] == 2
    for name in ("winner", "wider", "baseline"):  # reused from the record, not trained again
        assert after["variants"][name]["runs"] == before["variants"][name]["runs"]
    assert proc.stderr.count("epoch 1/") <= 2  # two seeds of one variant, nothing else
    report = json.loads((clone / SMOKE / "published/report.json").read_text())
    assert set(report["cells"]["hi-coarse"]["candidates"]) == {"winner", "wider", "deeper"}
