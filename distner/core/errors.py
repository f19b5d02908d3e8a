"""User-facing errors: the CLI prints these as one line and exits with code 2."""

from __future__ import annotations

import reprlib

MAX_ECHO = 80  # characters of a user's value echoed in an error message
MAX_MESSAGE = 1000  # characters of a whole error line

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxdict, _repr.maxlist, _repr.maxtuple, _repr.maxset = 3, 4, 6, 6, 6
_repr.maxstring = _repr.maxother = MAX_ECHO


class DistnerError(Exception):
    """A problem with the user's input (file, flag, config); never a bug in distner."""


class TrainingDiverged(DistnerError):
    """The training loss became NaN or infinite (usually: learning rate too high)."""


class StudyInterrupted(DistnerError):
    """Ctrl-C or a stop signal during a study: its state is saved and `--resume` continues it."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a fit: nothing it made counts as a run (the CLI exits 130)."""


def shorten(value: object, limit: int = MAX_ECHO) -> str:
    """`repr(value)` cut to about `limit` characters. Input echoed in a message can be huge (a YAML
    alias bomb expands to megabytes); reprlib bounds the work as well as the text."""
    text = _repr.repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...[{len(text) - limit} more]"


def one_line(message: object, limit: int = MAX_MESSAGE) -> str:
    """A message as a single bounded line, whatever it embeds (library errors span lines)."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else f"{text[:limit]}...[{len(text) - limit} more]"
