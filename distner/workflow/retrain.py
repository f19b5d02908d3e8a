"""Retrain the winners: the tuned config(s) and the reference baseline, from scratch, with several seeds.

Reads `best/<cell>.yaml` (or the study's top-k trials, through study.StudyFiles) and
`tune_spaces/baseline.yaml`; writes `<out>/<cell>/{tuned,baseline}[...]/seed-<n>/` run folders,
`<out>/<cell>/retrain.json` and `<out>/<cell>/final.json`, which names the cell's final model (best
dev score, never test).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from distner.config import RunConfig, load_config, parse_overrides
from distner.core import manifest
from distner.core.errors import DistnerError
from distner.core.fileio import read_json, write_json
from distner.core.locks import folder_lock
from distner.core.paths import check_output_dir, check_output_file, is_remote
from distner.data.conll import Corpus
from distner.model import runs
from distner.options import RetrainOptions, parse_variants
from distner.records import (
    REPORTED,
    RETRAIN_JSON,
    SELECTED_BY,
    Final,
    RetrainRecord,
    SeedRun,
    Variant,
    config_key,
    summarise,
)
from distner.spaces import resolve_space_path
from distner.tune.study import StudyFiles, best_meta

# Keys that set the data budget rather than the model: the baseline inherits them from the tuned
# config so that both are trained on the same data (e.g. the sample of a smoke study).
BUDGET_KEYS = ("max_train_sentences", "max_eval_sentences")


def tuned_configs(opts: RetrainOptions) -> list[tuple[str, RunConfig, str]]:
    """(variant name, config, where it came from) for the top-k tuned configs."""
    if opts.top_k == 1:
        path = Path(opts.config or Path(opts.best_dir) / f"{opts.cell}.yaml")
        if not path.is_file():
            raise DistnerError(
                f"{path}: best config not found; make it with: "
                f"distner tune --lang {opts.cell.lang} --granularity {opts.cell.granularity}"
            )
        return [("tuned", load_config(path), str(path.resolve()))]
    meta = best_meta(Path(opts.best_dir) / f"{opts.cell}.yaml") or {}
    # the study that wrote best/, if known
    study = StudyFiles(Path(meta.get("study") or Path(opts.storage) / opts.cell))
    ranked = study.ranked()
    if len(ranked) < opts.top_k:
        raise DistnerError(f"--top-k {opts.top_k}: study {study.folder} has {len(ranked)} finished trial(s)")
    out = []
    for k, row in enumerate(ranked[: opts.top_k], 1):
        cfg, cfg_file = study.trial_config(row)
        out.append((f"tuned-{k}", cfg, str(cfg_file)))
    return out


def baseline_config(opts: RetrainOptions, like: RunConfig) -> RunConfig:
    base = load_config(resolve_space_path(opts.baseline))
    budget = {k: like.to_flat()[k] for k in BUDGET_KEYS}
    return base.replace(source=opts.baseline, **budget)


def retrain_cell(opts: RetrainOptions) -> RetrainRecord:
    """Train every (variant, seed) not done yet, then write retrain.json and final.json."""
    cell_dir = check_output_dir(Path(opts.retrain_dir).resolve() / opts.cell, "--retrain-dir")
    for name in ("final.json", "retrain.json"):
        check_output_file(cell_dir / name, "--retrain-dir")
    # one writer per cell: two would train the same seeds and each write retrain.json
    with folder_lock(cell_dir, f"--retrain-dir {cell_dir}"):
        return _retrain_cell(opts, cell_dir)


def _variants(opts: RetrainOptions) -> list[tuple[str, RunConfig, str, list[int]]]:
    """(name, config, where it came from, seeds): the tuned config(s), or its named variants, then
    the baseline; `--set` applies to all of them."""
    over = parse_overrides(list(opts.overrides))
    tuned = [(n, c, src, opts.seed_list) for n, c, src in tuned_configs(opts)]
    named = parse_variants(opts.variants)
    if named:
        _, cfg, src, _ = tuned[0]
        tuned = [
            (
                n,
                cfg.replace(source=f"--variant {n}", **parse_overrides(sets)),
                src,
                list(own or opts.seed_list),
            )
            for n, (sets, own) in named.items()
        ]
    out = [(n, c.replace(source="--set", **over), src, seeds) for n, c, src, seeds in tuned]
    if not opts.no_baseline:
        base = baseline_config(opts, out[0][1]).replace(source="--set", **over)
        out.append(("baseline", base, str(resolve_space_path(opts.baseline)), opts.seed_list))
    return out


def _recorded(cell_dir: Path) -> dict[str, SeedRun]:
    """The seed runs an earlier retrain.json of this cell recorded, by their config: a run whose
    folder is gone (git-ignored, another machine) is reused from the record, not trained again."""
    path = cell_dir / RETRAIN_JSON
    data = read_json(path) if path.is_file() else None
    if not isinstance(data, dict) or not isinstance(data.get("variants"), dict):
        return {}
    out: dict[str, SeedRun] = {}
    for v in data["variants"].values():
        if isinstance(v, dict) and isinstance(v.get("config"), dict):
            for run in v.get("runs") or []:
                out[config_key({**v["config"], "seed": run["seed"]})] = run
    return out


def _retrain_cell(opts: RetrainOptions, cell_dir: Path) -> RetrainRecord:
    variants = _variants(opts)
    # A tuned config equal to the baseline (the reference won the study) reuses the baseline's runs.
    base_flat = variants[-1][1].to_flat() if variants[-1][0] == "baseline" else None
    run_dirs = {
        (name, s): cell_dir / ("baseline" if cfg.to_flat() == base_flat else name) / f"seed-{s}"
        for name, cfg, _, seeds in variants
        for s in seeds
    }
    recorded = _recorded(cell_dir)
    jobs = list(
        {
            run_dirs[n, s]: (n, cfg.replace(seed=s), run_dirs[n, s])
            for n, cfg, _, seeds in variants
            for s in seeds
        }.values()
    )
    todo = [j for j in jobs if not _done(j[2], j[1]) and config_key(j[1].to_flat()) not in recorded]
    if not opts.overwrite:  # a finished run is replaced only when asked
        for _, cfg, out in todo:
            _check_not_finished(out, cfg)
    corpus = None
    if todo:  # read whole, and every config checked against it, before the cell is claimed
        corpus = Corpus.load(opts.data_dir, opts.cell.lang, opts.cell.granularity)
        corpus = corpus.with_extra_train_splits(c.train.extra_langs for _, c, _ in todo)
        if opts.train_on == "train+dev":
            corpus = corpus.with_dev_in_train()
        _check_configs_fit(todo, corpus, opts)
    _claim(cell_dir, opts)  # once the configs are known good: a refused retrain leaves no folder
    if corpus is not None:
        keep: runs.KeepEpoch = "last" if opts.train_on == "train+dev" else "best"
        # torch: only once there is training to do
        from distner.pretrained.cache import prebuild
        from distner.pretrained.specs import spec

        specs = list(dict.fromkeys(spec(c.model) for _, c, _ in todo if c.model.encoder_features))
        if specs:  # built once here, so that seeds running side by side only read them
            prebuild(corpus.feature_splits(c.train.extra_langs for _, c, _ in todo), specs)
        # from here until they are rewritten, the cell's results would not match its run folders
        for name in ("retrain.json", "final.json"):
            (cell_dir / name).unlink(missing_ok=True)
        _run_jobs(todo, corpus, opts, keep)
    variant_records: dict[str, Variant] = {}
    for name, cfg, src, seeds in variants:
        done = [_seed_run(cell_dir, run_dirs[name, s], cfg.replace(seed=s), recorded) for s in seeds]
        variant_records[name] = Variant(
            source=src,
            config=cfg.to_flat(),
            runs=done,
            test=summarise(done, "test"),
            dev=summarise(done, "dev"),
        )
    tuned_src = Path(variants[0][2])
    result = RetrainRecord(
        cell=opts.cell,
        lang=opts.cell.lang,
        granularity=opts.cell.granularity,
        train_on=opts.train_on,
        seeds=opts.seed_list,
        variants=variant_records,
        study=_study_of(variants[0][2], opts),
        best_meta=best_meta(tuned_src) if tuned_src.suffix == ".yaml" and opts.top_k == 1 else None,
        final=select_final(variant_records, opts.seed_list),
    )
    write_json(
        cell_dir / "final.json", result["final"], within=cell_dir
    )  # a received cell: written inside only
    write_json(cell_dir / RETRAIN_JSON, result, within=cell_dir)
    return result


def _seed_run(cell_dir: Path, run_dir: Path, cfg: RunConfig, recorded: dict[str, SeedRun]) -> SeedRun:
    """A finished seed run from its folder, or as the earlier record has it when the folder is gone."""
    if not _done(run_dir, cfg):
        return recorded[config_key(cfg.to_flat())]
    m = runs.read_metrics(run_dir)
    return SeedRun(
        seed=cfg.train.seed,
        run_dir=str(run_dir.relative_to(cell_dir)),  # the cell folder can move
        best_epoch=m["best_epoch"],
        train_seconds=m["train_seconds"],
        dev={k: m["dev"][k] for k in REPORTED},
        test={k: m["test"][k] for k in REPORTED},
    )


def select_final(variants: dict[str, Variant], seeds: list[int]) -> Final:
    """The cell's final model: among the variants (never the baseline) trained on every seed, the
    one with the best dev entity macro-F1 mean over them, and within it the seed run best on dev.
    Test never picks; a variant on fewer seeds (an ablation, say) is shown, not picked."""
    tuned = {
        n: v
        for n, v in variants.items()
        if n != "baseline"
        and {r["seed"] for r in v["runs"]} >= set(seeds)
        and all("entity_macro_f1" in r["dev"] for r in v["runs"])  # old records may lack dev
    }
    if not tuned:
        raise DistnerError("no variant besides the baseline has dev scores on every seed to pick by")
    name = max(tuned, key=lambda n: _mean_dev(tuned[n]))
    best = max(tuned[name]["runs"], key=lambda r: r["dev"]["entity_macro_f1"])  # its run_dir: inside the cell
    return Final(
        run_dir=best["run_dir"],
        selected_by=SELECTED_BY,
        dev_entity_macro_f1=best["dev"]["entity_macro_f1"],
        variant=name,
    )


def _mean_dev(v: Variant) -> float:
    return statistics.fmean(r["dev"]["entity_macro_f1"] for r in v["runs"])


def _check_configs_fit(jobs: list[tuple[str, RunConfig, Path]], corpus: Corpus, opts: RetrainOptions) -> None:
    """What would stop every seed run is said once, before the first starts: a min_freq that
    leaves no word, 16-bit AMP where the runs will be on this machine's CPU."""
    import torch

    from distner.data.encoded import check_vocabulary
    from distner.train.precision import check_precision

    on_cpu = not opts.address and not torch.cuda.is_available() and opts.accelerator != "gpu"
    for name, cfg, _ in jobs:
        try:
            check_vocabulary(corpus, cfg)
            check_precision(cfg.train.precision, "cpu" if on_cpu else "gpu")
        except DistnerError as e:
            raise DistnerError(f"{name} config: {e}") from None


def _run_jobs(
    jobs: list[tuple[str, RunConfig, Path]], corpus: Corpus, opts: RetrainOptions, keep: runs.KeepEpoch
) -> None:
    import torch

    from distner.train.fit import fit_into

    if opts.address or torch.cuda.device_count() > 0:
        from distner.tune.ray_runtime import (
            fit_on_ray,  # Ray runs the seeds in parallel where GPUs or nodes exist
        )

        fit_on_ray(jobs, corpus, address=opts.address, gpus_per_run=opts.gpus_per_run, keep=keep)
        return
    for i, (name, cfg, out) in enumerate(jobs, 1):
        print(
            f"[{i}/{len(jobs)}] {opts.cell} {name} seed {cfg.train.seed} -> {out}",
            file=sys.stderr,
            flush=True,
        )
        fit_into(
            cfg, corpus, out, overwrite=True, accelerator=opts.accelerator, progress=opts.progress, keep=keep
        )


def _done(run_dir: Path, cfg: RunConfig) -> bool:
    """A seed run counts as done only if it finished with exactly this config."""
    return runs.finished_config(run_dir) == cfg.to_flat()


def _check_not_finished(run_dir: Path, cfg: RunConfig) -> None:
    """A finished seed run made with another config is not replaced without --overwrite."""
    had, want = runs.finished_config(run_dir), cfg.to_flat()
    if had is None:
        return
    key = next((k for k in sorted(set(had) | set(want)) if had.get(k) != want.get(k)), "?")
    raise DistnerError(
        f"{run_dir}: finished with {key}={had.get(key)!r}, asked for {key}={want.get(key)!r}; "
        "add --overwrite to retrain it, or use another --retrain-dir"
    )


def _claim(cell_dir: Path, opts: RetrainOptions) -> None:
    """The cell folder is this cell's (its distner.json), or new, or one an older distner made."""
    want = manifest.Manifest("retrain-cell", opts.cell, {"train_on": opts.train_on})
    have = manifest.read(cell_dir)
    hint = "retrain into another --retrain-dir"
    if have is not None:
        manifest.check(cell_dir, have, want, ("train_on",), hint)
    elif manifest.holds_files(cell_dir):
        recorded = read_json(cell_dir / "retrain.json") if (cell_dir / "retrain.json").is_file() else None
        if not (cell_dir / "baseline").is_dir() and recorded is None:
            raise DistnerError(
                f"{cell_dir}: holds files but no {manifest.NAME}, so it is not a retrain cell of this "
                f"distner; move it away or use another --retrain-dir"
            )
        if isinstance(recorded, dict) and recorded.get("cell") != opts.cell:
            raise DistnerError(
                f"{cell_dir}: holds {recorded.get('cell')} (its retrain.json), not {opts.cell}"
            )
        manifest.adopt(cell_dir, want)
    else:
        manifest.write(cell_dir, want)


def _study_of(source: str, opts: RetrainOptions) -> str | None:
    """The study a tuned config came from (recorded in best/*.yaml by distner tune)."""
    if source.endswith("config.yaml"):  # top-k: a trial folder inside the study
        return str(Path(source).parent.parent)
    study = (best_meta(source) or {}).get("study")
    return str(Path(study).resolve()) if study and not is_remote(study) else study
