import random

import pytest
from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics import f1_score as seqeval_f1

from distner.evaluation.metrics import entity_scores, padded_token_scores, token_scores
from distner.labels import get_entities, tag_set


def test_spans_exact_and_conlleval_repairs():
    assert get_entities(["B-A", "I-A", "O", "B-B"]) == [("A", 0, 2), ("B", 3, 4)]
    assert get_entities(["B-A", "B-A"]) == [("A", 0, 1), ("A", 1, 2)]
    # conlleval: I- after O or after another type opens a new entity
    assert get_entities(["O", "I-A", "I-A"]) == [("A", 1, 3)]
    assert get_entities(["B-A", "I-B"]) == [("A", 0, 1), ("B", 1, 2)]


def test_entity_scores_by_hand():
    gold = [["B-A", "I-A", "O", "B-B"], ["B-A", "O"]]
    pred = [["B-A", "I-A", "O", "O"], ["B-A", "B-B"]]
    s = entity_scores(gold, pred)
    assert s["per_type"]["A"] == pytest.approx(
        {"precision": 1, "recall": 1, "f1": 1, "support": 2, "predicted": 2}
    )
    assert s["per_type"]["B"]["f1"] == 0 and s["per_type"]["B"]["support"] == 1
    assert s["entity_micro_precision"] == pytest.approx(2 / 3)
    assert s["entity_micro_recall"] == pytest.approx(2 / 3)
    assert s["entity_macro_f1"] == pytest.approx(0.5)


def _random_tags(rng, n, tags):
    return [rng.choice(tags) if rng.random() < 0.4 else "O" for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_seqeval_on_random_sequences(seed):
    rng = random.Random(seed)
    tags = list(tag_set("coarse"))
    gold = [_random_tags(rng, rng.randint(1, 12), tags) for _ in range(200)]
    # predictions: gold with noise, including malformed I- starts
    pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in g] for g in gold]
    ours = entity_scores(gold, pred)
    theirs = seqeval_report(gold, pred, output_dict=True, zero_division=0)
    assert ours["entity_micro_f1"] == pytest.approx(seqeval_f1(gold, pred, average="micro"))
    assert ours["entity_macro_f1"] == pytest.approx(theirs["macro avg"]["f1-score"])
    for etype, v in ours["per_type"].items():
        assert v["f1"] == pytest.approx(theirs[etype]["f1-score"])
        assert v["support"] == theirs[etype]["support"]


def test_token_scores_ignore_nothing_but_real_tokens():
    gold, pred = [["O", "B-A"], ["O"]], [["O", "O"], ["O"]]
    assert token_scores(gold, pred)["token_accuracy"] == pytest.approx(2 / 3)


def test_seed_style_counts_padding_and_inflates():
    gold, pred = [["O", "B-A", "I-A"]], [["O", "O", "O"]]
    s = padded_token_scores(gold, pred, seq_len=25)
    assert s["seed_style_support"] == 25
    assert s["seed_style_accuracy"] == pytest.approx(23 / 25)  # 22 pads + 1 O are "right"
    assert s["seed_style_accuracy"] > token_scores(gold, pred)["token_accuracy"]
    # truncation drops tokens past seq_len
    assert padded_token_scores(gold, pred, seq_len=2)["seed_style_support"] == 2


def test_repair_keeps_entity_scores():
    from distner.labels import repair_iob2

    rng = random.Random(7)
    tags = list(tag_set("coarse"))
    gold = [_random_tags(rng, rng.randint(1, 10), tags) for _ in range(100)]
    pred = [_random_tags(rng, len(g), tags) for g in gold]
    fixed = [repair_iob2(p) for p in pred]
    assert repair_iob2(["O", "I-A", "I-A", "I-B"]) == ["O", "B-A", "I-A", "B-B"]
    assert entity_scores(gold, pred) == entity_scores(gold, fixed)


def test_coarse_confusion_maps_fine_types():
    from distner.evaluation.metrics import coarse_confusion

    cm = coarse_confusion([["B-Artist", "I-Artist", "O"]], [["B-Athlete", "O", "B-Food"]])
    labels, m = cm["labels"], cm["matrix"]
    assert labels[-1] == "O" and len(m) == 7
    person, product, o = labels.index("Person"), labels.index("Product"), labels.index("O")
    assert m[person][person] == 1 and m[person][o] == 1 and m[o][product] == 1
    assert sum(map(sum, m)) == 3
