"""Pre-labeling throughput against a slow OpenAI-compatible server: labelloop vs the seed's loop.

The fake server runs in its own process on loopback and answers every request after 200 ms.
The seed's ``llm_prelabel`` (copied below, unchanged but for the client it is given) labels one
item at a time; labelloop keeps 64 requests in flight. The seed's loop over 2,000 items would take
~7 minutes, so it is timed on a subsample and scaled (stated in the report).

    PYTHONPATH=src python bench/bench_prelabel_concurrency.py [--items 2000] [--seed-items 100]

With ``--baseline-src DIR`` (another checkout's ``src``), the whole ``labelloop prelabel`` command
(a fresh project, every answer stored) is also timed against the same command from that checkout,
the two alternating, and their ratio reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from labelloop.labelers import LabelTask, OpenAILabeler

LABELS = ["positive", "negative", "neutral", "mixed"]
TASK = "Classify the sentiment of this product review."


# --- the seed's code, as published (the module-level `client` becomes a parameter) ----------
@dataclass
class PreLabel:
    text: str
    label: str
    confidence: float
    reasoning: str


def seed_llm_prelabel(client, texts, label_options, task_description, model="gpt-4o-mini"):
    labels_str = ", ".join(f'"{l}"' for l in label_options)  # noqa: E741
    results = []
    for text in texts:
        prompt = f"""Task: {task_description}

Text: "{text}"

Available labels: [{labels_str}]

Classify this text. Provide:
1. The label (must be one of the available options)
2. Your confidence (0.0 to 1.0)
3. Brief reasoning

Respond as JSON:
{{
  "label": "chosen_label",
  "confidence": 0.95,
  "reasoning": "why this label"
}}"""
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            temperature=0.1,
            response_format={"type": "json_object"},
        )
        data = json.loads(response.choices[0].message.content)
        results.append(
            PreLabel(
                text=text,
                label=data["label"],
                confidence=data["confidence"],
                reasoning=data.get("reasoning", ""),
            )
        )
    return results


# ----------------------------------------------------------------------------------------------
def make_texts(n: int, tag: str) -> list[str]:
    moods = ["positive", "negative", "neutral", "mixed"]
    return [f"{tag} review {i}: the product felt {moods[i % 4]} to me" for i in range(n)]


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "labelloop.testing.fake_openai", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    base_url = proc.stdout.readline().strip()  # type: ignore[union-attr]
    return proc, base_url


def run_seed(base_url: str, texts: list[str]) -> float:
    try:
        from openai import OpenAI

        client = OpenAI(base_url=base_url, api_key="fake", max_retries=0)
    except ImportError:  # the same loop over plain HTTP
        client = None
    start = time.perf_counter()
    if client is not None:
        out = seed_llm_prelabel(client, texts, LABELS, TASK, model="fake-model")
    else:
        with httpx.Client(base_url=base_url) as http:
            out = []
            for text in texts:
                body = {"model": "fake-model", "messages": [{"role": "user", "content": text}]}
                out.append(http.post("/chat/completions", json=body).json())
    elapsed = time.perf_counter() - start
    assert len(out) == len(texts)
    return elapsed


def run_command(src: str, base_url: str, texts: list[str], concurrency: int, tmp: Path) -> float:
    """Wall time of `labelloop prelabel` on a fresh project holding `texts`, code from `src`."""
    env = {**os.environ, "PYTHONPATH": src}
    folder = tmp / f"project-{time.monotonic_ns()}"
    pool = tmp / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    cli = [sys.executable, "-m", "labelloop"]
    for args in (
        ["init", str(folder), "--task", TASK, "--labels", ",".join(LABELS)],
        ["import", str(pool), "-p", str(folder)],
    ):
        subprocess.run([*cli, *args], env=env, check=True, capture_output=True)
    command = [
        *cli, "prelabel", "--model", "fake-model", "--base-url", base_url,
        "--concurrency", str(concurrency), "-p", str(folder), "--json",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["done"] == len(texts), done.stderr[-2000:]
    return elapsed


def end_to_end(args: argparse.Namespace, base_url: str) -> str:
    """Rows comparing `labelloop prelabel` from this checkout and from `--baseline-src`."""
    import statistics
    import tempfile

    ours_src = str(Path(__file__).resolve().parent.parent / "src")
    times: dict[str, list[float]] = {"baseline": [], "this checkout": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            texts = make_texts(args.items, f"e2e{r}")  # new texts: nothing cached server-side
            for name, src in (("baseline", args.baseline_src), ("this checkout", ours_src)):
                times[name].append(run_command(src, base_url, texts, args.concurrency, Path(tmp)))
    ratios = [b / o for b, o in zip(times["baseline"], times["this checkout"], strict=True)]
    rows = "\n".join(
        f"| `labelloop prelabel`, {name} | {statistics.median(ts):.2f} s "
        f"(min {min(ts):.2f}, max {max(ts):.2f}) | {args.items / statistics.median(ts):.0f} |"
        for name, ts in times.items()
    )
    return f"""
The whole command, end to end (process start, a fresh SQLite project of {args.items} items, every
answer stored), concurrency {args.concurrency}, {args.repeats} runs each, alternating:

| | wall time (median) | items/s |
| --- | --- | --- |
{rows}

Throughput of this checkout relative to the baseline, run by run: median
{statistics.median(ratios):.2f}× (min {min(ratios):.2f}, max {max(ratios):.2f}); baseline:
`{args.baseline_label}`.
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--seed-items", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--baseline-src", help="another checkout's src, for the command's ratio")
    parser.add_argument("--baseline-label", default="the baseline checkout")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    proc, base_url = start_server(args.latency)
    try:
        seed_texts = make_texts(args.seed_items, "seed")
        seed_s = run_seed(base_url, seed_texts)
        seed_per_item = seed_s / len(seed_texts)

        texts = make_texts(args.items, "labelloop")
        labeler = OpenAILabeler("fake-model", base_url=base_url, concurrency=args.concurrency)
        task = LabelTask(TASK, LABELS)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        results = list(labeler.label_stream(texts, task))
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        stats = httpx.get(base_url.rsplit("/v1", 1)[0] + "/_stats").json()
        command_rows = end_to_end(args, base_url) if args.baseline_src else ""
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    yielded = Counter(i for i, _ in results)
    lost = sum(1 for i in range(len(texts)) if i not in yielded)
    duplicated = sum(c - 1 for c in yielded.values() if c > 1)
    ours = set(texts)
    server_dups = sum(c - 1 for t, c in stats["answered"].items() if t in ours and c > 1)
    requests = sum(c for t, c in stats["requests"].items() if t in ours)
    wrong = sum(1 for i, r in results if r.label != LABELS[i % 4])
    failed = sum(1 for _, r in results if not r.ok)
    seed_full = seed_per_item * len(texts)
    speedup = seed_full / wall

    scale = len(texts) / len(seed_texts)
    seed_row = (
        f"| seed `llm_prelabel` (sequential, `openai` client) | {seed_full:.1f} s (timed on "
        f"{len(seed_texts)} items: {seed_s:.1f} s, scaled ×{scale:.0f}) | {1 / seed_per_item:.2f} "
        "| 1× |"
    )
    ours_row = (
        f"| labelloop `OpenAILabeler`, concurrency {args.concurrency} | {wall:.2f} s "
        f"| {len(texts) / wall:.0f} | **{speedup:.0f}×** |"
    )
    table = f"""
{len(texts)} items; a loopback OpenAI-compatible server (`labelloop.testing.fake_openai`, its own
process) answers every request after {args.latency * 1000:.0f} ms.

| | wall time for {len(texts)} items | items/s | speed-up |
| --- | --- | --- | --- |
{seed_row}
{ours_row}

- lost items: {lost}; items yielded twice: {duplicated}; items answered twice by the server:
  {server_dups}; failed: {failed}; wrong labels: {wrong}; labelloop requests seen by the
  server: {requests}; peak in flight: {stats["max_in_flight"]}.
- labelloop's own CPU time: {cpu * 1000 / len(texts):.2f} ms per item ({cpu:.2f} s in total,
  client process only; the server runs in another process).
- Ideal with {args.concurrency} in flight: {len(texts) / args.concurrency * args.latency:.2f} s.
"""
    table += command_rows
    table += (
        f"\nLoad average at the end of the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(work other than this benchmark slows every figure; ratios are from the same run).\n"
    )
    print(table)
    command = "PYTHONPATH=src python bench/bench_prelabel_concurrency.py"
    if args.baseline_src:
        command += " --baseline-src BASELINE/src"
    write_section("prelabel-concurrency", table, command)


if __name__ == "__main__":
    main()
