"""MultiCoNER CoNLL files: reading (strictly: a one-line error naming the file and line), writing,
and the `Corpus` of one language x granularity. Light on purpose (no torch): a command reads and
checks its data before it loads the training stack, so a bad file is an error at once.

File format: `# id <uuid>\\tdomain=<lang>` header per sentence, then `TOKEN _ _ TAG` lines (columns
separated by spaces or tabs), sentences separated by any number of blank lines; plain or
gzip-compressed UTF-8, with or without a BOM, LF or CRLF line endings.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from distner.config import REFERENCE_SEQ_LEN
from distner.core.errors import DistnerError, shorten
from distner.labels import FINE_TYPES, normalize_granularity, normalize_lang, to_coarse

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Sentence:
    id: str  # the full header line after "# id ", kept verbatim for round trips
    tokens: tuple[str, ...]
    tags: tuple[str, ...] | None  # None when the file carried no labels

    def __len__(self) -> int:
        return len(self.tokens)


def _check_tag(tag: str, prev: str, where: str, types: Collection[str]) -> None:
    if tag == "O":
        return
    prefix, _, etype = tag.partition("-")
    if prefix not in ("B", "I") or not etype:
        raise DistnerError(f"{where}: malformed tag {shorten(tag)} (expected O, B-TYPE or I-TYPE)")
    if etype not in types:
        raise DistnerError(f"{where}: unknown entity type {shorten(etype)} in tag {shorten(tag)}")
    if prefix == "I" and prev[2:] != etype:
        raise DistnerError(f"{where}: {tag!r} follows {prev!r}; IOB2 needs B-{etype} to start an entity")


# Columns are separated by any run of ASCII spaces or tabs: the release uses single spaces, many
# CoNLL tools write tabs. Unicode spaces (NBSP, ...) never separate: they can be part of a token.
_COLUMN_SEP = re.compile(r"[ \t\v\f]+")


_GZ_DAMAGE = (EOFError, zlib.error, gzip.BadGzipFile)


def split_columns(line: str) -> list[str]:
    return _COLUMN_SEP.split(line.strip(" \t\v\f"))


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, plain or .gz, without a leading BOM or the line ending
    (LF or CRLF). A damaged file or undecodable line is a one-line DistnerError naming the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise DistnerError(f"{path}:{lineno}: not valid UTF-8") from None
                yield lineno, (line.removeprefix("\ufeff") if lineno == 1 else line).rstrip("\r\n")
    except _GZ_DAMAGE as e:
        raise DistnerError(f"{path}: damaged or truncated gzip file ({e})") from None
    except OSError as e:
        raise DistnerError(f"{path}: cannot read ({e.strerror or e})") from None


def read_conll(
    path: str | os.PathLike, require_tags: bool = True, types: Collection[str] = FINE_TYPES
) -> list[Sentence]:
    """Parse a MultiCoNER file, validating every line against the entity `types` (fine by default).

    With `require_tags=False` (prediction input) lines may be a bare token or `TOKEN _ _ TAG`;
    tags present are still kept but never required. A `# id` header without tokens is kept as an
    empty sentence, so that predictions hold every id of their input.
    """
    path = Path(path)
    if not path.is_file():
        raise DistnerError(f"{path}: {'not a regular file' if path.exists() else 'file not found'}")
    sentences: list[Sentence] = []
    sid: str | None = None
    tokens: list[str] = []
    tags: list[str] = []
    prev = "O"

    def flush() -> None:
        if tokens or sid is not None:
            has_tags = len(tags) == len(tokens)
            sentences.append(
                Sentence(sid or str(len(sentences)), tuple(tokens), tuple(tags) if has_tags else None)
            )
        tokens.clear()
        tags.clear()

    for lineno, line in read_lines(path):
        where = f"{path}:{lineno}"
        if line.startswith("# id"):
            flush()
            sid, prev = line[len("# id") :].strip(), "O"
            continue
        if not line.strip():
            flush()
            sid, prev = None, "O"
            continue
        cols = split_columns(line)
        if len(cols) == 4:
            token, tag = cols[0], cols[3]
            _check_tag(tag, prev, where, types)
            if len(tags) == len(tokens):
                tags.append(tag)
            prev = tag
        elif len(cols) == 1 and not require_tags:
            token = cols[0]
        else:
            expect = "4 columns `TOKEN _ _ TAG`" + ("" if require_tags else " or 1")
            raise DistnerError(f"{where}: expected {expect}, found {len(cols)}")
        tokens.append(token)
    flush()
    if not any(len(s) for s in sentences):
        raise DistnerError(f"{path}:1: no sentences in file")
    return sentences


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """`--data-dir` if given, else $DISTNER_DATA; always absolute (Ray trials change directory)."""
    chosen = data_dir or os.environ.get("DISTNER_DATA")
    if not chosen:
        raise DistnerError("no data directory: pass --data-dir DIR or set DISTNER_DATA")
    root = Path(chosen).expanduser().resolve()
    if not root.is_dir():
        raise DistnerError(f"{root}: data directory not found")
    return root


# The official MultiCoNER II release names its folders and files this way (EN-English/en_train.conll).
RELEASE_DIRS = {"en": "EN-English", "hi": "HI-Hindi", "bn": "BN-Bangla"}


def split_path(data_dir: str | os.PathLike | None, lang: str, split: str) -> Path:
    """distner's layout `{root}/{lang}/{split}.conll[.gz]`, else the official release's
    `{root}/EN-English/en_{split}.conll[.gz]` (HI-Hindi/hi_..., BN-Bangla/bn_...)."""
    root, code = resolve_data_dir(data_dir), normalize_lang(lang)
    release = root / RELEASE_DIRS[code] / f"{code}_{split}"
    for base in (root / code / split, release):
        for path in (base.with_name(base.name + ".conll"), base.with_name(base.name + ".conll.gz")):
            if path.is_file():
                return path
    raise DistnerError(
        f"{root / code / split}.conll[.gz]: split {split!r} not found "
        f"(nor the release's {release.relative_to(root)}.conll)"
    )


def with_granularity(sentences: Iterable[Sentence], granularity: str) -> list[Sentence]:
    """Fine tags as read, or mapped to the six coarse groups."""
    if normalize_granularity(granularity) == "fine":
        return list(sentences)
    return [
        Sentence(s.id, s.tokens, None if s.tags is None else tuple(map(to_coarse, s.tags))) for s in sentences
    ]


def load_split(data_dir: str | os.PathLike | None, lang: str, split: str, granularity: str) -> list[Sentence]:
    return with_granularity(read_conll(split_path(data_dir, lang, split)), granularity)


def check_extra_train(data_dir: str | os.PathLike | None, lang: str, extra_langs: Sequence[str]) -> None:
    """One line, before any work starts, for an `extra_train_langs` a cell cannot train with."""
    if lang in extra_langs:
        raise DistnerError(f"extra_train_langs: {lang} is this cell's own language")
    for code in extra_langs:
        split_path(data_dir, code, "train")  # names the file it looked for


def train_name(extra_langs: Sequence[str]) -> str:
    """How progress output names a train split: "train", or "train+bn" with extra_train_langs."""
    return "+".join(("train", *extra_langs))


@dataclass(frozen=True)
class Corpus:
    """Parsed sentences of one language x granularity; parse once, encode per config."""

    lang: str
    granularity: str
    train: list[Sentence]
    dev: list[Sentence]
    test: list[Sentence]
    data_dir: str
    # other languages' train splits (extra_train_langs), read once by the command that knows which
    # its configs can train on (`with_extra_train_splits`), so that no fit reads them again
    extra_train: Mapping[str, list[Sentence]] = field(default_factory=dict)

    @classmethod
    def load(cls, data_dir: str | os.PathLike | None, lang: str, granularity: str) -> Corpus:
        lang, granularity = normalize_lang(lang), normalize_granularity(granularity)
        root = resolve_data_dir(data_dir)
        train, dev, test = (load_split(root, lang, s, granularity) for s in ("train", "dev", "test"))
        return cls(lang, granularity, train, dev, test, data_dir=str(root))

    def with_extra_train_splits(self, choices: Iterable[Sequence[str]]) -> Corpus:
        """This corpus holding the train split of every language in `choices` (each config's
        extra_train_langs), each read once; checked first, so a bad one fails before any work."""
        codes = tuple(dict.fromkeys(c for langs in choices for c in langs if c not in self.extra_train))
        if not codes:
            return self
        check_extra_train(self.data_dir, self.lang, codes)
        read = {c: load_split(self.data_dir, c, "train", self.granularity) for c in codes}
        return replace(self, extra_train={**self.extra_train, **read})

    def training_sentences(self, extra_langs: Sequence[str] = ()) -> list[Sentence]:
        """What a config trains on: this cell's train split, then `extra_train_langs`' ones (read
        here only when the command did not read them ahead)."""
        check_extra_train(self.data_dir, self.lang, extra_langs)
        out = list(self.train)
        for code in extra_langs:
            held = self.extra_train.get(code)
            out += held if held is not None else load_split(self.data_dir, code, "train", self.granularity)
        return out

    def feature_splits(
        self, extra_choices: Iterable[Sequence[str]], splits: Iterable[str] = ("train", "dev", "test")
    ) -> dict[str, list[Sentence]]:
        """The splits whose encoder features a step builds ahead, named as progress output names
        them: for "train", each train split a config can train on ("train", "train+bn"); then
        dev and test, as `splits` asks. One plan for `distner features`, a study and a retrain."""
        out: dict[str, list[Sentence]] = {}
        for split in dict.fromkeys(splits):
            if split == "train":
                out.update({train_name(x): self.training_sentences(x) for x in dict.fromkeys(extra_choices)})
            else:
                out[split] = self.dev if split == "dev" else self.test
        return out

    def with_dev_in_train(self) -> Corpus:
        """train+dev as training data (dev is still scored each epoch, but no longer unseen)."""
        return replace(self, train=self.train + self.dev)


def corpus_stats(sentences: Sequence[Sentence], truncate_at: int = REFERENCE_SEQ_LEN) -> dict:
    """Counts for `distner data stats`: sizes, entities per type, length percentiles."""
    from distner.labels import get_entities

    lengths = sorted(len(s) for s in sentences)
    entities: Counter[str] = Counter(span[0] for s in sentences if s.tags for span in get_entities(s.tags))

    def pct(q: float) -> int:
        return lengths[min(len(lengths) - 1, int(q / 100 * len(lengths)))]

    return {
        "sentences": len(sentences),
        "tokens": sum(lengths),
        "entities": sum(entities.values()),
        "length": {
            "mean": round(sum(lengths) / len(lengths), 2),
            "p50": pct(50),
            "p90": pct(90),
            "p95": pct(95),
            "p99": pct(99),
            "max": lengths[-1],
        },
        f"truncated_at_{truncate_at}": round(sum(n > truncate_at for n in lengths) / len(lengths), 4),
        "entities_per_type": dict(entities.most_common()),
    }


def format_conll(sentences: Sequence[Sentence], tags: Sequence[Sequence[str]]) -> str:
    """MultiCoNER layout: `# id ...`, `TOKEN _ _ TAG` lines, a blank line after each sentence."""
    parts = []
    for s, seq in zip(sentences, tags):
        lines = [f"# id {s.id}"] + [f"{tok} _ _ {tag}" for tok, tag in zip(s.tokens, seq)]
        parts.append("\n".join(lines) + "\n\n")
    return "".join(parts)
