import pytest

from distner.core.errors import DistnerError
from distner.labels import COARSE_TYPES, FINE_TYPES, normalize_lang, tag_set, to_coarse


def test_fixed_tag_sets():
    assert len(FINE_TYPES) == 33 and len(COARSE_TYPES) == 6
    fine, coarse = tag_set("fine"), tag_set("coarse")
    assert len(fine) == 67 and len(coarse) == 13
    assert fine[0] == "O" and "B-Medication/Vaccine" in fine and "I-Person" in coarse


@pytest.mark.parametrize(
    "name,code",
    [
        ("en", "en"),
        ("English", "en"),
        ("hi", "hi"),
        ("HINDI", "hi"),
        ("bn", "bn"),
        ("bengali", "bn"),
        ("bangla", "bn"),
    ],
)
def test_language_aliases(name, code):
    assert normalize_lang(name) == code


def test_unknown_language():
    with pytest.raises(DistnerError, match="unknown language 'german'"):
        normalize_lang("german")


def test_coarse_mapping():
    assert to_coarse("B-Artist") == "B-Person"
    assert to_coarse("I-Medication/Vaccine") == "I-Medical"
    assert to_coarse("O") == "O"
    assert {to_coarse(t) for t in tag_set("fine")} == set(tag_set("coarse"))


def test_a_cell_is_its_name_and_comes_apart_again():
    import pickle

    from distner.core.errors import DistnerError
    from distner.labels import Cell

    cell = Cell("Hindi", "FINE")
    assert cell == "hi-fine" and (cell.lang, cell.granularity) == ("hi", "fine")
    assert Cell.parse("bengali-coarse") == "bn-coarse" and Cell.parse("en-fine").granularity == "fine"
    assert pickle.loads(pickle.dumps(cell)) == cell and type(pickle.loads(pickle.dumps(cell))) is Cell
    for bad in ("hifine", "xx-fine", "hi-medium"):
        with pytest.raises(DistnerError):
            Cell.parse(bad)
