"""The lean trial loop (distner.train.engine) against Lightning's (training.fit): the same losses and dev
scores epoch by epoch, for the network's shapes and levers; and members trained side by side in
threads against each trained alone."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import pytorch_lightning as pl
import torch

from distner.config import load_config
from distner.core.errors import DistnerError
from distner.data.conll import Corpus
from distner.evaluation.metrics import MONITOR
from distner.train.engine import Member, SharedData
from distner.train.fit import fit

BASE = ["embedding_dim=16", "hidden_dim=16", "epochs=3", "batch_size=16", "lr=0.02"]
CONFIGS = {
    "lstm": [],
    "bilstm": ["bidirectional=true", "num_layers=2", "lstm_dropout=0.2"],
    "char-cnn": ["char_features=true", "char_channels=8", "dropout=0.3", "word_dropout=0.1"],
    "crf": ["crf=true", "bidirectional=true", "grad_clip=1.0", "weight_decay=0.001"],
    # e5's top layer trained (with dropout) at its own learning rate, over cached pieces
    "e5-trained": ["encoder_features=e5", "encoder_train_layers=1", "encoder_layers=last", "encoder_lr=1e-3"],
    # both learning rates decayed per step (Lightning steps the schedule, the lean loop steps its own)
    "linear": ["char_features=true", "char_channels=8", "lr_schedule=linear"],
    "e5-cosine": [
        "encoder_features=e5",
        "encoder_train_layers=1",
        "encoder_layers=last",
        "encoder_lr=1e-3",
        "lr_schedule=cosine",
    ],
}
KEYS = ("train_loss", "val_loss", MONITOR, "val_entity_micro_f1")


class Epochs(pl.Callback):
    """Lightning's logged values after each epoch."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.rows.append({k: float(trainer.callback_metrics[k]) for k in KEYS})


@pytest.fixture(scope="module")
def corpus(synthetic_data) -> Corpus:
    c = Corpus.load(synthetic_data, "hi", "fine")
    return Corpus(c.lang, c.granularity, c.train[:240], c.dev[:80], [], c.data_dir)


def _alone(cfg, corpus) -> list[dict[str, float]]:
    member = Member(cfg, SharedData(corpus, torch.device("cpu")))
    return [member.run_epoch() for _ in range(cfg.train.epochs)]


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.heavy) if n.startswith("e5") else n for n in CONFIGS]
)
def test_same_losses_and_scores_as_lightning(name, corpus, tmp_path):
    torch.set_num_threads(1)
    cfg = load_config(None, BASE + CONFIGS[name])
    seen = Epochs()
    fit(cfg, corpus, tmp_path, callbacks=[seen], progress=False, evaluate_test=False)
    lean = _alone(cfg, corpus)
    assert len(lean) == len(seen.rows) == 3
    for epoch, (a, b) in enumerate(zip(seen.rows, lean)):
        for k in KEYS:
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), (name, epoch, k)
    # the loop learns: the synthetic corpus is learnable, so 3 epochs leave the first behind
    assert lean[-1]["train_loss"] < lean[0]["train_loss"]


def test_packed_members_train_as_if_alone(corpus):
    """Two configs with dropout (global random streams) in two threads at once: each gets exactly
    the numbers it gets alone, and the encoded data is shared."""
    torch.set_num_threads(1)
    cfgs = [load_config(None, BASE + CONFIGS["char-cnn"]), load_config(None, BASE + CONFIGS["bilstm"])]
    alone = [_alone(c, corpus) for c in cfgs]
    shared = SharedData(corpus, torch.device("cpu"))
    members = [Member(c, shared) for c in cfgs]
    assert members[0].data is not members[1].data  # char features change the encoding
    assert Member(cfgs[0], shared).data is members[0].data  # the same encoding is made once
    packed: list[list[dict[str, float]]] = [[], []]

    def train(i: int) -> None:
        for _ in range(3):
            packed[i].append(members[i].run_epoch())

    threads = [threading.Thread(target=train, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert [[r[k] for k in KEYS] for r in packed[i]] == [[r[k] for k in KEYS] for r in alone[i]]


@pytest.mark.parametrize("name", ["char-cnn", "linear"])
def test_resumed_member_continues_exactly(name, corpus):
    """A member restored from its state after epoch 1 trains epochs 2 and 3 as if never stopped
    (its random streams and its place in the learning-rate schedule are part of the state)."""
    torch.set_num_threads(1)
    cfg = load_config(None, BASE + CONFIGS[name])
    whole = _alone(cfg, corpus)
    shared = SharedData(corpus, torch.device("cpu"))
    first = Member(cfg, shared)
    first.run_epoch()
    state = first.state_dict()
    again = Member(cfg, shared, state=state)
    rest = [again.run_epoch() for _ in range(2)]
    assert [[r[k] for k in KEYS] for r in rest] == [[r[k] for k in KEYS] for r in whole[1:]]
    assert again.best_epoch == max(range(3), key=lambda e: (whole[e][MONITOR], -e))
    with pytest.raises(DistnerError, match="another config"):
        Member(cfg.replace(lr=0.01), shared, state=state)


@pytest.mark.heavy  # e5's trained layers over 3 epochs: tens of seconds
def test_a_schedule_decays_both_rates_to_zero(corpus):
    """lr_schedule=linear: after the last step both groups' rates (tagger and trained encoder layers)
    are 0, and the run differs from a constant-rate one from its second epoch on."""
    torch.set_num_threads(1)
    base = BASE + CONFIGS["e5-trained"]
    shared = SharedData(corpus, torch.device("cpu"))
    member = Member(load_config(None, base + ["lr_schedule=linear"]), shared)
    steps = len(member.train_loader)
    assert [g["lr"] for g in member.optimizer.param_groups] == [0.02, 1e-3]
    decayed = [member.run_epoch() for _ in range(3)]
    assert [g["lr"] for g in member.optimizer.param_groups] == [0.0, 0.0]
    assert member.schedule is not None and member.schedule.last_epoch == 3 * steps
    constant = _alone(load_config(None, base), corpus)
    assert decayed[1]["train_loss"] != constant[1]["train_loss"]


def test_weights_left_not_finite_are_a_divergence(tiny_dir):
    """One batch an epoch, a finite loss, NaN weights after its update: never validated or kept."""
    from distner.core.errors import TrainingDiverged

    cfg = load_config(None, ["embedding_dim=8", "hidden_dim=8", "epochs=1", "lr=5", "weight_decay=1e38"])
    member = Member(cfg, SharedData(Corpus.load(tiny_dir, "en", "fine"), torch.device("cpu")))
    with pytest.raises(TrainingDiverged, match="weights are not finite after epoch 1"):
        member.run_epoch()
    with pytest.raises(DistnerError, match="no validated epoch"):
        member.best_weights()


@pytest.mark.integration  # a fresh interpreter
def test_a_packer_loads_without_lightning() -> None:
    """A packer (and its members) import no Lightning: importing it costs seconds, ~10 s on a
    machine where torchmetrics finds `transformers` (docs/performance.md)."""
    code = (
        "import sys, distner.tune.packed, distner.train.engine, distner.model.runs, distner.data.encoded; "
        "print(sorted(m for m in sys.modules if 'lightning' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
