"""User-facing errors: the CLI prints these as one line and exits with code 2."""


class DistnerError(Exception):
    """A problem with the user's input (file, flag, config); never a bug in distner."""


class StudyInterrupted(DistnerError):
    """Ctrl-C or a stop signal during a study: its state is saved and `--resume` continues it."""
