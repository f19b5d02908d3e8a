"""Extract the shell commands shown in README.md and docs/*.md and run them at smoke size.

Every line of a ```bash block is one command. Each is rewritten to a smoke-sized equivalent of the
same command (small data sample, tiny networks, few trials) and run in order in one sandbox per
page. Commands that need what CI cannot have (a cloud account, a GPU, SSH hosts) are checked the
closest real way instead: the cluster YAML they name is validated and the `ray` subcommand's
`--help` must work. Used by tests/test_docs.py.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from .helpers import DISTNER

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TINY_TRAIN = [
    "--set",
    "epochs=1",
    "--set",
    "embedding_dim=16",
    "--set",
    "hidden_dim=16",
    "--set",
    "max_train_sentences=300",
    "--set",
    "max_eval_sentences=150",
]


@dataclass
class Command:
    page: str
    line: int
    text: str


def extract(page: Path) -> list[Command]:
    out, in_bash = [], False
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        s = line.strip()
        if s.startswith("```"):
            in_bash = s in ("```bash", "```sh", "```shell") if not in_bash else False
            continue
        if in_bash and s and not s.startswith("#"):
            out.append(Command(page.name, n, s.split("  #")[0].split(" # ")[0].strip()))
    return out


def _drop(args: list[str], flag: str, has_value: bool = True) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == flag:
            skip = has_value
            continue
        if a.startswith(flag + "="):
            continue
        out.append(a)
    return out


def _value(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    """GET a URL; a server that has printed its URL may take a moment more to accept."""
    for wait in (0.5, 1, 2, 4, 8, 0):
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.URLError:
            if not wait:
                raise
            time.sleep(wait)
    raise AssertionError("unreachable")


def smoke_space(path: Path, out: Path) -> Path:
    """A copy of a search space shrunk to smoke size: data sample, 2 epochs, small networks."""
    raw = yaml.safe_load(path.read_text())
    raw.update(epochs=2, max_train_sentences=300, max_eval_sentences=150)
    for key in ("embedding_dim", "hidden_dim"):
        if isinstance(raw.get(key), dict) and "choice" in raw[key]:
            raw[key] = {"choice": sorted({16, 520} | {v for v in raw[key]["choice"] if v == 520})}
    out.write_text(yaml.safe_dump(raw))
    return out


def _with_descendants(roots: set[int]) -> set[int]:
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, grew = set(roots), True
    while grew:
        new = {p for p, pp in parent.items() if pp in found and p not in found}
        found |= new
        grew = bool(new)
    return found


class Runner:
    """Runs one page's commands in order in a sandbox; returns (status, detail) per command."""

    def __init__(self, sandbox: Path, data: Path):
        self.sandbox, self.data = sandbox, data
        self.env = {
            **os.environ,
            "DISTNER_DATA": str(data),
            "RAY_AUTH_MODE": "disabled",
            "PYTHONUNBUFFERED": "1",
        }
        for name in ("tune_spaces", "cluster", "benchmarks"):
            if not (sandbox / name).exists():
                (sandbox / name).symlink_to(ROOT / name)
        for name in ("experiments", "results"):  # copies: an experiment writes where its file says
            if not (sandbox / name).exists():
                shutil.copytree(ROOT / name, sandbox / name)
        self.ray_head = False
        self.ray_tmp = ""

    def close(self) -> None:
        """Stop only the head this runner started (`ray stop` would end every Ray on the machine)."""
        if self.ray_head:
            out = subprocess.run(["pgrep", "-f", self.ray_tmp], capture_output=True, text=True).stdout
            for pid in _with_descendants({int(p) for p in out.split()}):  # agents rename themselves
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            shutil.rmtree(self.ray_tmp, ignore_errors=True)

    def _run(self, argv: list[str], timeout: int = 900) -> tuple[str, str]:
        proc = subprocess.run(
            argv, cwd=self.sandbox, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            return "failed", f"exit {proc.returncode}: {proc.stderr[-1500:] or proc.stdout[-1500:]}"
        return "ran", " ".join(argv)

    def _serve(self, argv: list[str], marker: str, path: str = "", expect: str = "") -> tuple[str, str]:
        """Start a server, open the URL it prints (plus `path`; its body must hold `expect`), stop it."""
        proc = subprocess.Popen(
            argv,
            cwd=self.sandbox,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.time() + 90
            while time.time() < deadline:
                line = proc.stdout.readline()
                if not line and proc.poll() is not None:
                    return "failed", f"exited {proc.returncode} before serving"
                m = re.search(r"(http://[^\s]+)", line)
                if marker in line and m:
                    status, body = _get(m.group(1) + path)
                    if status != 200 or expect not in body:
                        return "failed", f"HTTP {status}, {expect!r} not in {body[:300]!r}"
                    return "ran", " ".join(argv)
            return "failed", "no URL printed within 90 s"
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)

    def run(self, cmd: Command) -> tuple[str, str]:
        text = cmd.text.replace("$DISTNER_DATA", str(self.data)).replace("${DISTNER_DATA}", str(self.data))
        args = shlex.split(text)
        tool, rest = args[0], args[1:]
        if tool == "export":
            key, _, _ = rest[0].partition("=")
            return "ran", f"export {key} (set to the test data root)"
        if tool == "pip":
            ci = (ROOT / ".ci" / "run").read_text()
            return (
                ("ran", "CI's install step runs this line")
                if text.split(None, 1)[1] in ci
                else ("failed", f"not the install line of .ci/run: {text}")
            )
        if tool == "python" and rest[:2] == ["-m", "pytest"]:
            return (
                ("ran", "CI runs the test suite")
                if "python3 -m pytest" in (ROOT / ".ci" / "run").read_text()
                else ("failed", "pytest not in .ci/run")
            )
        if tool == "ssh":
            return "skipped", "SSH port forwarding needs a remote head; documented only"
        if tool == "ray":
            sub = rest[0] if rest else ""
            if sub == "job":
                return self._run(["ray", "job", "submit", "--help"])
            yamls = [a for a in rest if a.endswith((".yaml", ".yml"))]
            for y in yamls:
                status, detail = self._run([*DISTNER, "cluster", "validate", y])
                if status != "ran":
                    return status, detail
            status, detail = self._run(["ray", sub, "--help"])
            return (
                ("ran-offline", f"validated {yamls}; `ray {sub} --help` works")
                if status == "ran"
                else (status, detail)
            )
        if tool == "tensorboard":
            return self._serve(["tensorboard", *_drop(rest, "--port"), "--port", "0"], "TensorBoard")
        if tool == "optuna-dashboard":  # its --port 0 prints port 0, so pick a free one here
            argv = ["optuna-dashboard", *_drop(rest, "--port"), "--port", str(_free_port())]
            return self._serve(argv, "Listening on", "api/studies", '"study_name"')
        if tool == "python" and rest and rest[0].startswith("benchmarks/"):
            script, bargs = rest[0], rest[1:]
            if _value(bargs, "--device") == "cuda":
                import torch

                if not torch.cuda.is_available():
                    return "skipped", "needs a GPU"
            if script.endswith("train_throughput.py"):
                bargs += [
                    "--max-train-sentences",
                    "300",
                    "--epochs",
                    "1",
                    "--set",
                    "embedding_dim=32",
                    "--set",
                    "hidden_dim=32",
                ]
            elif script.endswith("tune_overhead.py"):
                bargs += ["--trials", "2", "--sentences", "200", "--epochs", "1"]
            return self._run([sys.executable, script, *bargs])
        if tool != "distner":
            return "failed", f"the docs check does not know how to run `{tool}`"
        sub = rest[0] if rest else ""
        rest = rest[1:]
        base = [*DISTNER, sub]
        if sub == "train":
            return self._run([*base, *rest, *TINY_TRAIN, "--quiet"])
        if sub == "pipeline" and "--experiment" in rest:
            # the file says what runs; a page shows --dry-run, or --smoke (minutes) at most
            return self._run(
                [*base, *rest] + ([] if "--dry-run" in rest or "--smoke" in rest else ["--smoke"])
            )
        if sub in ("tune", "pipeline"):
            rest = _drop(_drop(_drop(rest, "--num-samples"), "--time-budget"), "--verbose")
            space = _value(rest, "--space")
            if space:
                small = smoke_space(self.sandbox / space, self.sandbox / f"smoke-{Path(space).name}")
                rest = [*_drop(rest, "--space"), "--space", str(small)]
            if _value(rest, "--address") == "auto" and not self.ray_head:
                # A head of our own: its temp dir (short, for Ray's socket paths) marks its processes for
                # close(), and RAY_ADDRESS points `--address auto` at it rather than any other Ray here.
                self.ray_tmp = tempfile.mkdtemp(prefix="dnray", dir="/tmp")
                port = _free_port()
                st, detail = self._run(
                    [
                        "ray",
                        "start",
                        "--head",
                        "--num-cpus",
                        "2",
                        "--include-dashboard=false",
                        "--port",
                        str(port),
                        f"--temp-dir={self.ray_tmp}",
                    ]
                )
                if st != "ran":
                    return st, detail
                self.ray_head = True
                self.env["RAY_ADDRESS"] = f"127.0.0.1:{port}"
            storage = _value(rest, "--storage")
            if storage and "://" in storage:  # no cloud bucket in CI: the same command on a local folder
                rest = [*_drop(rest, "--storage"), "--storage", str(self.sandbox / "shared-storage")]
            extra = ["--smoke", "--num-samples", "3", "--verbose", "0"]
            if sub == "tune" and "--smoke" not in rest and "--name" not in rest:
                # keep the study name the real command would use (--smoke alone would add -smoke)
                from distner.labels import normalize_lang

                lang = normalize_lang(_value(rest, "--lang") or "en")
                grans = (_value(rest, "--granularities") or _value(rest, "--granularity") or "fine").split(
                    ","
                )
                extra += ["--name", lang if len(grans) > 1 else f"{lang}-{grans[0]}"]
            if sub == "pipeline":
                extra += ["--seeds", "1"] if "--seeds" not in rest else []
                rest = _drop(rest, "--seeds") + ["--seeds", "1"]
                # a page's earlier `retrain`, rewritten here to 1 epoch, finished runs that --smoke's
                # 2 epochs differ from; at full size both would be one config (and skipped)
                extra += ["--overwrite"]
            return self._run([*base, *[a for a in rest if a != "--smoke"], *extra])
        if sub == "retrain":
            rest = _drop(rest, "--seeds")
            return self._run(
                [*base, *rest, "--seeds", "1", "--set", "epochs=1", "--set", "max_train_sentences=300"]
            )
        if sub == "board":
            return self._serve([*base, *_drop(rest, "--port"), "--port", "0"], "TensorBoard at")
        return self._run([*base, *rest])
