"""core/signing.py: the per-user key (made 0600 on first use, where DISTNER_KEY_DIR or XDG says,
never in a folder it signs) and HMACs that only that key verifies."""

from __future__ import annotations

import os

from distner.core import signing


def test_the_key_is_made_once_private_and_where_the_environment_says(tmp_path, monkeypatch):
    monkeypatch.setenv(signing.KEY_DIR_ENV, str(tmp_path / "keys"))
    assert signing.user_key(create=False) is None
    key = signing.user_key(create=True)
    path = tmp_path / "keys" / signing.KEY_FILE
    assert key is not None and len(key) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert signing.user_key(create=True) == key == signing.user_key(create=False)
    monkeypatch.delenv(signing.KEY_DIR_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert signing.key_path() == tmp_path / "xdg" / "distner" / signing.KEY_FILE


def test_only_the_key_that_signed_verifies_and_only_the_same_files(tmp_path, monkeypatch):
    (tmp_path / "a.pkl").write_bytes(b"state")
    hashes = signing.file_hashes(tmp_path, ["a.pkl"])
    mine, theirs = os.urandom(32), os.urandom(32)
    mac = signing.sign(mine, hashes)
    assert signing.verify(mine, hashes, mac)
    assert not signing.verify(theirs, hashes, mac)
    assert not signing.verify(mine, {"a.pkl": "0" * 64}, mac)
