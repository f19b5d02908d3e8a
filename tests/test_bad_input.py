"""Every everyday mistake with files, folders and flags, through the real CLI in a subprocess.

Each case asserts the exit code, exactly one stderr line naming the file/key/path, no traceback,
and that every input file and every earlier output is byte-identical afterwards (and that nothing
new appeared, except a success case's own output). The Ctrl-C cases interrupt a real training.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from distner.data.conll import read_conll
from distner.evaluation.evaluate import load_run, predict_file

from .helpers import DISTNER, ROOT, TINY, TINY_NET, as_in_a_terminal, sets

pytestmark = pytest.mark.integration  # real Ray studies or distner in subprocesses


def distner(*args: object, cwd: Path, **popen: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout, whatever is installed
    cmd = [*DISTNER, *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **popen)


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file (and a marker for every folder) under `roots`, hidden ones included."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_dir():
                out[str(p)] = "<dir>"
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass(frozen=True)
class Finished:
    """One finished tiny run shared by every case (read-only for them) and its predictions."""

    run: Path
    predictions: bytes


@pytest.fixture(scope="module")
def finished(finished: tuple[Path, bytes]) -> Finished:
    """conftest's finished run of this session (trained once, in-process) and its predictions."""
    return Finished(*finished)


@dataclass
class T:
    """What a case builds its files in: its own folder, and the shared finished run."""

    tmp: Path
    run: Path

    def file(self, name: str, text: str | bytes) -> Path:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        return p

    def data(self, train: bytes | None = None) -> Path:
        """A data root like the tiny fixture; `train` replaces train.conll by a train.conll.gz."""
        root = self.tmp / "data"
        shutil.copytree(TINY, root)
        if train is not None:
            (root / "en" / "train.conll").unlink()
            self.file("data/en/train.conll.gz", train)
        return root

    def run_copy(self) -> Path:
        return shutil.copytree(self.run, self.tmp / "run")

    def readonly_dir(self) -> Path:
        if os.geteuid() != 0:
            d = self.tmp / "ro"
            d.mkdir()
            d.chmod(0o555)
            return d
        if not os.access("/proc/sys", os.W_OK):  # root writes anywhere but on read-only mounts
            return Path("/proc/sys")
        pytest.skip("no read-only place for root on this machine")


TEST_CONLL = (TINY / "en" / "test.conll").read_text(encoding="utf-8")
GZ = gzip.compress((TINY / "en" / "train.conll").read_bytes())


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _ids(path: Path) -> list[str]:
    return [s.id for s in read_conll(path, require_tags=False)]


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[T], list]  # sets up its files under t.tmp and returns the distner arguments
    needles: tuple[str, ...]  # all in the one stderr line; {tmp} and {run} are filled in
    code: int = 2
    creates: tuple[str, ...] = ()  # files a successful case may add (relative to t.tmp)
    check: Callable[[T], None] | None = None
    started: bool = False  # the command got as far as its start line ("distner train: ...") first


def predict(t: T, inp: Path, out: Path | str, model: Path | None = None) -> list:
    return ["predict", "--model", model or t.run, "--input", inp, "--output", out]


def train(t: T, out: Path | str, *extra: object, data: Path = TINY) -> list:
    return ["train", "--lang", "en", "--data-dir", data, *sets("epochs=1", *TINY_NET), "--out", out, *extra]


def tune(t: T, *extra: object) -> list:
    return ["tune", "--lang", "en", "--data-dir", TINY, "--smoke", "--storage", t.tmp / "studies", *extra]


def _symlink(t: T) -> list:
    src = t.file("in.conll", TEST_CONLL)
    (t.tmp / "link.conll").symlink_to(src)
    return predict(t, src, t.tmp / "link.conll")


def _hardlink(t: T) -> list:
    src = t.file("in.conll", TEST_CONLL)
    os.link(src, t.tmp / "hard.conll")
    return predict(t, src, t.tmp / "hard.conll")


def _dir_in_place_of_eval(t: T) -> list:
    run = t.run_copy()
    (run / "eval-test.json").mkdir()
    return ["evaluate", "--model", run, "--data-dir", TINY]


def _check_same_ids(t: T) -> None:
    assert _ids(t.tmp / "out.conll") == _ids(t.tmp / "in.conll")


def _check_tab_tokens(t: T) -> None:
    pred = read_conll(t.tmp / "out.conll")
    assert [s.tokens for s in pred] == [s.tokens for s in read_conll(TINY / "en" / "test.conll")]
    _check_same_ids(t)


def _empty_sentence(t: T) -> list:
    body = "# id lonely\tdomain=en\n\n" + TEST_CONLL + "# id last-empty\tdomain=en\n"
    return predict(t, t.file("in.conll", body), t.tmp / "out.conll")


def _yaml_bomb(t: T) -> list:
    levels = ["&a [x, x, x, x, x, x, x, x, x]"]
    levels += [f"&{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]
    return train(t, t.tmp / "out", "--config", t.file("bomb.yaml", f"epochs: [{', '.join(levels)}]\n"))


def _damaged_run(edit: Callable[[Path], None]) -> Callable[[T], list]:
    def build(t: T) -> list:
        run = t.run_copy()
        edit(run)
        return predict(t, TINY / "en" / "test.conll", t.tmp / "out.conll", model=run)

    return build


CASES = [
    # -- 1. predict --output that is the input, by any spelling
    Case(
        "predict-output-is-input",
        lambda t: predict(t, t.file("in.conll", TEST_CONLL), t.tmp / "in.conll"),
        ("--output {tmp}/in.conll", "is also an input"),
    ),
    Case(
        "predict-output-other-spelling",
        lambda t: predict(t, t.file("d/in.conll", TEST_CONLL), t.tmp / "d" / ".." / "d" / "in.conll"),
        ("in.conll", "is also an input"),
    ),
    Case("predict-output-symlink-to-input", _symlink, ("{tmp}/link.conll", "is also an input")),
    Case("predict-output-hard-link-to-input", _hardlink, ("{tmp}/hard.conll", "is also an input")),
    Case(
        "predict-output-is-model-weights",
        lambda t: predict(t, TINY / "en" / "test.conll", t.run / "model.pt"),
        ("{run}/model.pt", "is also an input"),
    ),
    # -- 7. outputs that cannot be written
    Case(
        "predict-output-is-folder",
        lambda t: predict(t, TINY / "en" / "test.conll", t.tmp),
        ("--output {tmp}", "is a folder"),
    ),
    Case(
        "predict-output-under-file",
        lambda t: predict(t, t.file("in.conll", TEST_CONLL), t.tmp / "in.conll" / "out.conll"),
        ("{tmp}/in.conll is a file, not a folder",),
    ),
    Case(
        "predict-output-read-only",
        lambda t: predict(t, TINY / "en" / "test.conll", t.readonly_dir() / "o.conll"),
        ("is not writable",),
    ),
    Case("evaluate-output-is-folder", _dir_in_place_of_eval, ("eval-test.json", "is a folder")),
    Case("train-out-is-file", lambda t: train(t, t.file("f", "x")), ("--out {tmp}/f", "is a file; a folder")),
    Case(
        "train-out-under-file",
        lambda t: train(t, t.file("f", "x") / "run"),
        ("{tmp}/f is a file, not a folder",),
    ),
    Case("train-out-read-only", lambda t: train(t, t.readonly_dir() / "run"), ("is not writable",)),
    Case(
        "tune-storage-is-file",
        lambda t: ["tune", "--lang", "en", "--data-dir", TINY, "--smoke", "--storage", t.file("s", "x")],
        ("--storage {tmp}/s", "is a file, not a folder"),
    ),
    Case(
        "tune-best-dir-under-file",
        lambda t: tune(t, "--best-dir", t.file("b", "x") / "best"),
        ("--best-dir", "{tmp}/b is a file, not a folder"),
    ),
    Case(
        "retrain-dir-is-file",
        lambda t: ["retrain", "--lang", "en", "--retrain-dir", t.file("r", "x")],
        ("--retrain-dir {tmp}/r", "is a file, not a folder"),
    ),
    Case(
        "report-out-is-file",
        lambda t: ["report", "--langs", "en", "--granularities", "fine", "--report-dir", t.file("rep", "x")],
        ("--report-dir {tmp}/rep", "is a file"),
    ),
    Case(
        "pipeline-report-dir-under-file",
        lambda t: [
            "pipeline",
            "--langs",
            "en",
            "--granularities",
            "fine",
            "--report-dir",
            t.file("p", "x") / "r",
            "--storage",
            t.tmp / "st",
        ],
        ("--report-dir", "{tmp}/p is a file"),
    ),
    # -- 2. train into an existing run or someone's folder
    Case(
        "train-out-existing-run",
        lambda t: train(t, t.run),
        ("--out {run}", "a run is already there", "--overwrite"),
    ),
    Case(
        "train-out-foreign-folder",
        lambda t: train(t, t.file("mine/notes.txt", "mine").parent),
        ("--out {tmp}/mine", "holds no distner run"),
    ),
    # -- 13. a diverged run leaves nothing behind
    Case(
        "train-diverged",
        lambda t: train(
            t, t.tmp / "div", "--set", "epochs=3", "--set", "lr=5", "--set", "weight_decay=1e38", "--quiet"
        ),
        ("{tmp}/div", "diverged"),
        started=True,
    ),
    # -- 3. damaged gzip
    Case(
        "train-gz-truncated",
        lambda t: train(t, t.tmp / "o", data=t.data(GZ[: len(GZ) // 2])),
        ("train.conll.gz: damaged or truncated gzip",),
    ),
    Case(
        "train-gz-corrupt-block",
        lambda t: train(t, t.tmp / "o", data=t.data(GZ[:30] + b"\xff" * 40 + GZ[70:])),
        ("train.conll.gz: damaged or truncated gzip",),
    ),
    Case(
        "predict-gz-not-gzip",
        lambda t: predict(t, t.file("in.conll.gz", TEST_CONLL), t.tmp / "o.conll"),
        ("in.conll.gz: damaged or truncated gzip",),
    ),
    Case(
        "predict-gz-bad-utf8",
        lambda t: predict(t, t.file("in.conll.gz", gzip.compress(b"# id a\n\xff\xfe\n")), t.tmp / "o.conll"),
        ("in.conll.gz:2: not valid UTF-8",),
    ),
    # -- 4. non-finite and out-of-range numbers
    Case(
        "train-lr-nan", lambda t: train(t, t.tmp / "o", "--set", "lr=nan"), ("lr: must be a finite number",)
    ),
    Case(
        "train-weight-decay-inf",
        lambda t: train(t, t.tmp / "o", "--set", "weight_decay=inf"),
        ("weight_decay: must be a finite number",),
    ),
    Case(
        "train-config-dropout-nan",
        lambda t: train(t, t.tmp / "o", "--config", t.file("c.yaml", "dropout: .nan\n")),
        ("{tmp}/c.yaml", "dropout: must be a finite number"),
    ),
    Case("train-seed-negative", lambda t: train(t, t.tmp / "o", "--set", "seed=-3"), ("seed: must be in",)),
    # -- 5. damaged run folders
    Case(
        "model-pt-random",
        _damaged_run(lambda r: (r / "model.pt").write_bytes(os.urandom(4096))),
        ("{tmp}/run/model.pt", "not readable as weights"),
    ),
    Case(
        "model-pt-truncated",
        _damaged_run(lambda r: (r / "model.pt").write_bytes((r / "model.pt").read_bytes()[:900])),
        ("{tmp}/run/model.pt", "not readable as weights"),
    ),
    Case(
        "config-yaml-key-missing",
        _damaged_run(lambda r: _edit(r / "config.yaml", "  hidden_dim: 8\n", "")),
        ("{tmp}/run/config.yaml", "missing key 'config.hidden_dim'"),
    ),
    Case(
        "config-yaml-other-shape",
        _damaged_run(lambda r: _edit(r / "config.yaml", "hidden_dim: 8", "hidden_dim: 9")),
        ("{tmp}/run/model.pt", "weights do not fit the network"),
    ),
    Case(
        "final-json-damaged",
        lambda t: predict(
            t,
            TINY / "en" / "test.conll",
            t.tmp / "o.conll",
            model=t.file("cell/final.json", "{not json").parent,
        ),
        ("{tmp}/cell/final.json", "damaged JSON"),
    ),
    # -- 6. study names that climb out of --storage
    Case("tune-name-parent", lambda t: tune(t, "--name", "../x"), ("--name '../x'", "plain name")),
    Case("tune-name-absolute", lambda t: tune(t, "--name", str(t.tmp / "abs")), ("--name", "plain name")),
    Case("tune-name-dot", lambda t: tune(t, "--name", "."), ("--name '.'", "plain name")),
    # -- 12. search spaces out of range
    Case(
        "space-dropout-bound",
        lambda t: tune(t, "--space", t.file("s.yaml", "dropout: {uniform: [0, 1.5]}\n")),
        ("{tmp}/s.yaml", "'dropout': bound 1.5"),
    ),
    Case(
        "space-batch-size-bound",
        lambda t: tune(t, "--space", t.file("s.yaml", "batch_size: {randint: [-5, 64]}\n")),
        ("{tmp}/s.yaml", "'batch_size': bound -5"),
    ),
    Case(
        "space-extra-train-lang-missing",
        lambda t: tune(t, "--space", t.file("s.yaml", "extra_train_langs: {choice: ['', bn]}\nepochs: 1\n")),
        ("tiny/bn/train.conll[.gz]: split 'train' not found",),
    ),
    # extra_train_langs a cell cannot train with: before the start line
    Case(
        "train-extra-lang-own",
        lambda t: train(t, t.tmp / "o", "--set", "extra_train_langs=english"),
        ("extra_train_langs: en is this cell's own language",),
    ),
    Case(
        "train-extra-lang-missing",
        lambda t: train(t, t.tmp / "o", "--set", "extra_train_langs=hi"),
        ("tiny/hi/train.conll[.gz]: split 'train' not found",),
    ),
    # -- 11. echoed input is capped
    Case("config-yaml-alias-bomb", _yaml_bomb, ("{tmp}/bomb.yaml", "needs a int")),
    Case(
        "set-huge-value",
        lambda t: train(t, t.tmp / "o", "--set", "epochs=" + "9" * 5000 + "x"),
        ("needs a int",),
    ),
    # -- cases handled before, kept honest
    Case(
        "predict-3-columns",
        lambda t: predict(t, t.file("in.conll", "# id a\nx _ O\n"), t.tmp / "o.conll"),
        ("{tmp}/in.conll:2: expected 4 columns",),
    ),
    Case(
        "train-unknown-language",
        lambda t: ["train", "--lang", "klingon", "--data-dir", TINY],
        ("unknown language 'klingon'",),
    ),
    Case(
        "predict-missing-model",
        lambda t: predict(t, TINY / "en" / "test.conll", t.tmp / "o.conll", model=t.tmp / "nope"),
        ("{tmp}/nope/config.yaml: file not found",),
    ),
    # -- issue 22's leftovers: silent or traceback before, one line now
    Case(
        "config-duplicate-key",
        lambda t: [
            "train",
            "--lang",
            "en",
            "--data-dir",
            TINY,
            "--config",
            t.file("c.yaml", "epochs: 1\nlr: 0.1\nepochs: 2\n"),
            "--out",
            t.tmp / "r",
        ],  # fmt: skip
        ("{tmp}/c.yaml:3: invalid YAML (key 'epochs' given twice)",),
    ),
    Case(
        "space-duplicate-key",
        lambda t: [
            "tune",
            "--lang",
            "en",
            "--data-dir",
            TINY,
            "--storage",
            t.tmp / "s",
            "--space",
            t.file("s.yaml", "hidden_dim: 8\nhidden_dim: {choice: [8, 16]}\n"),
        ],  # fmt: skip
        ("{tmp}/s.yaml:2: invalid YAML (key 'hidden_dim' given twice)",),
    ),
    Case(
        "train-out-empty",
        lambda t: ["train", "--lang", "en", "--data-dir", TINY, "--out", ""],
        ("--out: empty path",),
    ),
    Case(
        "predict-output-empty",
        lambda t: predict(t, TINY / "en" / "test.conll", ""),
        ("--output: empty path",),
    ),
    Case(
        "train-model-too-big",
        lambda t: [
            "train",
            "--lang",
            "en",
            "--data-dir",
            TINY,
            "--set",
            "hidden_dim=10000000",
            "--out",
            t.tmp / "r",
        ],  # fmt: skip
        ("hidden_dim=10000000", "GiB", "choose smaller sizes"),
        started=True,
    ),
    Case(
        "tune-seed-negative",
        lambda t: ["tune", "--lang", "en", "--data-dir", TINY, "--storage", t.tmp / "s", "--seed", "-1"],
        ("--seed: must be 0 .. 2**32-1, got -1",),
    ),
    Case(
        "tune-time-budget-zero",
        lambda t: [
            "tune",
            "--lang",
            "en",
            "--data-dir",
            TINY,
            "--storage",
            t.tmp / "s",
            "--time-budget",
            "0",
        ],
        ("--time-budget: must be > 0",),
    ),
    Case(
        "report-no-langs",
        lambda t: ["report", "--langs", "", "--report-dir", t.tmp / "rep"],
        ("--langs: no language given",),
    ),
    Case(
        "pipeline-no-granularities",
        lambda t: ["pipeline", "--granularities", ",", "--data-dir", TINY, "--storage", t.tmp / "s"],
        ("--granularities: none given",),
    ),
    Case(
        "board-port-out-of-range",
        lambda t: ["board", "--port", "99999", t.tmp],
        ("--port: expected 0 .. 65535, got 99999",),
    ),
    # -- issue 43, point 4: training that produced a non-finite number is not published
    Case(
        "train-weights-not-finite",  # the one step's loss is finite; the weights it left are not
        lambda t: train(t, t.tmp / "nan", "--set", "lr=5", "--set", "weight_decay=1e38", "--quiet"),
        ("{tmp}/nan", "not finite (diverged)"),
        started=True,
    ),
    # -- issue 43, point 5: accepted without a word before; one line now, before any work
    Case(
        "train-min-freq-above-every-count",
        lambda t: train(t, t.tmp / "o", "--set", "min_freq=3"),
        ("min_freq=3", "seen at most 2 times", "<pad> and <unk>"),
    ),
    Case(
        "train-precision-16-mixed-on-cpu",
        lambda t: train(t, t.tmp / "o", "--set", "precision=16-mixed", "--accelerator", "cpu"),
        ("precision=16-mixed", "needs a GPU", "bf16-mixed"),
    ),
    Case(
        "retrain-config-and-top-k",
        lambda t: [
            "retrain",
            "--lang",
            "en",
            "--config",
            t.file("b.yaml", "epochs: 1\n"),
            "--top-k",
            "2",
            "--retrain-dir",
            t.tmp / "r",
            "--data-dir",
            TINY,
        ],  # fmt: skip
        ("--config", "--top-k 2", "give one"),
    ),
    Case(
        "retrain-min-freq-above-every-count",  # said once before the first seed run, not by each
        lambda t: [
            "retrain",
            "--lang",
            "en",
            "--config",
            t.file("b.yaml", "epochs: 1\nmin_freq: 3\n"),
            "--seeds",
            "1",
            "--retrain-dir",
            t.tmp / "r",
            "--data-dir",
            TINY,
            *sets(*TINY_NET),
        ],  # fmt: skip
        ("tuned config: min_freq=3", "seen at most 2 times"),
    ),
    Case("tune-name-newline", lambda t: tune(t, "--name", "a\nb"), ("--name 'a\\nb'", "control characters")),
    Case("tune-name-escape", lambda t: tune(t, "--name", "x\x1b[2J"), ("--name", "control characters")),
    Case(
        "predict-input-folder",
        lambda t: predict(t, t.file("d/x", "").parent, t.tmp / "o.conll"),
        ("--input {tmp}/d: a folder, not a file",),
    ),
    Case(
        "predict-input-fifo",
        lambda t: (os.mkfifo(t.tmp / "fifo"), predict(t, t.tmp / "fifo", t.tmp / "o.conll"))[1],
        ("--input {tmp}/fifo: not a regular file (a FIFO)",),
    ),
    Case("predict-input-dash", lambda t: predict(t, "-", t.tmp / "o.conll"), ("--input -: standard input",)),
    Case(
        "predict-input-dev-null",
        lambda t: predict(t, "/dev/null", t.tmp / "o.conll"),
        ("--input /dev/null: not a regular file (a character device)",),
    ),
    Case(
        "evaluate-input-folder",
        lambda t: ["evaluate", "--model", t.run, "--input", t.file("d/x", "").parent],
        ("--input {tmp}/d: a folder, not a file",),
    ),
    Case(
        "config-yaml-merge-key",
        lambda t: train(t, t.tmp / "o", "--config", t.file("m.yaml", "lr: 0.005\n<<: {epochs: 1}\n")),
        ("{tmp}/m.yaml:2", "merge keys (<<) are not supported"),
    ),
    Case(
        "train-pretrained-vectors-huge",  # 50 MB of path: refused by its length, never looked up
        lambda t: train(
            t, t.tmp / "o", "--config", t.file("v.yaml", "pretrained_vectors: " + "x" * 50_000_000)
        ),
        ("{tmp}/v.yaml", "pretrained_vectors", "too long"),
    ),
    Case(
        "train-pretrained-vectors-missing",
        lambda t: train(t, t.tmp / "o", "--set", f"pretrained_vectors={t.tmp / 'no.vec'}"),
        ("pretrained_vectors {tmp}/no.vec: file not found",),
    ),
    Case(
        "train-pretrained-vectors-folder",
        lambda t: train(t, t.tmp / "o", "--set", f"pretrained_vectors={t.tmp}"),
        ("pretrained_vectors {tmp}: a folder, not a file",),
    ),
    # -- 8, 9, 10: accepted input, written back whole
    Case(
        "predict-tab-separated",
        lambda t: predict(
            t, t.file("in.conll", TEST_CONLL.replace(" _ _ ", "\t_\t_\t")), t.tmp / "out.conll"
        ),
        ("tagged 3 sentences",),
        code=0,
        creates=("out.conll",),
        check=_check_tab_tokens,
    ),
    Case(
        "predict-bom-crlf",
        lambda t: predict(
            t, t.file("in.conll", "\ufeff" + TEST_CONLL.replace("\n", "\r\n")), t.tmp / "out.conll"
        ),
        ("tagged 3 sentences",),
        code=0,
        creates=("out.conll",),
        check=_check_same_ids,
    ),
    Case(
        "predict-empty-sentences",
        _empty_sentence,
        ("tagged 5 sentences",),
        code=0,
        creates=("out.conll",),
        check=_check_same_ids,
    ),
]


@dataclass
class Outcome:
    t: T
    proc: subprocess.CompletedProcess
    before: dict[str, str]
    after: dict[str, str]


@pytest.fixture(scope="module")
def outcomes(request, finished: Finished, tmp_path_factory) -> dict[str, Outcome | BaseException]:
    """Run the selected cases a few at a time (each subprocess mostly waits on imports), each in
    its own folder; the tests below only judge the outcomes."""
    wanted = {
        item.callspec.params["case"].id
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_bad_input"
    }

    def one(case: Case) -> Outcome | BaseException:
        try:
            t = T(tmp_path_factory.mktemp(case.id), finished.run)
            args = case.build(t)
            roots = (t.tmp, finished.run, TINY)
            before = snapshot(*roots)
            proc = distner(*args, cwd=t.tmp)
            return Outcome(t, proc, before, snapshot(*roots))
        except BaseException as e:  # pytest.skip included: re-raised in the case's own test
            return e

    cases = [c for c in CASES if c.id in wanted]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip((c.id for c in cases), pool.map(one, cases)))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case: Case, outcomes: dict[str, Outcome | BaseException], finished: Finished) -> None:
    out = outcomes[case.id]
    if isinstance(out, BaseException):
        raise out
    proc, tmp = out.proc, out.t.tmp
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == case.code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 + case.started, proc.stderr
    assert not case.started or lines[0].startswith("distner train: ")
    for needle in case.needles:
        assert needle.format(tmp=tmp, run=finished.run) in lines[-1], lines[-1]
    assert len(lines[-1]) < 600
    after = dict(out.after)
    for name in case.creates:
        assert after.pop(str(tmp / name), None) is not None, f"{name} was not written"
    assert after == out.before, "an input or earlier output changed, or something new appeared"
    if case.check:
        case.check(out.t)


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


# ------------------------------------------------------------------ Ctrl-C during a real training


def _interrupt_training(
    out: Path, cwd: Path, *extra: str, sig: signal.Signals = signal.SIGINT
) -> tuple[int, str]:
    """Start `distner train` (long enough to still be training), send `sig` once its first epoch
    line is out, and return the exit code and stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [
        "train",
        "--lang",
        "en",
        "--data-dir",
        str(TINY),
        "--set",
        "epochs=5000",
        *sets(*TINY_NET),
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        [*DISTNER, *args, *extra],
        cwd=cwd,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )
    seen = []
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            seen.append(line)
            if line.startswith("epoch "):
                break
        proc.send_signal(sig)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = "".join(seen) + rest
    assert any(s.startswith("epoch ") for s in seen), stderr  # it was training when interrupted
    return proc.returncode, stderr


STOPS = [signal.SIGINT, signal.SIGTERM]  # Ctrl-C, and `kill` or a scheduler: one policy (core/interrupts.py)


@pytest.mark.parametrize("sig", STOPS, ids=lambda s: s.name)
def test_ctrl_c_keeps_the_earlier_run(finished: Finished, tmp_path: Path, sig: signal.Signals) -> None:
    run = shutil.copytree(finished.run, tmp_path / "run")
    before = snapshot(tmp_path, TINY)
    code, stderr = _interrupt_training(run, tmp_path, "--overwrite", sig=sig)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"distner: interrupted: training of {run} stopped; the earlier run there is unchanged"
    )
    assert snapshot(tmp_path, TINY) == before  # no temporary folder left either
    load_run(run)
    predict_file(run, TINY / "en" / "test.conll", tmp_path / "after.conll")
    assert (tmp_path / "after.conll").read_bytes() == finished.predictions


@pytest.mark.parametrize("sig", STOPS, ids=lambda s: s.name)
def test_ctrl_c_on_a_fresh_folder_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    code, stderr = _interrupt_training(tmp_path / "fresh", tmp_path, sig=sig)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].endswith("stopped; nothing was written there")
    assert list(tmp_path.iterdir()) == []  # no run, no half run, no hidden temporary folder
