"""Whether distner may hand a study's saved Ray state to Ray. Ray unpickles it on --resume,
--results-only and a pipeline's resume, and a pickle runs whatever code it names: so after each run
of a study (an interrupted one too) distner signs that state with this user's key (core/signing.py),
and before Ray reads it again checks the signature. A state this user's key did not sign (someone
else's study, a study from before signing, or one changed, damaged or truncated since) is refused
unless the user passes --trust; it is signed after that run.

Signed (relative to the study folder): every pickle and Lightning checkpoint (`*.pkl`, `*.ckpt`: the
tuner, the searcher's state, trials' params), Ray's experiment state JSON files (they carry
cloudpickled trials), and every file under a trial's `checkpoint_*/`. Data distner reads as data
(distner.json, summary.json, trials.csv, optuna.db, results) is not covered: never unpickled.
A study on remote storage (s3://, gs://) is neither signed nor checked.

Writes: `ray-state.sig` in the study folder (JSON: the files' sha256 and the HMAC over them).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from distner.core import signing
from distner.core.compat import TUNER_STATE
from distner.core.errors import DistnerError
from distner.core.fileio import write_json

SIGNATURE = "ray-state.sig"
# the files Ray (and Lightning, for a trial's checkpoint) may unpickle on a restore
_CODE = re.compile(
    r"(.*\.(pkl|ckpt)|(.*/)?(experiment_state|basic-variant-state)[^/]*\.json|(.*/)?checkpoint_[^/]*/.*)"
)


def state_files(folder: Path) -> list[str]:
    return sorted(
        rel
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink() and _CODE.fullmatch(rel := p.relative_to(folder).as_posix())
    )


def sign_state(folder: Path) -> None:
    """Sign the Ray state this run of the study left (nothing when it left none)."""
    if not (folder / TUNER_STATE).is_file():
        return
    key = signing.user_key(create=True)
    assert key is not None
    hashes = signing.file_hashes(folder, state_files(folder))
    write_json(folder / SIGNATURE, {"files": hashes, "hmac": signing.sign(key, hashes)}, within=folder)


def check_state(folder: Path, trust: bool) -> None:
    """Refuse (one line) to let Ray read a state this user's key did not sign, unless `trust`."""
    why = _unsigned(folder)
    if why is None:
        return
    if trust:
        print(f"distner: {folder}: {why}; resuming it as --trust says", file=sys.stderr)
        return
    raise DistnerError(
        f"{folder}: {why}; resuming runs code from it: add --trust if you made it or trust who did "
        "(needed once for a study from before distner signed its state, or one killed before it "
        "could sign it: SIGKILL, out of memory, power loss)"
    )


def _unsigned(folder: Path) -> str | None:
    """Why the state is not this user's signed one; None when it is."""
    state = f"Ray's state ({TUNER_STATE})"
    key = signing.user_key(create=False)
    try:
        recorded = json.loads((folder / SIGNATURE).read_text(encoding="utf-8"))
        files, mac = recorded["files"], recorded["hmac"]
        if not (isinstance(files, dict) and isinstance(mac, str)):
            raise ValueError
    except FileNotFoundError:
        return f"{state} is not signed by this user's key"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{state} has a damaged signature ({SIGNATURE})"
    if key is None or not signing.verify(key, files, mac):
        return f"{state} is not signed by this user's key"
    have = state_files(folder)
    extra = sorted(set(have) - set(files))
    if extra:
        return f"{state} holds a file its signature does not cover ({extra[0]})"
    # a signed file since removed is no risk: distner drops ended trials' checkpoints after signing
    try:
        now = signing.file_hashes(folder, [name for name in files if (folder / name).is_file()])
    except OSError as e:
        return f"{state} cannot be read ({e.strerror or e})"
    changed = [name for name in sorted(now) if now[name] != files[name]]
    if changed:
        return (
            f"{state} changed since this user's key signed it ({changed[0]}: replaced, damaged or truncated)"
        )
    return None
