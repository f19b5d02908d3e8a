"""Packed trials (distner.tune.packed): the same study run as one Lightning process per trial and with
two trials per packer, on real Ray, Optuna and the synthetic corpus. Each packed trial is still a
trial of its own: its row, per-epoch scores, TensorBoard run, checkpoint and Optuna trial."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from distner.evaluation.metrics import MONITOR
from distner.options import TuneOptions
from distner.tune.driver import run_study

from ..helpers import ROOT, SPACE, ray_left, ray_pids, run_cli, write

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses

SEED = 5


class Studies(NamedTuple):
    lightning: Path  # results folders
    packed: Path
    ray_left: set[int]
    phases: list[dict[str, float]]  # each study's driver steps, in seconds


@pytest.fixture(scope="module")
def studies(tmp_path_factory, synthetic_data) -> Studies:
    tmp = tmp_path_factory.mktemp("packed")
    space = write(tmp / "space.yaml", SPACE % 3)
    before = ray_pids()
    out, phases = [], []
    for name, pack in (("lightning", 1), ("packed", 2)):
        opts = TuneOptions(
            lang="hindi",
            space=str(space),
            num_samples=4,
            storage=str(tmp / "runs"),
            best_dir=str(tmp / name / "best"),
            data_dir=str(synthetic_data),
            verbose=0,
            seed=SEED,
            name=name,
            checkpoint_every=1,
            pack=pack,
        )
        result = run_study(opts)
        out.append(result.results_dir)
        phases.append(result.phases)
    return Studies(out[0], out[1], ray_left(before), phases)


def _rows(results: Path) -> list[dict]:
    return list(csv.DictReader(open(results / "trials.csv")))


def _epochs(trial_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (trial_dir / "result.json").read_text().splitlines() if x.strip()]


def test_packed_trials_score_as_lightning_trials(studies):
    """The same four configs (TPE's first proposals are seeded draws), and every epoch both studies
    ran scored the same: packing changes where a trial runs, not what it computes."""
    assert not studies.ray_left, f"Ray processes left running: {sorted(studies.ray_left)}"
    plain, packed = _rows(studies.lightning), _rows(studies.packed)
    assert len(plain) == len(packed) == 4
    keys = ("embedding_dim", "hidden_dim", "batch_size", "lr", "baseline")
    assert [[r[k] for k in keys] for r in packed] == [[r[k] for k in keys] for r in plain]
    assert all(r["trial_dir"].startswith("run_packed_trial_") for r in packed)
    compared = 0
    for a, b in zip(plain, packed):
        ea, eb = _epochs(studies.lightning / a["trial_dir"]), _epochs(studies.packed / b["trial_dir"])
        assert [e["training_iteration"] for e in eb] == list(range(1, len(eb) + 1))
        for x, y in zip(ea, eb):
            for k in (MONITOR, "train_loss", "val_loss"):
                assert y[k] == pytest.approx(x[k], rel=1e-4, abs=1e-5), (b["trial"], x["epoch"], k)
            compared += 1
        assert set(eb[-1]) >= {"setup_s", "train_s", "validate_s", "train_tokens_per_s"}  # where time went
    assert compared >= 4
    s = json.loads((studies.packed / "summary.json").read_text())
    assert s["trials"] == 4 and s["completed"] + s["stopped_early"] == 4
    assert json.loads((studies.packed / "pack.json").read_text()) == {"pack": 2}


def test_a_study_says_where_its_wall_time_went(studies):
    """The driver's steps in order, each timed: a packed study's packers apart from its trials."""
    lightning, packed = studies.phases
    assert list(lightning) == ["imports", "ray", "trials", "outputs"]
    assert list(packed) == ["imports", "ray", "packers", "trials", "outputs"]
    for phases in studies.phases:
        assert all(v >= 0 for v in phases.values())
        assert phases["trials"] > 1  # 4 trials of real training


def test_packed_trial_folders_hold_a_run(studies):
    """Each packed trial folder holds what a Lightning trial's does: config.yaml, model.pt of its
    best epoch (loadable into the config's network), its own TensorBoard run and Ray's events."""
    from distner.evaluation.evaluate import load_run

    for row in _rows(studies.packed):
        d = studies.packed / row["trial_dir"]
        acc = EventAccumulator(str(d / "tb"))
        acc.Reload()
        f1 = [e.value for e in acc.Scalars(MONITOR)]
        assert len(f1) == int(row["epochs_run"]) and max(f1) == pytest.approx(float(row["best_dev_f1"]))
        ray_acc = EventAccumulator(str(d))
        ray_acc.Reload()
        assert f"ray/tune/{MONITOR}" in ray_acc.Tags()["scalars"]
        run = load_run(d)
        assert run.model.cfg.hidden_dim == int(row["hidden_dim"])
        weights = torch.load(d / "model.pt", map_location="cpu", weights_only=True)
        assert weights.keys() == run.model.state_dict().keys()


def test_optuna_hears_stopped_trials_as_pruned(studies):
    """Every trial is an Optuna trial of its own, told as what happened to it: PRUNED (valued at its
    last epoch) when ASHA stopped it, COMPLETE when it ran all its epochs. The same with and
    without packing."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for results in (studies.lightning, studies.packed):
        rows = _rows(results)
        db = optuna.load_study(study_name=results.name, storage=f"sqlite:///{results / 'optuna.db'}")
        trials = sorted(db.trials, key=lambda t: t.number)
        assert len(trials) == len(rows) == 4
        want = {
            "completed": optuna.trial.TrialState.COMPLETE,
            "stopped_early": optuna.trial.TrialState.PRUNED,
        }
        assert [t.state for t in trials] == [want[r["state"]] for r in rows]  # (test_searcher.py
        # covers both states for certain; which trials ASHA stops here depends on their timing)
        for t, r in zip(trials, rows):
            last = _epochs(results / r["trial_dir"])[-1][MONITOR]
            assert t.value == pytest.approx(last)


def _cmd(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    space = write(tmp_path / "space.yaml", SPACE % 3)
    return [
        *(sys.executable, "-m", "distner", "tune", "--lang", "hi", "--space", str(space)),
        *("--num-samples", "3", "--storage", str(tmp_path / "runs"), "--name", "killed"),
        *("--best-dir", str(tmp_path / "best"), "--data-dir", str(data), "--verbose", "0"),
        *("--checkpoint-every", "1", "--grace-period", "3"),
        *extra,
    ]


def test_packed_study_resumes_after_sigkill(tmp_path, synthetic_data, no_ray_left):
    """SIGKILL the driver while trials are part-way: --resume continues each trial from its last
    checkpoint, no epoch repeated or skipped; resuming it unpacked is refused."""
    cmd = _cmd(tmp_path, synthetic_data, "--pack", "2", "--cpus-per-trial", "2")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    study_dir = tmp_path / "runs" / "killed"
    deadline = time.time() + 240
    epochs: dict[str, list[int]] = {}
    while time.time() < deadline and proc.poll() is None:
        if study_dir.is_dir():
            epochs = {d.name: [e["training_iteration"] for e in _epochs(d)] for d in _trial_dirs(study_dir)}
            if any(0 < len(e) < 3 for e in epochs.values()):
                break
        time.sleep(0.1)
    assert proc.poll() is None, "study finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)

    refused = subprocess.run([*cmd[:-4], "--pack", "1", "--resume"], capture_output=True, text=True)
    assert refused.returncode == 2 and "resume it with --pack 2" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr

    # killed, the driver never signed the state Ray last wrote: resuming it needs --trust
    unsigned = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
    assert unsigned.returncode == 2 and "not signed by this user's key" in unsigned.stderr, unsigned.stderr
    assert "killed before it could sign it" in unsigned.stderr
    done = subprocess.run([*cmd, "--resume", "--trust"], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = list(csv.DictReader(open(study_dir / "trials.csv")))
    assert len(rows) == 3 and all(r["state"] == "completed" for r in rows), rows
    final = {d.name: [e["training_iteration"] for e in _epochs(d)] for d in _trial_dirs(study_dir)}
    assert all(it == [1, 2, 3] for it in final.values()), final
    partial = [n for n, it in epochs.items() if 0 < len(it) < 3]
    assert partial and all(final[n] == [1, 2, 3] for n in partial)


def _trial_dirs(study_dir: Path) -> list[Path]:
    return [d for d in study_dir.iterdir() if d.is_dir() and (d / "result.json").is_file()]


@pytest.mark.parametrize(
    ("flag", "message"),
    [("0", "--pack: must be >= 1"), ("-3", "--pack: must be >= 1"), ("100000", "at most")],
)
def test_bad_pack_is_one_line(tmp_path, synthetic_data, flag, message, no_ray_left):
    bad = run_cli(*_cmd(tmp_path, synthetic_data, "--pack", flag)[3:])
    assert bad.returncode == 2, bad.stderr
    assert message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "best").exists()


def test_pack_size_from_the_spaces_largest_config(tmp_path):
    """K from what a device holds: the space's largest config (every size at its top, a BiLSTM if
    it may be one, no truncation if allowed) by a memory estimate that grows with each size."""
    from distner.config import load_config
    from distner.core.errors import DistnerError
    from distner.options import PACK_MAX
    from distner.spaces import load_space
    from distner.tune.packed import auto_pack, check_pack, largest_config, member_bytes

    big = largest_config(load_space(ROOT / "tune_spaces" / "extended.yaml"))
    m, t = big.model, big.train
    assert (m.embedding_dim, m.hidden_dim, m.num_layers, t.batch_size, t.seq_len) == (520, 520, 2, 64, 0)
    assert m.bidirectional and m.crf and m.char_features and m.char_channels == 100
    seed = load_config(None)
    need = member_bytes(seed, vocab=30_000, tags=67, longest=60)
    params = 30_000 * 520 + 4 * 520 * (520 + 520 + 2) + 521 * 67 + 67 * 67
    assert 16 * params < need < 16 * params + 2**28  # 4 copies of the weights, and activations
    assert member_bytes(big, 30_000, 67, 60) > 2 * need
    assert member_bytes(seed.replace(batch_size=70), 30_000, 67, 60) > need
    gib = 2**30
    assert auto_pack(need, 140 * gib) == PACK_MAX  # an H200 holds far more than the cap
    assert auto_pack(need, need) == 1  # never below one
    assert auto_pack(need, 3 * need) == 2  # 80% of the memory
    check_pack(2, need, 3 * need, "each GPU")
    with pytest.raises(DistnerError, match=r"--pack 3: .* at most 2 fit"):
        check_pack(3, need, 3 * need, "each GPU")
    # encoder_train_layers auto, among a choice or fixed: the most layers it can come to
    for trained in ("{choice: [0, auto]}", "auto"):
        space = write(
            tmp_path / "e5.yaml",
            "encoder_features: e5\nembedding_dim: 384\nencoder_layers: {choice: [last4, last8]}\n"
            f"encoder_train_layers: {trained}\n",
        )
        assert largest_config(load_space(space)).model.encoder_train_layers == 8


def test_gpu_pack_size_comes_from_the_packers_cards(tmp_path):
    """On GPUs the driver asks its packers for their cards' memory (no probe process of its own):
    once, only when K is not given as 1, and not for --results-only, which trains nothing."""
    from distner.core.errors import DistnerError
    from distner.data.conll import Corpus
    from distner.spaces import load_space
    from distner.tune.driver import _decide_pack
    from distner.tune.study import Study

    corpus = Corpus.load(str(ROOT / "tests" / "fixtures" / "tiny"), "en", "fine")
    space = load_space(ROOT / "tune_spaces" / "extended.yaml")
    study = Study("s", "en", "fine", str(tmp_path / "runs"), str(tmp_path / "best"))
    study.results_dir.mkdir(parents=True)
    asked: list[int] = []

    def decide(pack: int | None, gib: int, results_only: bool = False) -> int:
        def card_memory() -> int:
            asked.append(gib)
            return gib * 2**30

        opts = TuneOptions(lang="en", pack=pack, results_only=results_only)
        return _decide_pack(opts, study, space, corpus, 1.0, card_memory)

    assert decide(None, 140) == 8 and asked == [140]  # as many as fit, at most PACK_MAX
    assert decide(1, 140) == 1 and asked == [140]  # one member: no card to measure
    with pytest.raises(DistnerError, match=r"--pack 8: .* at most"):
        decide(8, 1)
    assert decide(3, 140) == 3 and asked == [140, 1, 140]
    assert decide(None, 1, results_only=True) == 3 and asked == [140, 1, 140]  # as recorded
