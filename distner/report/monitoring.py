"""TensorBoard over a study or run folder (`distner board`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from distner.core.errors import DistnerError
from distner.core.paths import is_remote


def serve_tensorboard(logdir: str, port: int = 6006, host: str = "localhost", block: bool = True) -> str:
    """Start TensorBoard in this process, print its URL, and serve until Ctrl-C."""
    from tensorboard import program

    if not is_remote(logdir) and not Path(logdir).is_dir():
        raise DistnerError(f"{logdir}: no such study or run folder")
    tb = program.TensorBoard()
    tb.configure(argv=[None, "--logdir", logdir, "--port", str(port), "--host", host])
    try:
        url = tb.launch()
    except program.TensorBoardServerException as e:  # port in use, cannot bind the host
        raise DistnerError(f"--port {port} --host {host}: {e.msg}") from None
    print(f"TensorBoard at {url} (logdir {logdir}); Ctrl-C to stop", flush=True)
    if block:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return url
