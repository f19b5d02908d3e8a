import gzip
import json

import pytest
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from distner.cli.main import main
from distner.config import load_config
from distner.core.errors import DistnerError
from distner.data.conll import Corpus, read_conll
from distner.data.vocab import Vocab, encode, make_loader
from distner.evaluation.evaluate import evaluate_run, load_run, predict_file, predict_tags
from distner.labels import tag_set
from distner.train.fit import fit

TINY = ["embedding_dim=16", "hidden_dim=16", "epochs=3", "batch_size=4", "lr=0.05"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request):
    from ..helpers import TINY as tiny_dir

    out = tmp_path_factory.mktemp("run")
    corpus = Corpus.load(tiny_dir, "en", "fine")
    return fit(load_config(None, TINY), corpus, out, progress=False), tiny_dir


def test_run_folder_contents(trained):
    result, _ = trained
    out = result.out_dir
    for name in ("config.yaml", "model.pt", "metrics.json"):
        assert (out / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("dev", "test"):
        for key in (
            "entity_macro_f1",
            "entity_micro_f1",
            "token_accuracy",
            "seed_style_macro_f1",
            "seed_style_accuracy",
            "per_type",
        ):
            assert key in metrics[split]
    assert metrics["seed"] == 42 and metrics["config"]["hidden_dim"] == 16
    assert 1 <= result.best_epoch <= 3 and result.epochs_run == 3


def test_tensorboard_events_read_back(trained):
    result, _ = trained
    acc = EventAccumulator(str(result.out_dir / "tb"))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"train_loss", "val_loss", "val_entity_macro_f1", "train_tokens_per_s"} <= scalars
    assert len(acc.Scalars("val_entity_macro_f1")) == 3  # one per epoch
    # hparams live in their own event file
    hp = EventAccumulator(str(result.out_dir / "tb"), size_guidance={"tensors": 0})
    hp.Reload()
    assert any("hparams" in t or "_hparams_" in t for t in hp.summary_metadata)


def test_reload_from_config_and_weights(trained):
    result, tiny_dir = trained
    run = load_run(result.out_dir)
    assert run.cfg.model.hidden_dim == 16 and run.lang == "en" and len(run.tags) == 67
    name, metrics, path = evaluate_run(result.out_dir, split="test", data_dir=tiny_dir)
    saved = json.loads((result.out_dir / "metrics.json").read_text())["test"]
    assert metrics["entity_macro_f1"] == pytest.approx(saved["entity_macro_f1"])
    assert metrics["token_accuracy"] == pytest.approx(saved["token_accuracy"])
    assert path.is_file()


def test_predict_round_trip_and_score(trained, tmp_path):
    result, tiny_dir = trained
    src = tiny_dir / "en" / "test.conll"
    out = tmp_path / "pred.conll"
    assert predict_file(result.out_dir, src, out) == 3
    gold, pred = read_conll(src), read_conll(out)
    assert [(s.id, s.tokens) for s in gold] == [(s.id, s.tokens) for s in pred]
    _, metrics, _ = evaluate_run(result.out_dir, input_file=src, predictions=out)
    saved = json.loads((result.out_dir / "metrics.json").read_text())["test"]
    assert metrics["entity_macro_f1"] == pytest.approx(saved["entity_macro_f1"])


LEVERS = ["char_features=true", "crf=true", "bidirectional=true", "word_dropout=0.1", "seq_len=0"]


@pytest.mark.parametrize("levers", [[], LEVERS], ids=["seed", "levers"])
def test_same_seed_same_result_on_cpu(tmp_path, tiny_dir, levers):
    corpus = Corpus.load(tiny_dir, "en", "fine")
    cfg = load_config(None, [*TINY, "epochs=2", *levers])
    a = fit(cfg, corpus, tmp_path / "a", progress=False, accelerator="cpu")
    b = fit(cfg, corpus, tmp_path / "b", progress=False, accelerator="cpu")
    wa = torch.load(a.out_dir / "model.pt")
    wb = torch.load(b.out_dir / "model.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.metrics["dev"] == b.metrics["dev"]


def test_coarse_granularity(tmp_path, tiny_dir):
    corpus = Corpus.load(tiny_dir, "en", "coarse")
    assert corpus.train[0].tags[0] == "B-Person"
    r = fit(load_config(None, [*TINY, "epochs=1"]), corpus, tmp_path, progress=False)
    per_type = r.metrics["test"]["per_type"]
    # tiny/en/test.conll: Athlete; HumanSettlement x2; Drink; Medication/Vaccine, Disease
    gold = {"Person": 1, "Location": 2, "Product": 1, "Medical": 2}
    assert {t: per_type.get(t, {}).get("support") for t in gold} == gold
    assert set(per_type) <= {"Person", "Location", "Group", "Product", "Medical", "CreativeWork"}


def test_extra_train_langs_join_the_cells_train_split(tmp_path, synthetic_data, capsys):
    """Hindi coarse trained on its own and Bengali's train sentences (tags mapped to coarse too):
    the vocabulary the run saves holds Bengali words, dev and test stay Hindi's."""
    import shutil

    from distner.data.encoded import prepare

    corpus = Corpus.load(synthetic_data, "hi", "coarse")
    bn = [s for s in read_conll(synthetic_data / "bn" / "train.conll.gz") if len(s)]
    hi_words = {w for s in corpus.train for w in s.tokens}
    bn_only = sorted({w for s in bn for w in s.tokens} - hi_words)
    assert bn_only  # the test means something only if Bengali brings words of its own
    cfg = load_config(None, [*TINY, "epochs=1", "extra_train_langs=bengali"])
    data = prepare(corpus, cfg)
    assert len(data.train.lengths) == len([s for s in corpus.train if len(s)]) + len(bn)
    assert data.dev_sentences == [s for s in corpus.dev if len(s)]
    argv = ["train", "--lang", "hi", "--granularity", "coarse", "--data-dir", str(synthetic_data)]
    argv += [f"--set={kv}" for kv in [*TINY, "epochs=1", "extra_train_langs=bengali"]]
    assert main([*argv, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert f"{len(corpus.train)} train sentences + bn's ->" in capsys.readouterr().err
    run = load_run(tmp_path / "run")
    assert run.cfg.train.extra_train_langs == "bn" and set(bn_only) <= set(run.vocab.itos)
    with pytest.raises(DistnerError, match="extra_train_langs: hi is this cell's own language"):
        prepare(corpus, load_config(None, [*TINY, "extra_train_langs=bn,hi"]))
    alone = tmp_path / "hi-only"
    shutil.copytree(synthetic_data / "hi", alone / "hi")
    with pytest.raises(DistnerError, match=r"hi-only/bn/train\.conll\[\.gz\]: split 'train' not found"):
        prepare(Corpus.load(alone, "hi", "coarse"), cfg)


def test_nan_loss_raises_training_diverged(tmp_path, tiny_dir):
    import pytorch_lightning as pl

    from distner.core.errors import TrainingDiverged

    class Poison(pl.Callback):  # what a too-high learning rate eventually does to the weights
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            with torch.no_grad():
                module.model.proj.bias.fill_(float("nan"))

    corpus = Corpus.load(tiny_dir, "en", "fine")
    with pytest.raises(TrainingDiverged, match="training loss is not finite"):
        fit(load_config(None, TINY), corpus, tmp_path, progress=False, callbacks=[Poison()])


def test_weights_left_not_finite_by_the_last_step_are_not_kept(tmp_path, tiny_dir):
    """The loss of the epoch's one step is finite; the weights its update left are not. Before,
    the epoch was scored (F1 0) and its NaN weights kept as the model."""
    from distner.core.errors import TrainingDiverged

    corpus = Corpus.load(tiny_dir, "en", "fine")
    cfg = load_config(None, ["embedding_dim=8", "hidden_dim=8", "epochs=1", "lr=5", "weight_decay=1e38"])
    with pytest.raises(TrainingDiverged, match="weights are not finite"):
        fit(cfg, corpus, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model.pt").exists() and not (tmp_path / "run" / "metrics.json").exists()


def test_16_bit_amp_on_a_cpu_is_refused_not_run_as_bf16(tmp_path, tiny_dir):
    corpus = Corpus.load(tiny_dir, "en", "fine")
    cfg = load_config(None, [*TINY, "epochs=1", "precision=16-mixed"])
    with pytest.raises(DistnerError, match=r"^precision=16-mixed: needs a GPU"):
        fit(cfg, corpus, tmp_path / "run", accelerator="cpu", progress=False)
    assert not (tmp_path / "run").exists()


def _tree_hashes(root):
    import hashlib

    return {
        p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_fit_into_keeps_an_earlier_run_when_the_new_one_fails(trained, tmp_path, tiny_dir):
    import shutil

    import pytorch_lightning as pl

    from distner.core.errors import TrainingDiverged
    from distner.train.fit import fit_into

    class Poison(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            with torch.no_grad():
                module.model.proj.bias.fill_(float("nan"))

    result, _ = trained
    out = shutil.copytree(result.out_dir, tmp_path / "run")
    before = _tree_hashes(out)
    corpus = Corpus.load(tiny_dir, "en", "fine")
    cfg = load_config(None, [*TINY, "epochs=1"])
    with pytest.raises(DistnerError, match="a run is already there; add --overwrite"):
        fit_into(cfg, corpus, out, progress=False)
    with pytest.raises(TrainingDiverged, match=f"^{out}: training loss is not finite"):
        fit_into(cfg, corpus, out, overwrite=True, progress=False, callbacks=[Poison()])
    with pytest.raises(TrainingDiverged):
        fit_into(cfg, corpus, tmp_path / "fresh", progress=False, callbacks=[Poison()])
    assert _tree_hashes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder, no "fresh"
    done = fit_into(cfg, corpus, out, overwrite=True, progress=False)
    assert done.out_dir == out.resolve() and load_run(out).cfg == cfg
    assert _tree_hashes(out) != before and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_bf16_mixed_precision_trains_and_is_recorded(tmp_path, tiny_dir):
    corpus = Corpus.load(tiny_dir, "en", "fine")
    cfg = load_config(None, [*TINY, *LEVERS, "epochs=1", "precision=bf16-mixed"])
    r = fit(cfg, corpus, tmp_path, progress=False, accelerator="cpu")
    assert r.metrics["config"]["precision"] == "bf16-mixed"
    assert load_run(tmp_path).cfg.train.precision == "bf16-mixed"
    # the bf16 model, reloaded (in float32), scores test as the fit did
    _, again, _ = evaluate_run(tmp_path, split="test", data_dir=tiny_dir)
    assert again["entity_macro_f1"] == pytest.approx(r.metrics["test"]["entity_macro_f1"])
    assert again["token_accuracy"] == pytest.approx(r.metrics["test"]["token_accuracy"], abs=0.02)


def test_run_written_before_the_precision_key_still_loads(trained, tmp_path):
    import shutil

    result, _ = trained
    run = shutil.copytree(result.out_dir, tmp_path / "run")
    text = (run / "config.yaml").read_text()
    assert "  precision: '32'\n" in text
    (run / "config.yaml").write_text(text.replace("  precision: '32'\n", ""))
    assert load_run(run).cfg == load_run(result.out_dir).cfg  # a key that shapes no network


class StepLosses(pl.Callback):
    """Each training step's loss and sentence count, and each epoch's logged train_loss."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, int]] = []
        self.epochs: list[tuple[list[tuple[float, int]], float]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.steps.append((float(outputs["loss"]), len(batch.lengths)))

    def on_train_epoch_end(self, trainer, module) -> None:
        self.epochs.append((self.steps, float(trainer.callback_metrics["train_loss"])))
        self.steps = []


def test_train_loss_is_the_sentence_weighted_epoch_mean(tmp_path, tiny_dir):
    # logged once per epoch from a sum kept on the device, not with a per-step self.log
    spy = StepLosses()
    corpus = Corpus.load(tiny_dir, "en", "fine")
    cfg = load_config(None, [*TINY, "batch_size=5"])
    fit(cfg, corpus, tmp_path, progress=False, evaluate_test=False, callbacks=[spy])
    assert len(spy.epochs) == 3
    for steps, logged in spy.epochs:
        sizes = {n for _, n in steps}
        assert len(steps) > 1 and len(sizes) > 1  # uneven batches: a plain mean would differ
        expected = sum(loss * n for loss, n in steps) / sum(n for _, n in steps)
        assert logged == pytest.approx(expected, rel=1e-5)
    assert spy.epochs[-1][1] < spy.epochs[0][1]  # it learns


def test_a_fit_leaves_the_process_as_it_was(tmp_path, tiny_dir):
    """Importing distner and training with it changes nothing process-wide: warning filters,
    Lightning's logger levels, signal handlers and the environment are as they were after."""
    import logging
    import os
    import signal
    import warnings

    from distner.core.interrupts import STOP_SIGNALS
    from distner.train.fit import LIGHTNING_LOGGERS, fit_into

    def state():
        return (
            list(warnings.filters),
            {n: logging.getLogger(n).level for n in LIGHTNING_LOGGERS},
            {s: signal.getsignal(s) for s in STOP_SIGNALS},
            # less what the libraries set for themselves: Lightning's seed_everything its seed (for
            # worker processes), torch and OpenMP their own flags on first use
            {k: v for k, v in os.environ.items() if not k.startswith(("PL_", "KMP_", "TORCH"))},
        )

    before = state()
    cfg = load_config(None, [*TINY, "epochs=1"])
    fit_into(cfg, Corpus.load(tiny_dir, "en", "fine"), tmp_path / "run", progress=False, accelerator="cpu")
    assert state() == before


# the lever tests: the smallest network, two epochs
LEVER_NET = ["embedding_dim=8", "hidden_dim=8", "epochs=2", "batch_size=4", "lr=0.05"]


@pytest.mark.parametrize(
    "levers",
    [
        ["char_features=true"],
        ["crf=true"],
        [
            "char_features=true",
            "crf=true",
            "bidirectional=true",
            "num_layers=2",
            "lstm_dropout=0.2",
            "word_dropout=0.1",
            "dropout=0.1",
        ],
    ],
)
def test_levers_train_save_and_reload(tmp_path, tiny_dir, levers):
    corpus = Corpus.load(tiny_dir, "en", "fine")
    res = fit(load_config(None, [*LEVER_NET, *levers]), corpus, tmp_path, progress=False)
    run_ = load_run(tmp_path)
    assert run_.cfg == load_config(None, [*LEVER_NET, *levers])
    if "char_features=true" in levers:
        assert run_.chars is not None and run_.model.chars is not None
    tags = predict_tags(run_.model, corpus.test, run_.vocab, run_.tags, chars=run_.chars)
    assert [len(t) for t in tags] == [len(s) for s in corpus.test]
    # reloaded model reproduces the run's own test score
    from distner.evaluation.metrics import score

    again = score([list(s.tags) for s in corpus.test], tags)
    assert again["entity_macro_f1"] == pytest.approx(res.metrics["test"]["entity_macro_f1"])


def _vec_file(path, words, dim=8, header=True, gz=False):
    torch.manual_seed(0)
    lines = [f"{len(words)} {dim}"] if header else []
    vecs = torch.randn(len(words), dim)
    lines += [w + " " + " ".join(f"{x:.5f}" for x in v.tolist()) for w, v in zip(words, vecs)]
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return vecs


@pytest.mark.parametrize("gz", [False, True])
def test_pretrained_vectors_frozen_and_oov_words_kept(tmp_path, tiny_dir, gz):
    path = tmp_path / ("v.vec.gz" if gz else "v.vec")
    words = ["paris", "berlin", "zanzibar"]  # zanzibar never occurs in train
    vecs = _vec_file(path, words, gz=gz)
    corpus = Corpus.load(tiny_dir, "en", "fine")
    cfg = load_config(None, [*LEVER_NET, f"pretrained_vectors={path}", "freeze_embeddings=true"])
    fit(cfg, corpus, tmp_path / "run", progress=False)
    run_ = load_run(tmp_path / "run")
    emb = run_.model.embedding.weight
    for w, v in zip(words, vecs):
        assert w in run_.vocab.itos
        torch.testing.assert_close(emb[run_.vocab.itos.index(w)], v, atol=1e-4, rtol=0)


def test_lightning_reshuffles_every_epoch(tiny_dir, tmp_path):
    seen: list[list[int]] = []

    class Record(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            seen.append([])

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen[-1].append(int(batch.tokens.sum()))

    cfg = load_config(None, ["embedding_dim=8", "hidden_dim=8", "epochs=3", "batch_size=3"])
    fit(cfg, Corpus.load(tiny_dir, "en", "fine"), tmp_path, progress=False, callbacks=[Record()])
    assert len(seen) == 3 and len({tuple(e) for e in seen}) == 3  # set_epoch reached the sampler
    # the same batches as the sampler alone gives for each epoch
    train = Corpus.load(tiny_dir, "en", "fine").train
    loader = make_loader(encode(train, Vocab.build(train), tag_set("fine"), 25), 3, True, 42)
    for epoch, sums in enumerate(seen):
        loader.sampler.set_epoch(epoch)
        assert [int(b.tokens.sum()) for b in loader] == sums


@pytest.mark.parametrize("evaluate_test", [False, True])
def test_a_fit_enters_e5_once_from_the_step_that_builds_its_inputs(tiny_dir, tmp_path, evaluate_test):
    """Every call from distner into distner/pretrained/ during a fit with every e5 lever (features,
    trained top layers) comes from `prepare`; the model, the run folder and dev's scoring take what
    it read. The one other entry is the test split's features, read when it is scored."""
    import sys
    from pathlib import Path

    import distner.data.encoded as encoded

    pretrained = str(Path(encoded.__file__).parent.parent / "pretrained")
    cfg = load_config(None, ["embedding_dim=8", "hidden_dim=8", "epochs=1", "encoder_features=e5",
                             "encoder_layers=last2", "encoder_train_layers=2"])  # fmt: skip
    corpus = Corpus.load(tiny_dir, "en", "fine")
    inside, entries = [0], []

    def watch(frame, event, arg) -> None:
        if frame.f_code is encoded.prepare.__code__:
            inside[0] += {"call": 1, "return": -1}.get(event, 0)
        if event != "call" or not frame.f_code.co_filename.startswith(pretrained):
            return
        up = frame.f_back  # an entry: no frame of pretrained/ below it (its own callbacks are not)
        while up is not None and not up.f_code.co_filename.startswith(pretrained):
            up = up.f_back
        caller = frame.f_back
        if up is None and caller is not None and "distner" in caller.f_code.co_filename:
            entries.append((inside[0] > 0, Path(caller.f_code.co_filename).name, caller.f_code.co_name))

    sys.setprofile(watch)
    try:
        fit(cfg, corpus, tmp_path / "run", progress=False, evaluate_test=evaluate_test)
    finally:
        sys.setprofile(None)
    assert entries and all(in_prepare for in_prepare, _, _ in entries if not evaluate_test), entries
    outside = {(f, fn) for in_prepare, f, fn in entries if not in_prepare}
    assert outside == ({("encoded.py", "split_features")} if evaluate_test else set()), entries
