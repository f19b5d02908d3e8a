"""Cluster launcher YAMLs in cluster/ pass Ray's own validator, offline, and typos are named."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from distner.core.errors import DistnerError
from distner.tune.cluster import validate_cluster_file, validate_cluster_files

from ..helpers import DISTNER, ROOT, write

CLUSTER_FILES = sorted((ROOT / "cluster").glob("*.yaml"))


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation must never reach a cloud API: fail any connection attempt."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("cluster validation tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_three_providers_are_shipped() -> None:
    assert {p.name for p in CLUSTER_FILES} >= {"aws.yaml", "gcp.yaml", "local.yaml"}


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_shipped_cluster_files_are_valid(path: Path) -> None:
    validate_cluster_file(path)
    text = path.read_text(encoding="utf-8")
    assert "--dashboard-host=127.0.0.1" in text  # dashboard only through `ray dashboard`
    assert "ray up cluster/" in text and "ray down cluster/" in text  # workflow header


def test_validate_cluster_files_reports_one_result_per_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    results = validate_cluster_files([*CLUSTER_FILES, missing])
    assert [p for p, _ in results] == [str(p) for p in [*CLUSTER_FILES, missing]]
    assert [problem for _, problem in results[:-1]] == [None] * len(CLUSTER_FILES)
    assert results[-1][1] is not None and str(missing) in results[-1][1]


def _aws_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "cluster" / "aws.yaml").read_text(encoding="utf-8")
    assert old in text
    return write(tmp_path / "typo.yaml", text.replace(old, new, 1))


def test_misspelled_top_level_key_is_named(tmp_path: Path) -> None:
    path = _aws_with(tmp_path, "\nmax_workers:", "\nmax_worker:")
    with pytest.raises(DistnerError) as err:
        validate_cluster_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: max_worker: ")
    assert "max_workers" in message  # the close match is suggested
    assert "\n" not in message


def test_misspelled_key_in_a_node_type_is_named(tmp_path: Path) -> None:
    path = _aws_with(tmp_path, "    min_workers: 1", "    min_worker: 1")
    with pytest.raises(DistnerError) as err:
        validate_cluster_file(path)
    assert str(err.value).startswith(f"{path}: available_node_types.gpu_worker.min_worker: ")


def test_misspelled_key_in_a_local_cluster_is_named(tmp_path: Path) -> None:
    text = (ROOT / "cluster" / "local.yaml").read_text(encoding="utf-8")
    path = write(tmp_path / "local.yaml", text.replace("\nsetup_commands:", "\nsetup_command:", 1))
    with pytest.raises(DistnerError, match=r"setup_command: unknown key \(did you mean setup_commands\?\)"):
        validate_cluster_file(path)


def test_wrong_value_type_names_the_key(tmp_path: Path) -> None:
    path = _aws_with(tmp_path, '{"CPU": 4, "GPU": 1}', '{"CPU": 4, "GPU": 0.5}')
    with pytest.raises(DistnerError, match=r"available_node_types\.gpu_worker\.resources\.GPU: 0\.5 is not"):
        validate_cluster_file(path)


def test_ray_cross_key_checks_become_one_line_errors(tmp_path: Path) -> None:
    path = _aws_with(tmp_path, "head_node_type: head", "head_node_type: boss")
    with pytest.raises(DistnerError, match=r"head_node_type"):
        validate_cluster_file(path)


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "cluster_name: x\nprovider:\n  type: aws\n  region: [us-west-2\n")
    with pytest.raises(DistnerError) as err:
        validate_cluster_file(path)
    assert str(path) in str(err.value)
    assert "line 5" in str(err.value)  # the unclosed [ is noticed at the end of the file


def test_bad_yaml_indentation_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "cluster_name: x\nprovider:\n  type: aws\n region: us-west-2\n")
    with pytest.raises(DistnerError, match=r"bad\.yaml: line 4, column 2: invalid YAML"):
        validate_cluster_file(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(DistnerError, match="nowhere.yaml"):
        validate_cluster_file(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "expected a mapping"),
        ("cluster_name: x\n", "provider.type: required"),
        ("cluster_name: x\nprovider: {type: nimbus}\n", "provider.type: Unsupported node provider: nimbus"),
        ("cluster_name: x\nprovider: {type: local}\n", "head_ip"),
    ],
)
def test_other_problems_are_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(DistnerError, match=expected) as err:
        validate_cluster_file(path)
    assert str(err.value).startswith(f"{path}: ")


@pytest.mark.integration  # distner in a subprocess
def test_cli_validates_every_shipped_file_and_names_a_typo(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent.parent
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "distner",
            "cluster",
            "validate",
            *sorted(map(str, (root / "cluster").glob("*.yaml"))),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.count(": ok") == 3, ok.stdout + ok.stderr
    bad = tmp_path / "aws.yaml"
    bad.write_text((root / "cluster" / "aws.yaml").read_text().replace("max_workers:", "max_worker:", 1))
    proc = subprocess.run([*DISTNER, "cluster", "validate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "max_worker" in proc.stdout and str(bad) in proc.stdout


def test_a_fifo_a_binary_file_and_a_missing_file_are_one_line_each(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # reading it would block forever
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)))
    missing = tmp_path / "missing.yaml"
    results = dict(validate_cluster_files([fifo, binary, missing]))
    assert results == {
        str(fifo): f"{fifo}: not a regular file",
        str(binary): f"{binary}: not a text file (not valid UTF-8)",
        str(missing): f"{missing}: file not found",
    }
