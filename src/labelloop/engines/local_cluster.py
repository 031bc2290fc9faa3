"""A throw-away Ray cluster on this machine, for tests, benchmarks and trying the Ray engine.

`ray start --head --block` runs in a process group of its own, and the cluster is stopped by
ending that group — never with `ray stop`, which stops every Ray cluster on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["local_cluster"]

READY = "Ray runtime started"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_cluster(
    temp_dir: str | Path, num_cpus: int = 2, timeout_s: float = 180.0
) -> Iterator[str]:
    """Start a head node (all its files under `temp_dir`), yield its address, stop it.

    Token authentication is turned off for this cluster (``RAY_AUTH_MODE=disabled``, set here
    for the caller too): it listens on this machine only for the length of the block. Ray 2.60
    replaces a loopback ``--node-ip-address`` by the host's own address; the cluster still runs
    entirely on this machine.
    """
    temp = Path(temp_dir).resolve()
    temp.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    src = str(Path(__file__).resolve().parents[2])  # workers import this copy of labelloop
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
    }
    command = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
        f"--port={port}", f"--dashboard-agent-listen-port={_free_port()}",
        f"--num-cpus={num_cpus}", "--include-dashboard=false", "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp}", "--disable-usage-stats",
    ]  # fmt: skip
    log_path = temp / "ray-start.log"
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout_s
            while READY not in log_path.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("ray start failed:\n" + log_path.read_text()[-3000:])
                time.sleep(0.2)
            yield f"127.0.0.1:{port}"
        finally:
            _stop(process)
            if previous is None:
                os.environ.pop("RAY_AUTH_MODE", None)
            else:
                os.environ["RAY_AUTH_MODE"] = previous


def _stop(process: subprocess.Popen) -> None:
    """End the cluster's process group: politely, then for good. Workers, which run in groups
    of their own, exit when their raylet does."""
    if process.poll() is not None:
        return
    group = os.getpgid(process.pid)
    os.killpg(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)
