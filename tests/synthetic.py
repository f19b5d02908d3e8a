"""A small synthetic MultiCoNER II corpus, so that every test runs on a machine without the real data.

`write_corpus(root, seed)` writes `{en,hi,bn}/{train,dev,test}.conll.gz` under `root`, laid out and
spelled like the release (see the data README): a `# id <uuid>\\tdomain=<lang>` header per sentence,
`TOKEN _ _ TAG` lines, two blank lines between sentences, IOB2 tags over the 33 fine types with the
release's spellings (`Medication/Vaccine`, `PublicCorp`, ...). Words are made of the language's own
script: lower-case Latin for en, Devanagari for hi, Bengali for bn, and some Hindi and Bengali words
carry a zero-width joiner or non-joiner, as in the release.

The corpus is learnable, so that a test asking whether a model learned something still means it:
every type has its own gazetteer of names (one to three words) and its own context words, and a
mention is usually preceded by one of its type's context words; the same gazetteers serve all
splits. Every split holds every one of the 33 types (sentence k's first mention is of type k mod 33),
and a few sentences are longer than 25 tokens (the baseline's training truncation).

The output depends on `seed` alone: the same seed gives byte-identical files.
"""

from __future__ import annotations

import gzip
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# distner's own label table; kept to this one import so the generator survives module moves
from distner.labels import FINE_TYPES

LANGS = ("en", "hi", "bn")
SIZES: Mapping[str, int] = {"train": 400, "dev": 120, "test": 120}  # sentences per language
NAMES_PER_TYPE = 6
CONTEXT_PER_TYPE = 2
FILLERS = 60
LONG_SHARE = 0.05  # sentences padded past 25 tokens
ZWJ, ZWNJ = "\u200d", "\u200c"


@dataclass(frozen=True)
class Script:
    consonants: str
    vowel_signs: tuple[str, ...]  # "" is the inherent vowel
    virama: str = ""  # joins two consonants; followed by a zero-width (non-)joiner in some words
    full_stop: str = "."


SCRIPTS: Mapping[str, Script] = {
    "en": Script("bcdfghjklmnprstvwz", ("a", "e", "i", "o", "u", "ai", "ou")),
    "hi": Script(
        "कखगघचछजझटठडढतथदधनपफबभमयरलवशसह",
        ("", "\u093e", "\u093f", "\u0940", "\u0941", "\u0942", "\u0947", "\u0948", "\u094b", "\u094c"),
        virama="\u094d",
        full_stop="\u0964",
    ),
    "bn": Script(
        "কখগঘচছজঝটঠডঢতথদধনপফবভমযরলশসহ",
        ("", "\u09be", "\u09bf", "\u09c0", "\u09c1", "\u09c2", "\u09c7", "\u09c8", "\u09cb", "\u09cc"),
        virama="\u09cd",
        full_stop="\u0964",
    ),
}


@dataclass(frozen=True)
class Lexicon:
    names: Mapping[str, tuple[tuple[str, ...], ...]]  # fine type -> its gazetteer
    context: Mapping[str, tuple[str, ...]]  # fine type -> words that announce it
    fillers: tuple[str, ...]  # words outside any entity


def _word(rng: random.Random, script: Script) -> str:
    syllables = [
        rng.choice(script.consonants) + rng.choice(script.vowel_signs) for _ in range(rng.randint(1, 3))
    ]
    if script.virama and rng.random() < 0.1:  # a conjunct spelled with a zero-width (non-)joiner
        conjunct = rng.choice(script.consonants) + script.virama + rng.choice((ZWJ, ZWNJ))
        syllables.insert(rng.randrange(len(syllables)), conjunct)
    return "".join(syllables)


def make_lexicon(rng: random.Random, lang: str) -> Lexicon:
    """Distinct words for every role: no word is both a name part, a context word or a filler."""
    script, used = SCRIPTS[lang], set()

    def fresh() -> str:
        while True:
            w = _word(rng, script)
            if w not in used:
                used.add(w)
                return w

    names = {
        t: tuple(tuple(fresh() for _ in range(rng.choice((1, 1, 2, 2, 3)))) for _ in range(NAMES_PER_TYPE))
        for t in FINE_TYPES
    }
    context = {t: tuple(fresh() for _ in range(CONTEXT_PER_TYPE)) for t in FINE_TYPES}
    return Lexicon(names, context, tuple(fresh() for _ in range(FILLERS)))


def make_sentence(rng: random.Random, lex: Lexicon, first_type: str, full_stop: str) -> list[tuple[str, str]]:
    """(token, tag) pairs: one to three mentions among filler words, each usually after a context
    word of its type."""
    types = [first_type] + rng.sample(FINE_TYPES, rng.choice((0, 0, 1, 1, 2)))
    out: list[tuple[str, str]] = []
    for etype in types:
        out += [(rng.choice(lex.fillers), "O") for _ in range(rng.randint(0, 4))]
        if rng.random() < 0.85:
            out.append((rng.choice(lex.context[etype]), "O"))
        name = rng.choice(lex.names[etype])
        out += [(w, ("B-" if i == 0 else "I-") + etype) for i, w in enumerate(name)]
    out += [(rng.choice(lex.fillers), "O") for _ in range(rng.randint(1, 4))]
    if rng.random() < LONG_SHARE:
        out += [(rng.choice(lex.fillers), "O") for _ in range(rng.randint(26, 40) - len(out))]
    if rng.random() < 0.5:
        out.append((full_stop, "O"))
    return out


def make_corpus(
    seed: int = 0, sizes: Mapping[str, int] = SIZES
) -> dict[str, dict[str, list[tuple[str, list[tuple[str, str]]]]]]:
    """lang -> split -> [(sentence id, [(token, tag), ...]), ...]"""
    corpus: dict[str, dict[str, list[tuple[str, list[tuple[str, str]]]]]] = {}
    for lang in LANGS:
        rng = random.Random(f"distner-synthetic-{seed}-{lang}")
        lex = make_lexicon(rng, lang)
        corpus[lang] = {
            split: [
                (
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    make_sentence(rng, lex, FINE_TYPES[k % len(FINE_TYPES)], SCRIPTS[lang].full_stop),
                )
                for k in range(n)
            ]
            for split, n in sizes.items()
        }
    return corpus


def to_conll(lang: str, sentences: list[tuple[str, list[tuple[str, str]]]]) -> str:
    """The release's exact layout: a blank line, the header, the tokens, a blank line."""
    return "".join(
        f"\n# id {sid}\tdomain={lang}\n" + "".join(f"{tok} _ _ {tag}\n" for tok, tag in pairs) + "\n"
        for sid, pairs in sentences
    )


def write_corpus(root: str | Path, seed: int = 0, sizes: Mapping[str, int] = SIZES) -> Path:
    """Write the corpus under `root` as {lang}/{split}.conll.gz (gzip without a timestamp, so the
    bytes depend on `seed` alone) and return `root`."""
    root = Path(root)
    for lang, splits in make_corpus(seed, sizes).items():
        (root / lang).mkdir(parents=True, exist_ok=True)
        for split, sentences in splits.items():
            with open(root / lang / f"{split}.conll.gz", "wb") as raw:
                with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as f:
                    f.write(to_conll(lang, sentences).encode("utf-8"))
    return root
