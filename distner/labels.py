"""The fixed MultiCoNER II label inventory, language names and the fine -> coarse table."""

from __future__ import annotations

from collections.abc import Sequence

from distner.core.errors import DistnerError, shorten

# The six coarse groups and their fine types, as in the data README (order fixes tag indices).
COARSE_TO_FINE: dict[str, tuple[str, ...]] = {
    "Location": ("Facility", "OtherLOC", "HumanSettlement", "Station"),
    "CreativeWork": ("VisualWork", "MusicalWork", "WrittenWork", "ArtWork", "Software"),
    "Group": (
        "MusicalGRP",
        "PublicCorp",
        "PrivateCorp",
        "AerospaceManufacturer",
        "SportsGRP",
        "CarManufacturer",
        "ORG",
    ),
    "Person": (
        "Scientist",
        "Artist",
        "Athlete",
        "Politician",
        "Cleric",
        "SportsManager",
        "OtherPER",
    ),
    "Product": ("Clothing", "Vehicle", "Food", "Drink", "OtherPROD"),
    "Medical": (
        "Medication/Vaccine",
        "MedicalProcedure",
        "AnatomicalStructure",
        "Symptom",
        "Disease",
    ),
}
FINE_TO_COARSE: dict[str, str] = {f: c for c, fs in COARSE_TO_FINE.items() for f in fs}
FINE_TYPES: tuple[str, ...] = tuple(FINE_TO_COARSE)
COARSE_TYPES: tuple[str, ...] = tuple(COARSE_TO_FINE)
GRANULARITIES = ("fine", "coarse")

LANGUAGES: dict[str, str] = {
    "en": "en",
    "english": "en",
    "hi": "hi",
    "hindi": "hi",
    "bn": "bn",
    "bengali": "bn",
    "bangla": "bn",
}
LANGUAGE_CODES = ("en", "hi", "bn")


def normalize_lang(name: str) -> str:
    """Map `hindi`/`HI`/`hi` to the data folder code `hi`."""
    code = LANGUAGES.get(name.strip().lower())
    if code is None:
        raise DistnerError(
            f"unknown language {shorten(name)}: use one of en|english, hi|hindi, bn|bengali|bangla"
        )
    return code


def normalize_granularity(name: str) -> str:
    g = name.strip().lower()
    if g not in GRANULARITIES:
        raise DistnerError(f"unknown granularity {shorten(name)}: use fine or coarse")
    return g


class Cell(str):
    """One language x granularity as distner names it, "hi-fine": the name of its study, its best
    config, its retrain folder and its report section. A str, so that it goes into paths, JSON and
    messages as it is; `lang` and `granularity` take it apart (never split the string by hand)."""

    __slots__ = ()

    def __new__(cls, lang: str, granularity: str) -> Cell:
        return super().__new__(cls, f"{normalize_lang(lang)}-{normalize_granularity(granularity)}")

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]  # pickling (Ray)
        return self.lang, self.granularity

    @classmethod
    def parse(cls, name: str) -> Cell:
        """ "hi-fine" (or "hindi-fine") back into a Cell; anything else is one line naming it."""
        lang, sep, gran = name.partition("-")
        if not sep:
            raise DistnerError(f"cell {shorten(name)}: expected LANG-GRANULARITY, e.g. hi-fine")
        return cls(lang, gran)

    @property
    def lang(self) -> str:
        return self.partition("-")[0]

    @property
    def granularity(self) -> str:
        return self.partition("-")[2]


def tag_set(granularity: str) -> tuple[str, ...]:
    """The full fixed IOB2 tag set: `O` first, then B-/I- per type (67 fine, 13 coarse)."""
    types = FINE_TYPES if normalize_granularity(granularity) == "fine" else COARSE_TYPES
    return ("O",) + tuple(f"{p}-{t}" for t in types for p in ("B", "I"))


def to_coarse(tag: str) -> str:
    """`B-Artist` -> `B-Person`; `O` stays `O`. Assumes a valid fine tag."""
    if tag == "O":
        return tag
    return f"{tag[:2]}{FINE_TO_COARSE[tag[2:]]}"


def repair_iob2(tags: list[str]) -> list[str]:
    """Make a predicted sequence valid IOB2 by turning a stray `I-X` (after `O` or another type)
    into `B-X`. This is exactly how conlleval reads such a tag, so entity scores do not change."""
    out, prev = [], "O"
    for tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def is_valid_iob2(tags: list[str] | tuple[str, ...]) -> bool:
    """True when no `I-X` follows `O`, another type, or starts the sequence."""
    return repair_iob2(list(tags)) == list(tags)


Span = tuple[str, int, int]  # (type, start, end exclusive)


def get_entities(tags: Sequence[str]) -> list[Span]:
    """Spans from an IOB2 sequence with conlleval semantics for malformed input:
    an `I-X` after `O` or after another type starts a new entity of type X."""
    spans: list[Span] = []
    etype, start = None, 0
    for i, tag in enumerate(tags):
        prefix, t = (tag[0], tag[2:]) if tag != "O" else ("O", None)
        if etype is not None and (prefix != "I" or t != etype):
            spans.append((etype, start, i))
            etype = None
        if prefix in ("B", "I") and etype is None:
            etype, start = t, i
    if etype is not None:
        spans.append((etype, start, len(tags)))
    return spans
