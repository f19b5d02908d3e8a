"""core/locks.py in one process (through real processes: test_folders.py): folders made only to hold a
lock do not outlive it."""

from __future__ import annotations

from distner.core.locks import LOCK_NAME, folder_lock


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
