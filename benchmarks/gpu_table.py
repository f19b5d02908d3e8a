"""The table of issue targets from the benchmarks' JSON lines (gpu_check.sh's, or any run's):

    python benchmarks/gpu_table.py throughput.jsonl tune_overhead.jsonl

Each row: what, the measured value, the target, and whether it holds. A row whose benchmark did
not run (or failed) says so instead of a number.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# (row, benchmark, field, target): the targets of docs/performance.md's GPU table
ROWS = (
    ("study / the same fits one after another (`speedup`)", "tune_overhead", "speedup", 3.0),
    ("study aggregate tokens/s / one bare loop (`aggregate_ratio`)", "tune_overhead", "aggregate_ratio", 5.0),
    ("8 members in one process / one bare loop", "train_throughput_packed", "aggregate_ratio", None),
    ("8 members in one process / one member alone", "train_throughput_packed", "packing_gain", None),
    ("lean trial loop / bare loop (`engine_ratio`)", "train_throughput", "engine_ratio", 0.9),
    ("Lightning fit / bare loop (`ratio`)", "train_throughput", "ratio", 0.9),
    (
        "levers / seed, lean trial loop (`engine_levers_ratio`)",
        "train_throughput_levers",
        "engine_levers_ratio",
        0.6,
    ),
    ("levers / seed, Lightning fit (`levers_ratio`)", "train_throughput_levers", "levers_ratio", 0.6),
    # the ceiling of the next lever (not in distner yet): the seed model's step as CUDA graphs
    ("probe: 1 member's step as CUDA graphs / bare loop", "graph_probe", "graphed_k1_ratio", None),
    ("probe: 8 such members in 8 threads / bare loop", "graph_probe", "graphed_k8_ratio", None),
)


def read_lines(paths: list[str]) -> dict[str, dict]:
    """The last JSON line of each benchmark kind in the files (others: progress, failures)."""
    found: dict[str, dict] = {}
    for path in paths:
        if not Path(path).is_file():
            continue
        for line in Path(path).read_text().splitlines():
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "benchmark" in obj:
                    found[obj["benchmark"]] = obj
    return found


def table(found: dict[str, dict]) -> str:
    device = next((o["device"] for o in found.values() if "device" in o), "?")
    lines = [f"device: {device}", "", "| what | measured | target | holds |", "|---|---:|---:|---|"]
    for what, bench, field, target in ROWS:
        value = found.get(bench, {}).get(field)
        if value is None:
            lines.append(f"| {what} | not run | {f'>= {target}' if target else ''} | |")
            continue
        holds = "" if target is None else ("yes" if value >= target else "no")
        lines.append(f"| {what} | {value} | {f'>= {target}' if target else ''} | {holds} |")
    lines.append("| six cells x 64 trials + retrains, one GPU (`distner pipeline`) | not run | <= 30 min | |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(read_lines(sys.argv[1:])))
