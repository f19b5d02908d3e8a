"""User-facing errors: the CLI prints these as one line and exits with code 2."""


class DistnerError(Exception):
    """A problem with the user's input (file, flag, config); never a bug in distner."""


class TrainingDiverged(DistnerError):
    """The training loss became NaN or infinite (usually: learning rate too high)."""


class StudyInterrupted(DistnerError):
    """Ctrl-C or a stop signal during a study: its state is saved and `--resume` continues it."""
