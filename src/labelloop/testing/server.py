"""Live servers on free loopback ports for tests and benchmarks: an ASGI app served by uvicorn
in a thread, or `labelloop serve` in a child process."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SERVE = "import sys; from labelloop.cli import main; sys.argv[0] = 'labelloop'; main()"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(app: Any, *, start_timeout_s: float = 20.0) -> Iterator[str]:
    """Serve `app` for the duration of the ``with`` block; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def start_serve(folder: Path, port: int, *options: str, timeout: float = 120.0) -> subprocess.Popen:
    """Start `labelloop serve --project FOLDER --port PORT OPTIONS…` and wait for /health.

    The caller stops it (`terminate()`, then `wait()`); if it never answers, it is killed and
    RuntimeError carries the end of its stderr."""
    import httpx

    command = [sys.executable, "-c", SERVE, "serve", "--project", str(folder), "--port", str(port)]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this call: the server writes to it
    process = subprocess.Popen([*command, *options], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    process.wait()
    log.seek(0)
    tail = log.read().decode(errors="replace")[-2000:]
    raise RuntimeError(f"labelloop serve did not start:\n{tail}")
