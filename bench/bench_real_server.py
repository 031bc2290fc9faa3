"""`labelloop prelabel` against a real OpenAI-compatible server: llama-cpp-python's, on loopback.

The server (``python -m labelloop.testing.llama_server``: the stock ``llama_cpp.server`` with
weights in plain CPU buffers, which CPUs with AMX need) serves the embedded SmolLM2 GGUF with one
computing slot and 2 threads. The first N gold reviews of the sample data are labeled by the
whole command from this checkout and from a baseline checkout (``--baseline-src``: for example
main before structured answers, label probabilities and adaptive concurrency), each on a fresh
project, then by the embedded path (label scoring in-process) on the same items. Reported:
items/s, failures, accuracy on gold and the AUROC of the stored confidences.

    PYTHONPATH=src python bench/bench_real_server.py --baseline-src BASELINE/src [--items 24]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from labelloop.workflows.prelabel import failure_reason

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "src" / "labelloop" / "sample_data" / "reviews_gold.csv"
TASK = "Classify the sentiment of the movie review."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model_path: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [
        sys.executable, "-m", "labelloop.testing.llama_server", "--model", model_path,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return server, base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not start")


def auroc(confidence: np.ndarray, correct: np.ndarray) -> float | None:
    """Probability that a right answer has a higher confidence than a wrong one (ties: half)."""
    right, wrong = confidence[correct], confidence[~correct]
    if not right.size or not wrong.size:
        return None
    greater = (right[:, None] > wrong[None, :]).mean()
    ties = (right[:, None] == wrong[None, :]).mean()
    return float(greater + ties / 2)


def run_variant(
    src: str, model: str, base_url: str | None, rows, tmp: Path, extra, time_limit: float
) -> dict:
    """Label `rows` (as gold) with the whole command from `src`; figures from the store."""
    env = {**os.environ, "PYTHONPATH": src}
    folder = tmp / f"project-{time.monotonic_ns()}"
    data = tmp / "gold.csv"
    with data.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    cli = [sys.executable, "-m", "labelloop"]
    subprocess.run([*cli, "init", str(folder), "--task", TASK, "--labels", "positive,negative"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    subprocess.run([*cli, "import", str(data), "--label-col", "label", "--id-col", "id",
                    "--split", "gold", "-p", str(folder)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    command = [*cli, "prelabel", "--model", model, "-p", str(folder), "--json", *extra]
    if base_url:
        command += ["--base-url", base_url]
    start = time.perf_counter()
    done = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        done.wait(timeout=time_limit)
    except subprocess.TimeoutExpired:  # Ctrl-C: both versions save what they received
        done.send_signal(signal.SIGINT)
        done.wait()
    elapsed = time.perf_counter() - start
    lines = done.stdout.read().decode().strip().splitlines()  # type: ignore[union-attr]
    result = json.loads(lines[-1]) if lines else {}
    with sqlite3.connect(folder / "labelloop.db") as db:
        stored = db.execute(
            "SELECT p.label, p.confidence, i.gold_label, p.error FROM predictions p "
            "JOIN items i ON i.id = p.item_id"
        ).fetchall()
    answered = [(label, conf, gold) for label, conf, gold, _ in stored if label is not None]
    reasons = Counter(failure_reason(error) for label, _, _, error in stored if label is None)
    correct = np.array([label == gold for label, _, gold in answered], bool)
    confidence = np.array([conf for _, conf, _ in answered], float)
    return {
        "status": "time limit" if elapsed > time_limit else done.returncode,
        "elapsed_s": elapsed,
        "done": len(answered),
        "failed": len(stored) - len(answered) + (len(rows) - len(stored)),
        "accuracy": float(correct.sum() / len(rows)),
        "auroc": auroc(confidence, correct),
        "distinct_confidences": len(set(confidence.round(3).tolist())),
        "reasons": dict(reasons),
        "summary": result,
    }


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--baseline-src", required=True)
    parser.add_argument("--baseline-label", default="the baseline checkout")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds per run")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from labelloop.labelers.local import embedded_model_path

    model_path = embedded_model_path("smollm2")
    with SAMPLE.open() as handle:
        rows = list(csv.DictReader(handle))[: args.items]
    majority = max(sum(r["label"] == x for r in rows) for x in ("positive", "negative")) / len(rows)
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        server, base_url = start_server(model_path, tmp_path / "server.log")
        try:
            endpoint = ["--concurrency", str(args.concurrency)]
            figures[f"endpoint, {args.baseline_label}"] = run_variant(
                args.baseline_src, "smollm2", base_url, rows, tmp_path, endpoint, args.time_limit
            )
            figures["endpoint, this checkout"] = run_variant(
                str(ROOT / "src"), "smollm2", base_url, rows, tmp_path, endpoint, args.time_limit
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
        figures["embedded label scoring, this checkout"] = run_variant(
            str(ROOT / "src"), "local:smollm2", None, rows, tmp_path, [], args.time_limit
        )
    table = "\n".join(
        f"| {name} | {f['done'] / f['elapsed_s']:.3f} | {f['done']} / {f['failed']} "
        f"| {f['accuracy']:.2f} | {_number(f['auroc'])} "
        f"| {f['distinct_confidences']} | {f['status']} |"
        for name, f in figures.items()
    )
    base = figures[f"endpoint, {args.baseline_label}"]
    ours = figures["endpoint, this checkout"]
    ratio = (
        f"{(ours['done'] / ours['elapsed_s']) / (base['done'] / base['elapsed_s']):.2f}×"
        if base["done"]
        else "the baseline answered no item"
    )
    markdown = f"""
{len(rows)} gold reviews from the sample data (majority label: {majority:.2f} of them); the
embedded SmolLM2 135M served by llama-cpp-python's OpenAI-compatible server on loopback (one
computing slot, 2 threads), `--concurrency {args.concurrency}`; every run the whole
`labelloop prelabel` command on a fresh project, one after the other on the same server, stopped
by Ctrl-C after {args.time_limit:.0f} s ("time limit").

| labeler | items/s | answered / failed | gold accuracy | AUROC | distinct confidences | exit |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{table}

AUROC: of the stored confidences, right answers against wrong ones. Items/s of this checkout
against the baseline on the same server: {ratio}. Failures by
reason: baseline {base["reasons"]}, this checkout {ours["reasons"]}. Accuracy counts a failed
item as wrong. Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.
"""
    print(markdown)
    write_section(
        "real-server",
        markdown,
        "PYTHONPATH=src python bench/bench_real_server.py --baseline-src BASELINE/src",
    )


if __name__ == "__main__":
    main()
