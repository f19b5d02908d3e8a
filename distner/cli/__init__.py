"""The command line: parses flags (built from the options dataclasses) and dispatches."""
