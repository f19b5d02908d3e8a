"""core/locks.py in one process (through real processes: test_folders.py): folders made only to hold a
lock do not outlive it; a file lock makes a second taker wait, and says so."""

from __future__ import annotations

import threading

import pytest

from distner.core.errors import DistnerError
from distner.core.locks import LOCK_NAME, file_lock, folder_lock


def test_folders_made_only_for_the_lock_are_removed_again(tmp_path):
    cell = tmp_path / "retrain" / "deeper" / "en-fine"
    with folder_lock(cell, "--retrain-dir x"):
        assert (cell / LOCK_NAME).is_file()
    assert list(tmp_path.iterdir()) == []  # a refused or failed step leaves no empty folders
    with folder_lock(cell, "--retrain-dir x"):
        (cell / "tuned").mkdir()  # the folder became what the lock guards: it stays
    assert (cell / "tuned").is_dir() and not (cell / LOCK_NAME).exists()


def test_a_lock_beside_its_folder_leaves_the_parent_it_made_only_if_used(tmp_path):
    out = tmp_path / "runs" / "train"
    with folder_lock(out, "--out x", beside=True):
        assert (tmp_path / "runs" / ".train.lock").is_file()
    assert list(tmp_path.iterdir()) == []


def take(lock) -> None:
    with file_lock(lock, "x", waiting="w: waiting"):
        pass


def test_a_file_lock_makes_the_next_taker_wait_and_stays(tmp_path, capsys):
    lock = tmp_path / "made" / ".x.lock"
    order: list[str] = []
    with file_lock(lock, "x"):
        waiter = threading.Thread(target=lambda: take(lock))
        waiter.start()
        waiter.join(timeout=1)
        assert waiter.is_alive()  # it waits; it is not refused
        order.append("released")
    waiter.join(timeout=10)
    assert not waiter.is_alive() and order == ["released"] and lock.is_file()
    assert capsys.readouterr().err == "w: waiting\n"
    (tmp_path / "file").write_text("")
    with pytest.raises(DistnerError, match=r"^x: cannot \(\w"):
        with file_lock(tmp_path / "file" / ".y.lock", "x: cannot"):
            pass
