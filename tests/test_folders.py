"""Where distner writes and who may write there, through the real CLI in subprocesses.

Output policy: `-`, a FIFO and a character device are written into (never replaced, no temp file
beside them), a symlink writes its target, and a write that fails is one line that leaves nothing.
Locks: a second writer of a run folder, study, retrain cell or report folder is refused with one
line naming the holder (exit 2) while the first's work stays intact; a killed holder's lock does
not block. Every case checks the exit code, one stderr line, no traceback and the sha256 of every
file that was there before.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from distner.core.errors import DistnerError
from distner.core.locks import folder_lock, lock_file
from distner.evaluation.evaluate import load_run

from .helpers import (
    DISTNER,
    ENV,
    SPACE,
    TEST_CONLL,
    TINY,
    distner,
    snapshot,
    train_args,
)

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses


def one_line(proc: subprocess.CompletedProcess, code: int) -> str:
    err = proc.stderr.decode() if isinstance(proc.stderr, bytes) else proc.stderr
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def predict(run: Path, output: object, cwd: Path, **kw: object) -> subprocess.CompletedProcess:
    return distner("predict", "--model", run, "--input", TEST_CONLL, "--output", output, cwd=cwd, **kw)


# ------------------------------------------------------------------ one output policy


def test_output_dash_prints_the_predictions(finished, tmp_path: Path) -> None:
    run, predictions = finished
    before = snapshot(tmp_path, run, TINY)
    proc = predict(run, "-", tmp_path)
    assert one_line(proc, 0) == "tagged 3 sentences -> stdout"
    assert proc.stdout == predictions  # the predictions and nothing else
    assert snapshot(tmp_path, run, TINY) == before


def test_output_symlink_writes_its_target(finished, tmp_path: Path) -> None:
    run, predictions = finished
    target = tmp_path / "real" / "out.conll"
    target.parent.mkdir()
    target.write_text("an earlier file\n")
    link = tmp_path / "links" / "out.conll"
    link.parent.mkdir()
    link.symlink_to(Path("..", "real", "out.conll"))
    before = snapshot(tmp_path, run, TINY)
    assert one_line(predict(run, link, tmp_path), 0).startswith("tagged 3 sentences")
    assert link.is_symlink() and os.readlink(link) == str(Path("..", "real", "out.conll"))
    assert target.read_bytes() == predictions
    after = snapshot(tmp_path, run, TINY)
    assert after.pop(str(target)) != before.pop(str(target))
    assert after == before  # the link unchanged, no temp file beside the link or the target


def test_output_fifo_is_written_into(finished, tmp_path: Path) -> None:
    run, predictions = finished
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    before = snapshot(tmp_path, run, TINY)
    proc = predict(run, fifo, tmp_path)
    reader.join(timeout=30)
    assert one_line(proc, 0).startswith("tagged 3 sentences")
    assert got == [predictions]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still the FIFO, not a file put in its place
    assert snapshot(tmp_path, run, TINY) == before


def test_output_dev_null_is_not_replaced(finished, tmp_path: Path) -> None:
    run, _ = finished
    null = os.lstat("/dev/null")
    dev_before = set(os.listdir("/dev"))
    before = snapshot(tmp_path, run, TINY)
    assert one_line(predict(run, "/dev/null", tmp_path), 0) == "tagged 3 sentences -> /dev/null"
    after = os.lstat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (null.st_ino, null.st_rdev)
    assert not {n for n in set(os.listdir("/dev")) - dev_before if "null" in n}  # no temp file in /dev
    assert snapshot(tmp_path, run, TINY) == before


def _read_only_file(tmp: Path) -> Path:
    """A file this user cannot write: chmod'ed for a user; for root, a file on a read-only mount."""
    if os.geteuid() != 0:
        f = tmp / "ro.conll"
        f.write_text("keep me\n")
        f.chmod(0o444)
        return f
    f = Path("/proc/sys/kernel/osrelease")
    if f.is_file() and not os.access(f, os.W_OK):
        return f
    pytest.skip("no read-only file for root on this machine")


def _unwritable_dir(tmp: Path) -> Path:
    if os.geteuid() != 0:
        d = tmp / "ro"
        d.mkdir()
        d.chmod(0o555)
        return d
    if not os.access("/proc/sys", os.W_OK):
        return Path("/proc/sys")
    pytest.skip("no read-only folder for root on this machine")


@pytest.mark.parametrize(
    "case",
    ["dev-full", "name-too-long", "link-into-unwritable-folder", "link-to-read-only-file"],
)
def test_output_that_cannot_be_written_is_one_line(finished, tmp_path: Path, case: str) -> None:
    run, _ = finished
    if case == "dev-full":  # a device that is always out of space: the write itself fails
        output, needles = Path("/dev/full"), ["/dev/full: cannot write (No space left on device)"]
    elif case == "name-too-long":
        output, needles = tmp_path / ("x" * 300 + ".conll"), ["File name too long"]
    elif case == "link-into-unwritable-folder":
        output = tmp_path / "link.conll"
        output.symlink_to(_unwritable_dir(tmp_path) / "out.conll")
        needles = [f"--output {output} (a link to", "is not writable"]
    else:
        output = tmp_path / "link.conll"
        ro = _read_only_file(tmp_path)
        output.symlink_to(ro)
        needles = [f"--output {output} (a link to {ro})", "is read-only"]
    roots = [tmp_path, run, TINY]
    before = snapshot(*roots)
    line = one_line(predict(run, output, tmp_path), 2)
    for needle in needles:
        assert needle in line, line
    assert snapshot(*roots) == before  # nothing half-written, no temp file


# ------------------------------------------------------------------ one writer per folder


def _start_train(out: Path, cwd: Path, *extra: object) -> subprocess.Popen:
    cmd = [*DISTNER, *map(str, train_args(out, *extra))]
    return subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_holder(lock: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until `proc` has taken the lock and written itself into `lock`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if json.loads(lock.read_text())["pid"] == proc.pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{lock}: pid {proc.pid} never took the lock")


def _holder_needle(pid: int) -> str:
    return f"in use by pid {pid} on {socket.gethostname()} since "


def test_second_train_into_one_folder_is_refused(tmp_path: Path) -> None:
    """Two more writers (one with --overwrite) start while the first trains into a new folder:
    both are refused naming it, and the first's run is whole."""
    out = tmp_path / "run"
    first = _start_train(out, tmp_path, "--set", "epochs=2", "--quiet")
    try:
        _wait_for_holder(tmp_path / ".run.lock", first)
        first.send_signal(signal.SIGSTOP)  # it holds the lock for as long as the others take
        before = snapshot(tmp_path, TINY)
        with ThreadPoolExecutor(2) as pool:
            procs = list(
                pool.map(
                    lambda extra: distner(*train_args(out, "--quiet", *extra), cwd=tmp_path),
                    [[], ["--overwrite"]],
                )
            )
        for proc in procs:
            line = one_line(proc, 2)
            assert line.startswith(f"distner: error: --out {out}: "), line
            assert _holder_needle(first.pid) in line, line
        assert snapshot(tmp_path, TINY) == before
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    load_run(out)  # the first one's run, whole
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no lock or temp folder left


def test_a_killed_holders_lock_does_not_block(tmp_path: Path) -> None:
    out = tmp_path / "run"
    killed = _start_train(out, tmp_path, "--set", "epochs=5000")
    for line in killed.stderr:  # type: ignore[union-attr]
        if line.startswith(b"epoch "):  # training: the lock is held and the temp run half made
            break
    killed.kill()
    killed.wait()
    lock = tmp_path / ".run.lock"
    assert json.loads(lock.read_text())["pid"] == killed.pid  # the dead holder's record is left
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".run.tmp-")]
    neighbour = tmp_path / "notes.txt"
    neighbour.write_text("not distner's\n")
    before = snapshot(TINY) | {str(neighbour): neighbour.read_text()}
    proc = distner(*train_args(out, "--set", "epochs=1", "--quiet"), cwd=tmp_path, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and str(killed.pid) not in proc.stderr
    load_run(out)
    assert snapshot(TINY) | {str(neighbour): neighbour.read_text()} == before
    # the lock was taken over (and given back), the dead writer's temp folder removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "run"]


HOLD = (
    "import sys; from distner.core.locks import folder_lock\n"
    "with folder_lock(sys.argv[1], 'holder'):\n"
    "    print('held', flush=True); sys.stdin.read()\n"
)


@pytest.mark.parametrize("command", ["tune", "retrain", "report"])
def test_a_held_study_cell_or_report_is_refused(tmp_path: Path, command: str, no_ray_left) -> None:
    """Another distner holds the folder's lock (a real process, through distner.core.locks); the command
    refuses before reading data or starting Ray, and changes nothing."""
    space = tmp_path / "space.yaml"
    space.write_text(SPACE % 1)
    folder, args = {
        "tune": (
            tmp_path / "studies" / "s",
            ["tune", "--lang", "en", "--data-dir", TINY, "--space", space, "--num-samples", 1]
            + ["--storage", tmp_path / "studies", "--name", "s", "--best-dir", tmp_path / "best"],
        ),
        "retrain": (
            tmp_path / "retrain" / "en-fine",
            ["retrain", "--lang", "en", "--data-dir", TINY, "--retrain-dir", tmp_path / "retrain"]
            + ["--config", space],
        ),
        "report": (
            tmp_path / "report",
            ["report", "--langs", "en", "--granularities", "fine", "--report-dir", tmp_path / "report"],
        ),
    }[command]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)],
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        before = snapshot(tmp_path, TINY)
        line = one_line(distner(*args, cwd=tmp_path, text=True), 2)
        assert _holder_needle(holder.pid) in line, line
        assert str(folder / ".distner.lock") in line, line
        assert snapshot(tmp_path, TINY) == before
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0
    assert not folder.exists()  # made only to hold the lock: removed with it


def test_a_stale_record_is_rewritten_and_the_lock_is_per_thread(tmp_path: Path) -> None:
    """In one process: a dead holder's record (longer than the new one) is replaced whole; the
    holding thread may lock again (distner train, then fit_into); another thread is refused."""
    run = tmp_path / "run"
    lock = lock_file(run, beside=True)
    dead = {"pid": 2**22 + 1, "host": "gone", "started": "2000-01-01 00:00:00 UTC"}
    lock.write_text(json.dumps(dead) + " " * 200 + "\n")
    with folder_lock(run, "--out run", beside=True):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with folder_lock(run, "--out run", beside=True):
            pass
        assert lock.exists()  # still held by the outer block
        errors: list[str] = []

        def other() -> None:
            try:
                with folder_lock(run, "--out run", beside=True):
                    pass
            except DistnerError as e:
                errors.append(str(e))

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert len(errors) == 1 and _holder_needle(os.getpid()) in errors[0], errors
    assert not lock.exists()
    assert list(tmp_path.iterdir()) == []


def test_two_inputs_with_one_base_name_keep_an_evaluation_each(finished, tmp_path: Path) -> None:
    from distner.evaluation.evaluate import evaluate_run

    run = shutil.copytree(finished[0], tmp_path / "run")
    a, b = tmp_path / "a" / "test.conll", tmp_path / "b" / "test.conll"
    for path, keep in ((a, None), (b, 2)):  # b: the first two sentences only, other scores
        path.parent.mkdir()
        blocks = TEST_CONLL.read_text(encoding="utf-8").strip().split("\n\n")
        path.write_text("\n\n".join(blocks[:keep]) + "\n", encoding="utf-8")
    _, _, first = evaluate_run(run, input_file=a)
    _, _, second = evaluate_run(run, input_file=b)
    assert first == run / "eval-input-test.json" and second != first and first.is_file()
    assert json.loads(first.read_text())["source"] == str(a.resolve())
    assert json.loads(second.read_text())["source"] == str(b.resolve())
    again = snapshot(run)
    _, _, third = evaluate_run(run, input_file=a)  # the same input: its own file again
    assert third == first and set(snapshot(run)) == set(again)


def test_a_reader_that_went_away_is_no_traceback(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # `distner data stats | head -c 0`: the reader is gone before anything is written
    try:
        proc = subprocess.run(
            [*DISTNER, "data", "stats", "--data-dir", TINY, "--langs", "en", "--json"],
            stdout=write, stderr=subprocess.PIPE, cwd=tmp_path, env=ENV, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write)
    assert proc.returncode == 141 and proc.stderr == b""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_one_line(finished, tmp_path: Path) -> None:
    """/dev/full fails every write with ENOSPC, as a full disk does."""
    before = snapshot(finished[0])
    proc = predict(finished[0], "/dev/full", tmp_path)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr.decode()
    assert lines[-1] == "distner: error: /dev/full: cannot write (No space left on device)"
    assert snapshot(finished[0]) == before


def test_a_trial_no_node_can_hold_fails_at_once(tmp_path: Path, no_ray_left) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE % 1)
    for flags, need in (
        (["--cpus-per-trial", "1000"], "--cpus-per-trial 1000: no trial can start"),
        (["--gpus-per-trial", "64"], "--cpus-per-trial 1 and --gpus-per-trial 64: no trial can start"),
    ):
        args = [
            "tune",
            "--lang",
            "en",
            "--data-dir",
            TINY,
            "--space",
            space,
            "--storage",
            tmp_path / "s",
            *flags,
        ]
        proc = distner(*args, "--name", flags[0].strip("-"), cwd=tmp_path)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and "Traceback" not in err, err
        assert need in err.strip().splitlines()[-1] and "ask for less" in err


# ------------------------------------------------ folders from someone else (issue 43, point 2)


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_a_link_in_a_run_folder_writes_nothing_outside_it(finished, tmp_path: Path, how: str) -> None:
    """eval-test.json -> ../victim (or /abs/victim) planted in a received run: evaluate used to
    write its scores through the link into the victim."""
    run = shutil.copytree(finished[0], tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file\n")
    (run / "eval-test.json").symlink_to(Path("..", "victim.txt") if how == "relative" else victim)
    before = snapshot(tmp_path)
    line = one_line(
        distner("evaluate", "--model", run, "--split", "test", "--data-dir", TINY, cwd=tmp_path), 2
    )
    assert line == (
        f"distner: error: {run / 'eval-test.json'}: is a link out of {run} (to {victim}); "
        "distner writes only inside the folder: remove the link"
    )
    assert snapshot(tmp_path) == before  # the victim byte-identical, the link as it was


@pytest.mark.parametrize("run_dir", ["../elsewhere", "ABSOLUTE", "."])
def test_a_cells_final_model_lies_in_the_cell(finished, tmp_path: Path, run_dir: str) -> None:
    """final.json naming ../elsewhere or an absolute path used to be followed: a model outside
    the cell was evaluated and its folder written."""
    elsewhere = shutil.copytree(finished[0], tmp_path / "elsewhere")
    cell = tmp_path / "cell"
    cell.mkdir()
    named = str(elsewhere) if run_dir == "ABSOLUTE" else run_dir
    (cell / "final.json").write_text(json.dumps({"run_dir": named}))
    before = snapshot(tmp_path)
    for command in ("evaluate", "predict"):
        out = ("--output", tmp_path / "p.conll") if command == "predict" else ()
        line = one_line(distner(command, "--model", cell, "--input", TEST_CONLL, *out, cwd=tmp_path), 2)
        assert line.startswith(f"distner: error: {cell / 'final.json'}: 'run_dir' ")
        assert line.endswith("a cell's final model lies in its own folder")
    assert snapshot(tmp_path) == before


def test_no_file_of_the_run_is_an_output_of_predict(finished, tmp_path: Path) -> None:
    """TensorBoard's events were a valid --output: predict replaced them with its tags."""
    run = shutil.copytree(finished[0], tmp_path / "run")
    events = next((run / "tb").rglob("events.out.tfevents.*"))
    before = snapshot(tmp_path)
    for own in (events, run / "model.pt", run / "config.yaml"):
        line = one_line(predict(run, own, tmp_path), 2)
        assert line.startswith(f"distner: error: --output {own}: is also an input")
    assert snapshot(tmp_path) == before


def test_a_link_in_a_report_folder_writes_nothing_outside_it(cell: Path, tmp_path: Path) -> None:
    """report.md -> a file elsewhere, in a received results folder: never written through."""
    out = tmp_path / "report"
    out.mkdir()
    victim = tmp_path / "victim.md"
    victim.write_text("the user's own file\n")
    (out / "report.md").symlink_to(victim)
    before = snapshot(tmp_path)
    args = ["report", "--langs", "en", "--granularities", "fine", "--retrain-dir", cell / "cells"]
    line = one_line(distner(*args, "--report-dir", out, cwd=tmp_path), 2)
    assert line.startswith(f"distner: error: {out / 'report.md'}: is a link out of {out}")
    assert snapshot(tmp_path) == before
