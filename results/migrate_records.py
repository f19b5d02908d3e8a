"""Move the published per-seed results into distner's retrain records, once.

Before experiments were files, shell scripts kept the per-seed scores of the published tables in
several JSON layouts (report.json's runs, finetune*/<cell>.json, ablation/<cell>.json, a TSV). This
reads them (and a run folder's own metrics.json where it is still on the machine, which wins) and
writes one retrain record per cell, `<publish>/retrain/<cell>/retrain.json`, the file
`distner pipeline --experiment experiments/<name>.yaml` reads and writes. No number is typed here:
every score comes from those files. Each variant's config is rebuilt as the experiment file would
build it (the winner's config plus the variant's overrides) and checked against what the old file
recorded, so a record never claims a config its runs did not have.

    python results/migrate_records.py        # from the project root; rewrites the records
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from distner.config import load_config
from distner.core.fileio import write_json
from distner.records import REPORTED, Variant, summarise
from distner.spaces import resolve_space_path
from distner.tune.study import best_meta
from distner.workflow.retrain import BUDGET_KEYS, select_final

SEEDS = [1, 2, 3]


def _metrics(run: str) -> dict[str, Any] | None:
    path = Path(run) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _seed_run(seed: int, run_dir: str, dev: dict, test: dict, best_epoch: Any, seconds: Any, old: str) -> dict:
    """One seed run; its folder's own metrics.json, where it still exists, over the old file's copy."""
    m = _metrics(old)
    if m is not None:
        dev = {k: m["dev"][k] for k in REPORTED}
        test = {k: m["test"][k] for k in REPORTED}
        best_epoch, seconds = m["best_epoch"], m["train_seconds"]
    return {
        "seed": seed,
        "run_dir": run_dir,
        "best_epoch": best_epoch,
        "train_seconds": seconds,
        "dev": dev,
        "test": test,
    }


def _check(config: dict[str, Any], recorded: dict[str, Any], what: str) -> None:
    """Every key the old file recorded has the value the rebuilt config has (keys added to distner
    since default to off, so an older file lacks them)."""
    bad = {k: (v, config.get(k)) for k, v in recorded.items() if k != "seed" and config.get(k) != v}
    if bad:
        sys.exit(f"{what}: the rebuilt config differs from the recorded one: {bad}")


def _variant(source: str, config: dict[str, Any], runs: list[dict]) -> Variant:
    return Variant(
        source=source, config=config, runs=runs, test=summarise(runs, "test"), dev=summarise(runs, "dev")
    )


def _from_report(cell: str, c: dict, best: str, runs_root: str) -> dict[str, Variant]:
    """The winner ("tuned") and the baseline, as a report.json recorded their seed runs."""
    tuned = load_config(best).to_flat()
    _check(tuned, c["hyperparameters"]["tuned"], f"{best}")
    base_cfg = load_config(resolve_space_path("tune_spaces/baseline.yaml"))
    base = base_cfg.replace(**{k: tuned[k] for k in BUDGET_KEYS}).to_flat()
    _check(base, c["hyperparameters"]["baseline"], f"{cell} baseline")
    prefix = f"{runs_root}/retrain/{cell}/"
    out = {}
    for name, cfg, src in (("tuned", tuned, best), ("baseline", base, "tune_spaces/baseline.yaml")):
        runs = [
            _seed_run(
                r["seed"],
                r["run_dir"].removeprefix(prefix),
                r["dev"],
                r["test"],
                r["best_epoch"],
                r["train_seconds"],
                r["run_dir"],
            )
            for r in c["runs"][name]
        ]
        out[name] = _variant(src, cfg, runs)
    return out


def _from_finetune(path: Path, name: str) -> tuple[str, Variant]:
    """A trained-encoder variant that run_finetune.sh recorded: dev and test macro-F1, test micro."""
    d = json.loads(path.read_text())
    cfg = load_config(d["config"], d["set"]).to_flat()
    runs = [
        _seed_run(
            r["seed"],
            f"{name}/seed-{r['seed']}",
            {"entity_macro_f1": r["dev"]},
            {"entity_macro_f1": r["test"], "entity_micro_f1": r["test_micro"]},
            r["best_epoch"],
            r["train_seconds"],
            r["run"],
        )
        for r in d["runs"]
    ]
    return d["cell"], _variant(f"{d['config']} with {' '.join(d['set'])}", cfg, runs)


def _from_ablation(path: Path, best: str) -> dict[str, Variant]:
    """One lever off at a time (run_ablation.sh): test macro-F1 per seed; dev was not kept."""
    d = json.loads(path.read_text())
    out = {}
    for key, v in d.items():
        if not key.startswith("no-"):
            continue
        lever = key.removeprefix("no-")
        cfg = load_config(best, [f"{lever}="]).to_flat()
        runs = [
            _seed_run(s, f"{key}/seed-{s}", {}, {"entity_macro_f1": score}, None, None, run)
            for s, score, run in zip(v["seeds"], v["scores"], v["runs"], strict=True)
        ]
        out[key] = _variant(f"{best} with {lever}=", cfg, runs)
    return out


def _from_tsv(path: Path, best: str) -> dict[str, Variant]:
    """The six-cell winner's ablation (ablation.sh): one seed, scores in percent to 2 decimals."""
    out = {}
    sets = {
        "no-char-cnn": "char_features=false",
        "no-crf": "crf=false",
        "unidirectional": "bidirectional=false",
        "truncate-25": "seq_len=25",
        "no-word-dropout": "word_dropout=0.0",
    }
    for row in csv.DictReader(path.open(), delimiter="\t"):
        name = row["variant"]
        if name not in sets:
            continue
        cfg = load_config(best, [sets[name]]).to_flat()
        _check(cfg, {**load_config(best).to_flat(), **eval_change(row["change"])}, name)
        run = _seed_run(
            1,
            f"{name}/seed-1",
            {"entity_macro_f1": float(row["dev_macro_f1"]) / 100},
            {"entity_macro_f1": float(row["test_macro_f1"]) / 100},
            None,
            round(float(row["train_minutes"]) * 60, 1),
            f"runs/results/ablation/hi-fine/{name}",
        )
        out[name] = _variant(f"{best} with {sets[name]} ({path}: percent, 2 decimals)", cfg, [run])
    return out


def eval_change(text: str) -> dict[str, Any]:
    import ast

    return dict(ast.literal_eval(text))


def _write(publish: str, cell: str, variants: dict[str, Variant], study: str, best: str) -> None:
    record = {
        "cell": cell,
        "lang": cell.split("-")[0],
        "granularity": cell.split("-")[1],
        "train_on": "train",
        "seeds": SEEDS,
        "variants": variants,
        "study": study,
        "best_meta": best_meta(best),
        "final": select_final(variants, SEEDS),
    }
    path = Path(publish) / "retrain" / cell / "retrain.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    picked = record["final"]["variant"]
    print(f"{path}: {len(variants)} variants, picked {picked} (dev {record['final']['dev_entity_macro_f1']:.4f})")


def main() -> None:
    six = json.loads(Path("results/report.json").read_text())["cells"]
    for cell, c in six.items():
        variants = _from_report(cell, c, f"results/best/{cell}.yaml", "runs/results")
        if cell == "hi-fine":
            variants |= _from_tsv(Path("results/ablation/hi-fine.tsv"), "results/best/hi-fine.yaml")
        _write("results", cell, variants, f"results/studies/{cell}", f"results/best/{cell}.yaml")

    first = json.loads(Path("results/pretrained/report.json").read_text())["cells"]
    extra: dict[str, dict[str, Variant]] = {}
    names = {
        "finetune": "top4",
        "finetune-linear": "top4-linear",
        "finetune-linear-8": "top8-linear",
        "finetune-linear-elr1e-4": "top4-linear-elr1e-4",
        "finetune-linear-elr2e-4": "top4-linear-elr2e-4",
        "finetune-linear-elr1e-4-bn": "top4-linear-elr1e-4-bn",
    }
    for folder, name in names.items():
        for path in sorted(Path("results/pretrained", folder).glob("*.json")):
            cell, v = _from_finetune(path, name)
            extra.setdefault(cell, {})[name] = v
    for path in sorted(Path("results/pretrained/ablation").glob("*.json")):
        cell = path.stem
        extra.setdefault(cell, {}).update(_from_ablation(path, f"results/pretrained/best/{cell}.yaml"))
    for cell, c in first.items():
        best = f"results/pretrained/best/{cell}.yaml"
        variants = _from_report(cell, c, best, "runs/pretrained") | extra.get(cell, {})
        _write("results/pretrained", cell, variants, f"results/pretrained/studies/{cell}", best)

    focus = json.loads(Path("results/pretrained/focus/report.json").read_text())["cells"]
    for cell, c in focus.items():
        best = f"results/pretrained/focus/best/{cell}.yaml"
        variants = _from_report(cell, c, best, "runs/pretrained-focus")
        path = Path("results/pretrained/finetune-focus-linear") / f"{cell}.json"
        if path.is_file():
            variants["linear"] = _from_finetune(path, "linear")[1]
        _write("results/pretrained/focus", cell, variants, f"results/pretrained/focus/studies/{cell}", best)


if __name__ == "__main__":
    main()
