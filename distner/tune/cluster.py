"""Offline checks of Ray cluster launcher YAMLs (cluster/*.yaml) before `ray up` spends money.

`ray up` has no dry run, so a misspelled key is otherwise found only after nodes start. This runs
Ray's own validator: `prepare_config` fills the provider's defaults (from YAML files shipped with
Ray; it calls no cloud API) and `validate_config` checks the result against Ray's JSON schema.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import io
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from distner.core.errors import DistnerError


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Ray logs INFO lines ("setting max workers ...") and prints its own PANIC line before raising;
    the caller reports the problem once, as one line."""
    log = logging.getLogger("ray.autoscaler")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        log.setLevel(level)


def _load(path: Path) -> dict[str, Any]:
    try:
        if not path.exists():
            raise DistnerError(f"{path}: file not found")
        if not path.is_file():  # a FIFO would block the read forever; a folder cannot be read
            raise DistnerError(f"{path}: not a regular file")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DistnerError(f"{path}: not a text file (not valid UTF-8)") from None
    except OSError as e:
        raise DistnerError(f"{path}: cannot read cluster file ({e.strerror or e})") from None
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DistnerError(f"{path}: {where}invalid YAML: {problem}") from None
    if not isinstance(cfg, dict):
        raise DistnerError(f"{path}: expected a mapping of cluster keys, got {type(cfg).__name__}")
    # prepare_config indexes these without checking; say which key is wrong instead of a KeyError.
    provider = cfg.get("provider")
    if not isinstance(provider, dict) or not isinstance(provider.get("type"), str):
        raise DistnerError(f"{path}: provider.type: required (aws, gcp, azure, local, ...)")
    return cfg


def _schema_problem(e: Any) -> tuple[str, str]:
    """(key path, message) for a jsonschema ValidationError. For an unknown key, the path ends in
    that key: the error itself points at the mapping holding it, which hides the typo."""
    keys = [str(k) for k in e.absolute_path]
    if e.validator == "additionalProperties" and isinstance(e.instance, dict):
        known = list(e.schema.get("properties", {}))
        patterns = list(e.schema.get("patternProperties", {}))
        extra = [k for k in e.instance if k not in known and not any(re.search(p, str(k)) for p in patterns)]
        if extra:
            close = difflib.get_close_matches(str(extra[0]), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; allowed: {', '.join(known)}"
            return ".".join([*keys, str(extra[0])]), f"unknown key{hint}"
    return ".".join(keys) or "(top level)", e.message


def validate_cluster_file(path: str | Path) -> None:
    """Raise DistnerError("{path}: {key path}: {message}") if Ray would reject this cluster YAML."""
    import jsonschema
    from click import ClickException

    from distner.core.compat import check_cluster_config

    path = Path(path)
    cfg = _load(path)
    try:
        with _quiet():
            # prepare_config rewrites some providers' configs in place; keep the user's dict intact.
            check_cluster_config(copy.deepcopy(cfg))
    except jsonschema.ValidationError as e:
        keys, message = _schema_problem(e)
        raise DistnerError(f"{path}: {keys}: {message}") from None
    except NotImplementedError as e:  # unknown provider.type
        raise DistnerError(f"{path}: provider.type: {e}") from None
    except ClickException as e:  # cli_logger.abort, e.g. a local provider without head_ip/worker_ips
        raise DistnerError(f"{path}: {e.format_message()}") from None
    except (ValueError, RuntimeError, KeyError, TypeError, AttributeError) as e:
        # Ray's own cross-key checks (head_node_type, min vs max workers) and wrongly typed values.
        message = f"missing key {e}" if isinstance(e, KeyError) else str(e)
        raise DistnerError(f"{path}: {message}") from None


def validate_cluster_files(paths: Iterable[str | Path]) -> list[tuple[str, str | None]]:
    """(path, first problem or None) per file, so a CLI can print one line per file."""
    results: list[tuple[str, str | None]] = []
    for path in paths:
        try:
            validate_cluster_file(path)
            results.append((str(path), None))
        except DistnerError as e:
            results.append((str(path), str(e)))
    return results
