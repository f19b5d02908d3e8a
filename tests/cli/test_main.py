"""The CLI as a user runs it: real subprocesses, exit codes, one-line errors."""

import gzip
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..helpers import (
    CONFIG,
    DISTNER,
    ENV,
    TINY,
    as_in_a_terminal,
    retrain_args,
    run_cli,
    snapshot,
    stdout_full,
    train_args,
    write,
)

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0]


def test_help_lists_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for cmd in ("train", "evaluate", "predict", "data"):
        assert cmd in proc.stdout
    assert "--set KEY=VALUE" in run_cli("train", "--help").stdout


@pytest.fixture
def bad_data(tmp_path, tiny_dir):
    """A data root whose train split has an error on line 4."""
    for split in ("dev", "test"):
        write(tmp_path / "en" / f"{split}.conll", (tiny_dir / "en" / f"{split}.conll").read_text())
    return tmp_path


@pytest.mark.parametrize(
    "train_text,needle",
    [
        ("# id a\tdomain=en\nx _ _ O\ny _ _ O\nz _ O\n", "train.conll:4: expected 4 columns"),
        ("# id a\tdomain=en\nx _ _ O\ny _ _ O\nz _ _ B-Elf\n", "train.conll:4: unknown entity type 'Elf'"),
        ("# id a\tdomain=en\nx _ _ O\ny _ _ O\nz _ _ I-Artist\n", "train.conll:4: 'I-Artist' follows 'O'"),
        ("\n\n", "train.conll:1: no sentences"),
    ],
)
def test_bad_training_file(bad_data, train_text, needle, tmp_path):
    write(bad_data / "en" / "train.conll", train_text)
    out = tmp_path / "out"
    proc = run_cli("train", "--lang", "en", "--data-dir", bad_data, "--out", out)
    assert_one_line_error(proc, needle)
    assert not out.exists()  # nothing half-written


def test_not_utf8_gz(bad_data):
    with gzip.open(bad_data / "en" / "train.conll.gz", "wb") as f:
        f.write(b"# id a\n\xff\xfe _ _ O\n")
    proc = run_cli("train", "--lang", "en", "--data-dir", bad_data)
    assert_one_line_error(proc, "train.conll.gz:2: not valid UTF-8")


def test_missing_split_unknown_language_bad_config(tmp_path, tiny_dir):
    assert_one_line_error(run_cli("train", "--lang", "en", "--data-dir", tmp_path), "split 'train' not found")
    assert_one_line_error(run_cli("train", "--lang", "klingon", "--data-dir", tiny_dir), "unknown language")
    assert_one_line_error(
        run_cli("train", "--lang", "en", "--data-dir", tiny_dir, "--set", "hiddn_dim=3"),
        "unknown config key 'hiddn_dim'",
    )
    cfg = write(tmp_path / "c.yaml", "epochs: [1\n")
    assert_one_line_error(
        run_cli("train", "--lang", "en", "--data-dir", tiny_dir, "--config", cfg), "c.yaml:"
    )
    assert_one_line_error(run_cli("evaluate", "--model", tmp_path / "nope"), "config.yaml: file not found")


def test_bad_flag_exits_2():
    proc = run_cli("train", "--lang", "en", "--epochs", "3")
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr


def test_data_stats(tiny_dir):
    proc = run_cli("data", "stats", "--langs", "en", "--data-dir", tiny_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)["en"]
    assert stats["train"]["sentences"] == 12 and stats["train"]["entities"] == 19
    assert stats["train"]["entities_per_type"]["HumanSettlement"] == 4
    text = run_cli("data", "stats", "--langs", "en", "--data-dir", tiny_dir)
    assert "train" in text.stdout and text.returncode == 0


def test_data_stats_rejects_unknown_granularity(tiny_dir):
    proc = run_cli("data", "stats", "--langs", "en", "--data-dir", tiny_dir, "--granularity", "medium")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_bad_tune_flags_fail_before_ray_starts(tmp_path, tiny_dir):
    base = ("tune", "--lang", "en", "--data-dir", tiny_dir, "--storage", tmp_path / "runs")
    assert_one_line_error(run_cli(*base, "--grace-period", "0"), "--grace-period: must be >= 1")
    assert_one_line_error(run_cli(*base, "--start-from", tmp_path / "nope.yaml"), "nope.yaml")
    far = write(tmp_path / "far.yaml", "hidden_dim: 7\n")
    assert_one_line_error(
        run_cli(*base, "--start-from", far), "far.yaml: key 'hidden_dim': value 7 is outside"
    )
    # a start point's overrides and rank: one line naming it
    assert_one_line_error(
        run_cli(*base, "--start-from", f"{far},epochz=1"), f"--start-from {far},epochz=1: unknown config key"
    )
    assert_one_line_error(
        run_cli(*base, "--start-from", f"{far},rank=2"), f"--start-from {far},rank=2: rank=2 picks a study's"
    )
    assert_one_line_error(
        run_cli(*base, "--start-from", f"{far},hidden_dim=16,encoder_train_layers=x"),
        "encoder_train_layers: must be an integer in 0-12 or auto, got 'x'",
    )
    assert not (tmp_path / "runs").exists()


def test_bad_data_stops_a_study_before_it_claims_a_folder(bad_data, tmp_path):
    """The data is read whole before Ray starts and before the study's folder is made: nothing is
    left that a later, fixed run would take for an earlier study."""
    write(bad_data / "en" / "train.conll", "# id a\tdomain=en\nx _ _ O\ny _ _ O\nz _ O\n")
    storage = tmp_path / "runs"
    proc = run_cli(
        "tune", "--lang", "en", "--data-dir", bad_data, "--storage", storage, "--best-dir", tmp_path / "b"
    )
    assert_one_line_error(proc, "train.conll:4: expected 4 columns")
    assert not storage.exists()


def test_a_retrain_without_its_best_config_leaves_no_folder(tmp_path):
    out = tmp_path / "cells" / "deeper"
    proc = run_cli("retrain", "--lang", "en", "--best-dir", tmp_path / "none", "--retrain-dir", out)
    assert_one_line_error(proc, "en-fine.yaml: best config not found; make it with: distner tune")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------ stop signals in every phase of a command (issue 43)


def _loads_torch(pid: int) -> bool:
    """Whether the process has begun its heavy imports (torch's library is mapped)."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _stop_during_imports(args: list[object], cwd: Path, sig: signal.Signals, env: dict) -> tuple[int, str]:
    """`distner ARGS`, sent `sig` once it is importing torch (before any fit starts): exit code, stderr."""
    proc = subprocess.Popen(
        [*DISTNER, *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=as_in_a_terminal,
    )  # fmt: skip
    deadline = time.time() + 60
    while not _loads_torch(proc.pid) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, proc.communicate()[1].decode()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode()


COMMANDS_AT_IMPORT = {
    "train": lambda tmp: train_args(tmp / "run"),
    "features": lambda tmp: ["features", "--lang", "en", "--data-dir", TINY, "--splits", "dev"],
    "retrain": retrain_args,
}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
@pytest.mark.parametrize("command", COMMANDS_AT_IMPORT)
def test_a_stop_during_the_heavy_imports_is_130_and_one_line(command, sig, tmp_path):
    """SIGTERM used to kill a command there at once (143, no word; train left its .run.lock),
    and SIGINT could end a retrain by the signal itself (-2): one policy from the first step."""
    work = tmp_path / "work"
    write(work / "best.yaml", CONFIG)
    before = snapshot(work)
    env = {**ENV, "DISTNER_CACHE": str(tmp_path / "cache")}  # features' cache, outside `work`
    code, err = _stop_during_imports(COMMANDS_AT_IMPORT[command](work), work, sig, env)
    lines = err.strip().splitlines()
    assert code == 130 and "Traceback" not in err, err
    assert lines[-1].startswith("distner: interrupted"), err
    after = snapshot(work)
    assert not [p for p in after if p not in before and Path(p).name.startswith(".")], after  # no lock
    if command == "train":
        assert after == before  # no run, no hidden temp folder, no lock


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_after_the_run_is_in_place_says_so(sig, tmp_path):
    """train blocked printing its table (stdout full) once its run is in place: SIGTERM used to
    end it with 143 and no word. Now 130, one line saying the run is whole, and no lock."""
    r, w = stdout_full()
    proc = subprocess.Popen(
        [*DISTNER, *map(str, train_args(tmp_path / "run", "--quiet"))], cwd=tmp_path, env=ENV,
        stdout=w, stderr=subprocess.PIPE, preexec_fn=as_in_a_terminal,
    )  # fmt: skip
    os.close(w)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "run" / "metrics.json").is_file() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # past the swap, into the blocked print
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.kill()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 130 and "Traceback" not in err.decode(), err.decode()
    assert lines[-1] == f"distner: interrupted: after the run finished; {tmp_path / 'run'} holds it"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no .run.lock, no temp folder
