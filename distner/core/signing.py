"""Files signed with a per-user key (HMAC-SHA256), as Jupyter signs the notebooks a user trusts: a
signature says "this user's distner wrote these bytes on a machine with this user's key".

The key is 32 random bytes in `study-key` under $DISTNER_KEY_DIR, else $XDG_CONFIG_HOME/distner,
else ~/.config/distner: outside any folder it signs, created (0600) on first use. Nothing here
knows what the files mean; the caller says which files a signature covers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from distner.core.errors import DistnerError

KEY_DIR_ENV = "DISTNER_KEY_DIR"
KEY_FILE = "study-key"


def key_path() -> Path:
    here = os.environ.get(KEY_DIR_ENV)
    if here:
        return Path(here).expanduser() / KEY_FILE
    config = os.environ.get("XDG_CONFIG_HOME") or Path("~/.config").expanduser()
    return Path(config) / "distner" / KEY_FILE


def user_key(create: bool) -> bytes | None:
    """This user's key; made on first use when `create` (None when there is none and not `create`)."""
    path = key_path()
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        if not create:
            return None
    except (OSError, ValueError) as e:
        raise DistnerError(
            f"{path}: this user's signing key is unreadable ({e}); remove it to make a new one"
        ) from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never another's, never shared
    except FileExistsError:  # made meanwhile by another distner of this user
        return user_key(create=False)
    except OSError as e:
        raise DistnerError(f"{path}: cannot make this user's signing key ({e.strerror or e})") from None
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    return key


def file_hashes(folder: Path, names: list[str]) -> dict[str, str]:
    """sha256 of each file (`names` relative to `folder`)."""
    out = {}
    for name in sorted(names):
        h = hashlib.sha256()
        with open(folder / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out[name] = h.hexdigest()
    return out


def sign(key: bytes, hashes: dict[str, str]) -> str:
    """The HMAC of a set of files, by their names and hashes."""
    text = json.dumps(hashes, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def verify(key: bytes, hashes: dict[str, str], signature: str) -> bool:
    return hmac.compare_digest(sign(key, hashes), signature)
