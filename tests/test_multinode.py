"""A real two-node Ray cluster on this machine: a study joins it with --address and uses both nodes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from .helpers import write, write_corpus

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses

MULTINODE_SPACE = """
embedding_dim: 520
hidden_dim: 520
epochs: 3
batch_size: {choice: [35, 64]}
lr: {loguniform: [3.0e-3, 3.0e-2]}
max_train_sentences: 1500
max_eval_sentences: 150
"""


@pytest.fixture
def two_node_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def test_smoke_study_spreads_over_both_nodes(no_ray_left, two_node_cluster, tmp_path):
    storage = tmp_path / "shared"  # a folder both nodes see (they share this machine's disk)
    data = write_corpus(tmp_path / "data", seed=1, sizes={"train": 1500, "dev": 150, "test": 150})
    # One CPU a node and a trial pending per free slot: the first two trials start together, one on
    # each node, as neither node can hold two. Every trial is the reference's 520/520 net for 3
    # epochs (~5 s): with actor reuse, Tune moves a trial whose process is still starting onto one
    # that has just finished, so a trial shorter than the second node's cold start (a tiny net ran
    # in 0.3 s) could put all four on the head node.
    space = write(tmp_path / "space.yaml", MULTINODE_SPACE).resolve()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "distner",
            "tune",
            "--lang",
            "hi",
            "--smoke",
            "--space",
            str(space),
            "--address",
            two_node_cluster.address,
            "--storage",
            str(storage),
            "--best-dir",
            str(tmp_path / "best"),
            "--data-dir",
            str(data),
            "--verbose",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = storage / "hi-fine-smoke"
    rows = list(csv.DictReader(open(study / "trials.csv")))
    assert len(rows) == 4 and all(r["state"] in ("completed", "stopped_early") for r in rows)
    nodes = {r["node_id"] for r in rows}
    assert len(nodes) == 2, f"trials ran on {nodes}"
    summary = json.loads((study / "summary.json").read_text())
    assert len(summary["nodes"]) == 2
    assert (tmp_path / "best" / "hi-fine.yaml").is_file()
    for r in rows:  # every trial's outputs reached the shared storage
        assert (study / r["trial_dir"] / "tb").is_dir() and (study / r["trial_dir"] / "result.json").is_file()

    # retraining seeds run as Ray tasks on the cluster too
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "distner",
            "retrain",
            "--lang",
            "hi",
            "--best-dir",
            str(tmp_path / "best"),
            "--address",
            two_node_cluster.address,
            "--seeds",
            "2",
            "--set",
            "epochs=1",
            "--retrain-dir",
            str(storage / "retrain"),
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    retrain = json.loads((storage / "retrain" / "hi-fine" / "retrain.json").read_text())
    assert [len(v["runs"]) for v in retrain["variants"].values()] == [2, 2]
    # one Ray task per distinct run (a tuned config equal to the baseline shares its runs)
    distinct = {r["run_dir"] for v in retrain["variants"].values() for r in v["runs"]}
    assert proc.stdout.count("finished") == len(distinct) in (2, 4)
