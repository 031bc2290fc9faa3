"""A real OpenAI-compatible server nobody here wrote: llama-cpp-python's, on loopback, serving the
embedded SmolLM2 GGUF, labeling a handful of items end to end through `labelloop prelabel`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

import labelloop
from labelloop.cli import run
from labelloop.store import Item, Prediction

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
pytestmark = pytest.mark.slow

TEXTS = ["I loved this film, wonderful acting.", "Terrible, boring and far too long."]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError:
        if IN_CI:
            raise
        pytest.skip("needs pip install 'llama-cpp-python[server]'")
    from labelloop.labelers.local import embedded_model_path

    port = free_port()
    command = [
        sys.executable, "-m", "labelloop.testing.llama_server", "--model",
        embedded_model_path("smollm2"), "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "2",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(labelloop.__file__).parents[1])}
    log = tmp_path_factory.mktemp("llama") / "server.log"  # a file: a pipe would fill and block
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        assert server.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "llama_cpp.server did not start"
        time.sleep(0.5)
    try:
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_prelabel_through_llama_cpp_server(llama_server, tmp_path, capsys):
    folder, pool = tmp_path / "proj", tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    assert run(["init", str(folder), "--task", "Sentiment of movie reviews.",
                "--labels", "positive,negative"]) == 0  # fmt: skip
    assert run(["import", str(pool), "-p", str(folder)]) == 0
    capsys.readouterr()
    status = run([
        "prelabel", "--model", "smollm2", "--base-url", llama_server, "--concurrency", "2",
        "--timeout", "600", "-p", str(folder), "--json",
    ])  # fmt: skip
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert status == 0 and result["done"] == len(TEXTS), err
    from labelloop import Project

    with Project.open(folder) as project, project.store.session() as session:
        rows = session.execute(
            select(Prediction.label, Prediction.probs, Prediction.confidence,
                   Prediction.reported_confidence).join(Item, Item.id == Prediction.item_id)
        ).all()  # fmt: skip
    assert len(rows) == len(TEXTS)
    for label, probs, confidence, reported in rows:
        # The server refuses json_schema (a 500); the schema then goes in JSON mode, which it
        # enforces, and its log-probabilities give the label distribution.
        assert label in ("positive", "negative") and reported is None
        assert set(probs) == {"positive", "negative"}
        assert sum(probs.values()) == pytest.approx(1.0)
        assert confidence == pytest.approx(probs[label])
