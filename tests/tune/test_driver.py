"""Real Ray Tune studies (local Ray, 2 CPUs), real Optuna, real Lightning fits on a Hindi slice of
the synthetic corpus."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from distner.config import load_config
from distner.core.errors import DistnerError
from distner.evaluation.metrics import MONITOR
from distner.options import RetrainOptions, TuneOptions, parse_duration
from distner.records import StudySummary
from distner.tune.driver import run_study
from distner.tune.study import active_seconds

from ..helpers import SPACE, as_in_a_terminal, ray_left, ray_pids, run_cli, write

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses

START = """
embedding_dim: 16
hidden_dim: 16
batch_size: 64
lr: 0.0217
crf: true
_meta: {study: runs/other-cell}
"""
SEED = 3


class Study(NamedTuple):
    result: object  # distner's StudyResult
    tmp: Path
    data: Path
    ray_left: set[int]  # Ray processes of the study still running once it returned


@pytest.fixture(scope="module")
def study(tmp_path_factory, synthetic_data) -> Study:
    tmp = tmp_path_factory.mktemp("study")
    space = write(tmp / "space.yaml", SPACE % 2)
    # a warm start, as from another cell's best/<cell>.yaml (its _meta and unsearched keys are ignored)
    start = write(tmp / "start.yaml", START)
    opts = TuneOptions(
        lang="hindi",
        space=str(space),
        num_samples=4,
        storage=str(tmp / "runs"),
        best_dir=str(tmp / "best"),
        data_dir=str(synthetic_data),
        verbose=0,
        seed=SEED,
        start_from=(str(start),),
        checkpoint_every=2,
        keep_checkpoints=True,  # test_trials_checkpoint_every_k_epochs reads them
    )
    before = ray_pids()  # the leak check wraps the study itself (no_ray_left would run after it)
    result = run_study(opts)
    return Study(result, tmp, synthetic_data, ray_left(before))


def _rows(result) -> list[dict]:
    return list(csv.DictReader(open(result.results_dir / "trials.csv")))


def test_study_outputs(study):
    result = study.result
    assert not study.ray_left, f"the study left Ray processes running: {sorted(study.ray_left)}"
    rows = _rows(result)
    assert len(rows) == 4
    assert rows[0]["baseline"] == "True"  # the reference is trial one
    assert (rows[0]["embedding_dim"], rows[0]["hidden_dim"], rows[0]["batch_size"]) == ("520", "520", "35")
    start = (rows[1]["embedding_dim"], rows[1]["hidden_dim"], rows[1]["batch_size"], rows[1]["lr"])
    assert start == ("16", "16", "64", "0.0217")  # --start-from runs next
    assert all(r["state"] in ("completed", "stopped_early") for r in rows)
    s = json.loads((result.results_dir / "summary.json").read_text())
    # what the writer wrote is what the type says, key for key
    assert set(s) == set(StudySummary.__required_keys__) | set(StudySummary.__optional_keys__)
    assert s["trials"] == 4 and s["completed"] + s["stopped_early"] == 4
    # the summary agrees with trials.csv: its best is the best row's, its baseline trial one's
    assert s["best_dev_f1"] == pytest.approx(max(float(r["best_dev_f1"]) for r in rows))
    assert s["baseline_dev_f1"] == pytest.approx(float(rows[0]["best_dev_f1"]))
    assert s["searcher"] == f"OptunaSearch(TPESampler(seed={SEED}))"
    # some trial was in an epoch for at least its longest trial's time, at most all trials' together
    # (Ray stamps results in whole seconds: one second of slack per epoch)
    slack = sum(int(r["epochs_run"]) for r in rows)
    longest = max(float(r["seconds"]) for r in rows)
    assert longest - slack <= s["active_seconds"] <= s["trial_seconds"] + slack, s
    # the warm-start trial is found by its values: what the transferred config scored here
    (started,) = s["start_from"]
    assert started["config"].endswith("start.yaml") and started["trial"] == rows[1]["trial"]
    assert started["best_dev_f1"] == pytest.approx(float(rows[1]["best_dev_f1"]))


def test_report_shows_what_tuning_bought(study):
    """The report's dev table: the winner, the warm start and the baseline, with the epochs each ran
    (read from trials.csv), as the study wrote them."""
    from distner.report.facts import study_facts
    from distner.report.tables import tuning_bought_table

    rows = {r["trial"]: r for r in _rows(study.result)}
    base = next(r for r in rows.values() if r["baseline"] == "True")
    facts = study_facts(str(study.result.results_dir))
    s = json.loads((study.result.results_dir / "summary.json").read_text())
    won, based = int(rows[s["best_trial"]]["epochs_run"]), int(base["epochs_run"])
    assert (facts["best_epochs_run"], facts["baseline_epochs_run"]) == (won, based)
    lines = tuning_bought_table(facts).splitlines()
    won_by_start = s["best_trial"] == s["start_from"][0]["trial"]
    start = facts["start_from"][0]["config"]
    winner = f"tuned winner (= warm start `{start}`)" if won_by_start else "tuned winner"
    assert lines[2] == f"| {winner} | {100 * s['best_dev_f1']:.2f} | {won} |"
    assert lines[3].startswith("| warm start `")
    assert lines[3].endswith(f" | {s['start_from'][0]['epochs_run']} |")
    assert lines[4] == f"| reference baseline (trial 1) | {100 * s['baseline_dev_f1']:.2f} | {based} |"
    assert tuning_bought_table({**facts, "start_from": []}) is None
    # the other case than this study's: the warm start as the winner, or not
    flip = {**facts, "best_trial": None if won_by_start else s["start_from"][0]["trial"]}
    assert ("= warm start" in tuning_bought_table(flip).splitlines()[2]) is not won_by_start


def test_a_real_studys_trials_are_start_points(study, tmp_path):
    """The study above, as a start point of another: its rank-N trial's full config (the one its
    trial folder's run wrote), keys set over it; rank 1 is its best/ config."""
    from distner.tune.start import resolve_start_points
    from distner.tune.study import StudyFiles

    folder = study.result.results_dir
    ranked = StudyFiles(folder).ranked()
    (best, b), (second, c) = resolve_start_points([str(folder), f"{folder},rank=2,epochs=1"])
    assert b == load_config(study.result.best_config_path)
    assert second.trial().trial == ranked[1].trial and c.train.epochs == 1
    assert c.replace(epochs=2) == StudyFiles(folder).trial_config(ranked[1])[0]
    with pytest.raises(DistnerError, match=rf"rank=9, but study {folder} has {len(ranked)} finished trial"):
        resolve_start_points([f"{folder},rank=9"])


def test_start_points_run_once(tmp_path, capsys):
    """Two cells' winners are often one config: each distinct point of the searched keys is one
    trial (unsearched keys and _meta do not make a point distinct; the reference's values run once,
    as trial one)."""
    from distner.spaces import load_space
    from distner.tune.driver import initial_points

    space = load_space(write(tmp_path / "space.yaml", SPACE % 2))
    a = write(tmp_path / "a.yaml", START)
    same = write(tmp_path / "same.yaml", START.replace("runs/other-cell", "runs/third") + "dropout: 0.3\n")
    other = write(tmp_path / "other.yaml", START.replace("lr: 0.0217", "lr: 0.005"))
    seed = write(tmp_path / "seed.yaml", "embedding_dim: 520\nhidden_dim: 520\nbatch_size: 35\nlr: 0.01\n")
    from distner.tune.start import resolve_start_points

    # a start point with overrides is its own point only where they change a searched key
    alike = f"{other},lr=0.0217,epochs=3"
    starts = resolve_start_points([str(a), str(same), str(other), str(seed), alike])
    points = initial_points(space, starts)
    assert points == [space.baseline_point(), space.start_point(a), space.start_point(other)]
    err = capsys.readouterr().err
    assert (
        f"--start-from {same}: " in err
        and f"--start-from {seed}: " in err
        and f"--start-from {alike}: " in err
    )
    assert f"--start-from {other}: " not in err


def test_trials_checkpoint_every_k_epochs(study):
    """checkpoint_every=2 with 2-epoch trials: a checkpoint after epoch 2 only; a trial that ASHA
    stopped after epoch 1 never saved one."""
    import torch

    result = study.result
    rows = _rows(result)
    assert {r["epochs_run"] for r in rows} <= {"1", "2"}
    for r in rows:
        ckpts = sorted(Path(result.study_path, r["trial_dir"]).glob("checkpoint_*/last.ckpt"))
        if r["epochs_run"] == "1":
            assert ckpts == [], r
        else:
            assert len(ckpts) == 1, r
            assert torch.load(ckpts[0], map_location="cpu", weights_only=False)["epoch"] == 1  # 0-based


def test_auto_checkpoints_cost_at_most_a_twentieth():
    from distner.train.checkpoints import due_for_checkpoint

    assert [e for e in range(1, 10) if due_for_checkpoint(e, 3, 0.0, 0.0)] == [3, 6, 9]
    assert not due_for_checkpoint(5, 0, since_s=30.0, last_cost_s=0.0)  # 1 s GPU epochs: none yet
    assert due_for_checkpoint(2, 0, since_s=61.0, last_cost_s=0.0)  # a minute of CPU training
    assert not due_for_checkpoint(3, 0, since_s=61.0, last_cost_s=5.0)  # 5 s to save: wait 100 s
    assert due_for_checkpoint(4, 0, since_s=101.0, last_cost_s=5.0)


def test_optuna_was_the_searcher(study):
    """optuna.db is the searcher's own study: one Optuna trial per Tune trial, with that trial's
    values; and the trials after the two enqueued ones are exactly what TPESampler(seed=3) proposes
    (its first ten proposals are seeded random draws, whatever the scores). Any other searcher, or
    another seed, proposes other values."""
    import optuna

    result = study.result
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = optuna.load_study(study_name=result.name, storage=f"sqlite:///{result.results_dir / 'optuna.db'}")
    trials = sorted(db.trials, key=lambda t: t.number)
    rows = _rows(result)
    assert len(trials) == len(rows) == 4
    told = {"completed": optuna.trial.TrialState.COMPLETE, "stopped_early": optuna.trial.TrialState.PRUNED}
    assert [t.state for t in trials] == [told[r["state"]] for r in rows]  # ASHA's stops are prunes
    keys = ("embedding_dim", "hidden_dim", "batch_size", "lr")
    for t, row in zip(trials, rows):  # Tune's trial order is the order it asked Optuna
        assert set(t.params) == set(keys)
        assert [t.params[k] for k in keys] == [pytest.approx(float(row[k])) for k in keys], row["trial"]

    def proposals(seed: int) -> list[dict]:
        """Replay Ray's OptunaSearch: the baseline and the --start-from point enqueued, then asked
        with the space's distributions in the space file's order."""
        replay = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        for t in trials[:2]:
            replay.enqueue_trial(t.params)
        space = {k: trials[-1].distributions[k] for k in keys}
        return [replay.ask(fixed_distributions=space).params for _ in trials]

    assert proposals(SEED) == [t.params for t in trials]
    assert proposals(SEED + 1)[2:] != [t.params for t in trials[2:]]


def test_every_trial_has_tensorboard_events(study):
    result = study.result
    trial_dirs = [
        p for p in Path(result.study_path).iterdir() if p.is_dir() and p.name.startswith("run_trial")
    ]
    assert len(trial_dirs) == 4
    for d in trial_dirs:
        acc = EventAccumulator(str(d / "tb"))
        acc.Reload()
        assert len(acc.Scalars("val_entity_macro_f1")) >= 1  # Lightning's curves, synced to storage
        ray_acc = EventAccumulator(str(d))
        ray_acc.Reload()
        assert "ray/tune/val_entity_macro_f1" in ray_acc.Tags()["scalars"]  # Ray's own logger


def test_best_config_trains_again(study, tmp_path):
    result = study.result
    assert result.best_config_path.name == "hi-fine.yaml"
    cfg = load_config(result.best_config_path)
    assert cfg.train.max_train_sentences == 300
    proc = run_cli(
        "train",
        "--lang",
        "hi",
        "--config",
        result.best_config_path,
        "--set",
        "epochs=1",
        "--data-dir",
        study.data,
        "--out",
        tmp_path / "again",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again" / "metrics.json").is_file()


def test_retrain_top_k_from_the_study(study, tmp_path):
    from distner.workflow.retrain import retrain_cell

    result, tmp = study.result, study.tmp
    r = retrain_cell(
        RetrainOptions(
            lang="hi",
            top_k=2,
            storage=str(tmp / "runs"),
            seeds=1,
            retrain_dir=str(tmp_path),
            data_dir=str(study.data),
            overrides=("epochs=1",),
            progress=False,
        )
    )
    assert list(r["variants"]) == ["tuned-1", "tuned-2", "baseline"]
    rows = sorted(_rows(result), key=lambda x: -float(x["best_dev_f1"]))
    assert r["variants"]["tuned-1"]["config"]["embedding_dim"] == int(rows[0]["embedding_dim"])
    assert r["study"] == str(tmp / "runs" / "hi-fine")
    assert (tmp_path / "hi-fine" / "final.json").is_file()


def test_existing_study_needs_resume(study, synthetic_data):
    tmp = study.tmp
    opts = TuneOptions(
        lang="hi", space=str(tmp / "space.yaml"), storage=str(tmp / "runs"), data_dir=str(synthetic_data)
    )
    with pytest.raises(DistnerError, match="study exists; add --resume"):
        run_study(opts)


def test_durations():
    assert parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400 and parse_duration("45") == 45
    with pytest.raises(DistnerError):
        parse_duration("soon")


def test_active_seconds_is_the_union_of_epochs():
    """Two overlapping trials, then one after a pause (a resumed study): 12 s + 10 s, not the
    32 s the trials ran together nor the 110 s from first start to last end."""
    import pandas as pd

    class Trial(NamedTuple):
        metrics_dataframe: pd.DataFrame

    def trial(*epochs: tuple[float, float]) -> Trial:
        ends, took = zip(*epochs)
        return Trial(pd.DataFrame({"timestamp": ends, "time_this_iter_s": took}))

    grid = [trial((5, 5), (10, 5)), trial((8, 3), (12, 4)), trial((105, 5), (110, 5))]
    assert active_seconds(grid) == 22
    assert active_seconds([Trial(None), trial((3, 3))]) == 3  # a trial that never reported


def _epochs_per_trial(study_dir: Path) -> dict[str, list[int]]:
    out = {}
    for d in study_dir.iterdir():
        if d.is_dir() and (d / "result.json").is_file():
            lines = [json.loads(x) for x in (d / "result.json").read_text().splitlines() if x.strip()]
            out[d.name] = [r["training_iteration"] for r in lines]
    return out


def _scores_per_trial(study_dir: Path) -> dict[str, list[float]]:
    """Each trial folder's dev score per epoch, from Ray's result.json."""
    out = {}
    for d in study_dir.iterdir():
        if d.is_dir() and (d / "result.json").is_file():
            lines = [json.loads(x) for x in (d / "result.json").read_text().splitlines() if x.strip()]
            out[d.name] = [r[MONITOR] for r in lines]
    return out


def test_interrupted_study_resumes(tmp_path, synthetic_data, no_ray_left):
    space = write(tmp_path / "space.yaml", SPACE % 3)
    cmd = [
        sys.executable,
        "-m",
        "distner",
        "tune",
        "--lang",
        "hi",
        "--space",
        space,
        "--num-samples",
        "4",
        "--max-concurrent",
        "1",
        "--storage",
        tmp_path / "runs",
        "--best-dir",
        tmp_path / "best",
        "--data-dir",
        synthetic_data,
        "--name",
        "resume",
        "--verbose",
        "0",
        "--checkpoint-every",
        "1",  # every epoch: then --resume repeats none (with K it repeats at most K-1)
    ]
    cmd = [str(c) for c in cmd]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=as_in_a_terminal
    )
    study_dir = tmp_path / "runs" / "resume"
    deadline = time.time() + 240
    # interrupt (Ctrl-C) while the first trial (the baseline, 3 epochs) is part-way
    while time.time() < deadline and proc.poll() is None:
        if study_dir.is_dir() and any(_epochs_per_trial(study_dir).values()):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "study finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    at_interrupt = _epochs_per_trial(study_dir)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "--resume" in out, out[-2000:]
    assert not (tmp_path / "best" / "hi-fine.yaml").exists(), out[-2000:]

    # resumed at the default verbosity: Ray's banner, less its TensorBoard line (it names Ray's
    # staging folder); distner's own hint names the study
    done = subprocess.run([*cmd, "--resume", "--verbose", "1"], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"View detailed results here: {study_dir}" in done.stdout, done.stdout[-3000:]
    assert "TensorBoard" not in done.stdout and f"distner board {study_dir}" in done.stderr
    rows = list(csv.DictReader(open(study_dir / "trials.csv")))
    assert len(rows) == 4 and len({r["trial"] for r in rows}) == 4
    assert all(r["state"] in ("completed", "stopped_early") for r in rows), rows
    final = _epochs_per_trial(study_dir)
    for name, iters in final.items():
        assert iters == list(range(1, len(iters) + 1)), f"{name} repeated or skipped an epoch: {iters}"
    partial = [n for n, it in at_interrupt.items() if 0 < len(it) < 3]
    assert partial and all(len(final[n]) == 3 for n in partial)  # continued from its checkpoint
    # every trial ended: their checkpoints (the partial one's resumed from) are gone
    assert "removed the checkpoints of" in done.stderr, done.stderr[-2000:]
    assert not list(study_dir.glob("*/checkpoint_*")), sorted(study_dir.glob("*/checkpoint_*"))
    assert (tmp_path / "best" / "hi-fine.yaml").is_file()

    # time across both runs: one trial at a time, so the seconds with a trial in an epoch are the
    # trials' own seconds (to Ray's whole-second timestamps), the interrupted run's included
    s = json.loads((study_dir / "summary.json").read_text())
    epochs = sum(len(it) for it in final.values())
    assert abs(s["active_seconds"] - s["trial_seconds"]) <= epochs + 1, s
    assert s["wall_seconds"] > 0
    # --results-only rewrites the outputs from what is on disk and keeps the recorded times
    again = subprocess.run([*cmd, "--results-only"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    rewritten = json.loads((study_dir / "summary.json").read_text())
    assert {k: rewritten[k] for k in ("wall_seconds", "active_seconds", "trial_seconds")} == {
        k: s[k] for k in ("wall_seconds", "active_seconds", "trial_seconds")
    }


def test_stop_after_every_trial_started(tmp_path, synthetic_data, no_ray_left):
    """A stop once the last trial is running: Tune then marks the running trials TERMINATED, so
    without distner's own signal check the study looked finished and wrote a best config."""
    sig = signal.SIGTERM
    space = write(tmp_path / "space.yaml", SPACE.replace("epochs: %d", "epochs: 30"))
    cmd = [
        *(sys.executable, "-m", "distner", "tune", "--lang", "hi", "--space", space),
        *("--num-samples", "2", "--max-concurrent", "2", "--cpus-per-trial", "1"),
        *("--storage", tmp_path / "runs", "--best-dir", tmp_path / "best", "--data-dir", synthetic_data),
        *("--name", "stop", "--verbose", "0", "--grace-period", "30"),
    ]
    cmd = [str(c) for c in cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    study_dir = tmp_path / "runs" / "stop"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if study_dir.is_dir() and len([e for e in _epochs_per_trial(study_dir).values() if e]) == 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "study finished before it could be stopped"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:]
    assert f"stopped by {sig.name}" in out and "--resume" in out, out[-2000:]
    assert not (tmp_path / "best" / "hi-fine.yaml").exists()
    assert not (study_dir / "trials.csv").exists() and not (study_dir / "summary.json").exists()
    assert min(len(e) for e in _epochs_per_trial(study_dir).values()) < 30  # one was cut short


def test_pending_trials_one_per_free_slot_unless_the_user_set_it(monkeypatch):
    from distner.tune.driver import _pending_trials

    key = "TUNE_MAX_PENDING_TRIALS_PG"
    monkeypatch.delenv(key, raising=False)
    with _pending_trials(None, 3):
        assert os.environ[key] == "3"  # Tune's own default with a searcher is 1
    assert key not in os.environ
    with _pending_trials(4, 3):  # --max-concurrent: Tune takes its pending limit from that
        assert key not in os.environ
    monkeypatch.setenv(key, "7")
    with _pending_trials(None, 3):
        assert os.environ[key] == "7"


def test_retrain_top_k_beyond_the_study_is_refused(study, tmp_path):
    from distner.workflow.retrain import retrain_cell

    tmp = study.tmp
    opts = RetrainOptions(
        lang="hi", top_k=9, storage=str(tmp / "runs"), retrain_dir=str(tmp_path), progress=False
    )
    with pytest.raises(DistnerError, match=r"--top-k 9: study .*hi-fine has 4 finished trial\(s\)"):
        retrain_cell(opts)
    assert not any(tmp_path.iterdir())


def test_a_study_of_the_flat_layout_resumes(tmp_path, synthetic_data, no_ray_left):
    """A study started before distner's modules moved into packages grows by a trial: Ray unpickles
    its searcher by the old module path (distner.searcher), which stays an alias for one release.
    It was written before distner signed a study's Ray state (tune/trust.py), so it has no
    signature: resuming it takes --trust once, as the docs tell a user with such a study."""
    import shutil

    folder = shutil.copytree(
        Path(__file__).parent.parent / "fixtures" / "flat-layout-study", tmp_path / "old"
    )
    assert b"distner.searcher" in (folder / "runs" / "flat" / "tuner.pkl").read_bytes()
    proc = run_cli(
        "tune", "--lang", "hindi", "--space", "space.yaml", "--num-samples", "2", "--storage", "runs",
        "--best-dir", "best", "--name", "flat", "--data-dir", synthetic_data, "--seed", "3", "--resume",
        "--trust", cwd=folder,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(folder / "runs" / "flat" / "trials.csv")))
    assert len(rows) == 2 and all(r["state"] == "completed" for r in rows), rows


@pytest.mark.parametrize(
    "key, values, needle",
    [
        ("min_freq", "[1, 3]", "space.yaml: key 'min_freq': min_freq=3"),
        ("precision", '["32", "16-mixed"]', "space.yaml: key 'precision': precision=16-mixed: needs a GPU"),
    ],
)
def test_a_space_a_trial_cannot_train_with_is_one_line(tmp_path, key, values, needle, no_ray_left):
    """Said once before any trial starts, not by every trial that draws the value."""
    from ..helpers import TINY, one_line_error

    space = write(
        tmp_path / "space.yaml", f"embedding_dim: 8\nhidden_dim: 8\nepochs: 1\n{key}: {{choice: {values}}}\n"
    )
    proc = run_cli(
        "tune", "--lang", "en", "--data-dir", TINY, "--space", space, "--storage", tmp_path / "s",
        "--num-samples", "2",
    )  # fmt: skip
    assert needle in one_line_error(proc)
    assert not list((tmp_path / "s").glob("*/run_*")), "no trial ran"


def test_a_started_study_exists_even_when_its_state_is_damaged(tmp_path):
    """What pipeline asks before it resumes: a folder whose tuner.pkl is damaged was started (its
    resume then says so in one line), one holding only its claim was not."""
    from distner.tune.driver import study_exists

    folder = tmp_path / "runs" / "s"
    folder.mkdir(parents=True)
    (folder / "distner.json").write_text("{}")
    assert not study_exists(str(tmp_path / "runs"), "s")
    (folder / "tuner.pkl").write_bytes(b"\x80\x05\x95")  # a pickle's first bytes, cut short
    assert study_exists(str(tmp_path / "runs"), "s")


def test_a_resumed_study_keeps_ashas_rungs(tmp_path, synthetic_data, no_ray_left):
    """Ray saves no scheduler state, so a resumed study's ASHA started with empty rungs and judged
    the next trials against no bar, or against a resumed trial's later epochs (tune/scheduler.py).
    A study of one trial (the baseline) grows on --resume by a weak start point: ASHA stops it at
    its first rung against the baseline's score there, as the uninterrupted two-trial study would
    (tests/tune/test_scheduler.py checks the rule score by score)."""
    from dataclasses import replace

    space = write(tmp_path / "space.yaml", SPACE % 2)
    weak = write(tmp_path / "weak.yaml", "embedding_dim: 16\nhidden_dim: 16\nbatch_size: 64\nlr: 0.003\n")
    opts = TuneOptions(
        lang="hindi", space=str(space), num_samples=1, storage=str(tmp_path / "runs"),
        best_dir=str(tmp_path / "best"), data_dir=str(synthetic_data), verbose=0, seed=SEED,
        name="grow", start_from=(str(weak),), grace_period=1, reduction_factor=2, max_concurrent=1,
    )  # fmt: skip
    run_study(opts)
    run_study(replace(opts, num_samples=2, resume=True))
    study_dir = tmp_path / "runs" / "grow"
    rows = list(csv.DictReader(open(study_dir / "trials.csv")))
    assert [(r["state"], r["epochs_run"]) for r in rows] == [("completed", "2"), ("stopped_early", "1")], rows
    first = {n: scores[0] for n, scores in _scores_per_trial(study_dir).items()}
    baseline, weak_score = (first[n] for n in sorted(first, key=lambda n: n.split("_")[3]))
    assert weak_score < baseline, first  # the rung's bar was the baseline's epoch-1 score
