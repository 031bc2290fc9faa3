"""`labelloop prelabel --dry-run` against the run that follows it, on a loopback endpoint.

The fake OpenAI-compatible server (its own process, every answer after `--latency` seconds)
plays the endpoint; the bundled sample (300 pool texts, 100 gold) is the project. Two rounds,
as a user would go: a first estimate and a first small run (`--limit 50`: before it no answer
tells the endpoint's speed or answer length), then an estimate and the run for the rest. Each
estimate is set against the run's own figures: input and output tokens as the server counted
them, cost at the model's price, wall time.

The fake server counts tokens as characters / 4, the estimate's own rule: the token ratios
check that the estimate reproduces the requests the run sends, not that rule against a real
tokenizer (English text runs 3.5-4.5 characters a token with GPT tokenizers).

Run: PYTHONPATH=src python bench/bench_prelabel_estimate.py [--latency 0.2] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

SRC = Path(__file__).resolve().parent.parent / "src"
SAMPLE = SRC / "labelloop" / "sample_data"
ENTRY = "import sys; from labelloop.cli import main; sys.argv[0] = 'labelloop'; main()"
MODEL = "gpt-4o-mini"


def labelloop(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, *args, "--json"], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"labelloop {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stored(project: str) -> tuple[int, int, int]:
    """(answers, input tokens, output tokens) stored in the project, as the server counted."""
    from sqlalchemy import func, select

    from labelloop import Project
    from labelloop.store import Prediction

    with Project.open(project) as opened, opened.store.session() as session:
        n, tokens_in, tokens_out = session.execute(
            select(func.count(), func.sum(Prediction.tokens_in), func.sum(Prediction.tokens_out))
        ).one()
    return n, tokens_in or 0, tokens_out or 0


def ratio(estimate: float | None, real: float) -> str:
    return "—" if estimate is None or not real else f"{estimate / real:.2f}×"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per answer")
    parser.add_argument("--concurrency", type=int, default=8)
    options = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "labelloop.testing.fake_openai", "--latency", str(options.latency)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stdout=subprocess.PIPE,
        text=True,
    )
    rows = []
    try:
        base_url = server.stdout.readline().strip() if server.stdout else ""
        with tempfile.TemporaryDirectory() as tmp:
            project = str(Path(tmp) / "reviews")
            labelloop("init", project, "--task", "Sentiment of a review.", "--labels",
                      "positive,negative")  # fmt: skip
            labelloop("import", str(SAMPLE / "reviews_pool.csv"), "--project", project)
            gold = str(SAMPLE / "reviews_gold.csv")
            labelloop("import", gold, "--split", "gold", "--project", project)
            common = ["--project", project, "--model", MODEL, "--base-url", base_url,
                      "--concurrency", str(options.concurrency)]  # fmt: skip
            for name, limit in (("first run (--limit 50)", ["--limit", "50"]), ("the rest", [])):
                estimate = labelloop("prelabel", *common, *limit, "--dry-run")
                before = stored(project)
                run = labelloop("prelabel", *common, *limit)
                after = stored(project)
                real = {
                    "items": after[0] - before[0],
                    "tokens_in": after[1] - before[1],
                    "tokens_out": after[2] - before[2],
                    "cost_usd": run["cost_usd"],
                    "elapsed_s": run["elapsed_s"],
                }
                rows.append((name, estimate, real))
    finally:
        server.terminate()
        server.wait()

    lines = [
        "| round | items (estimated / run) | input tokens (estimated / run) | output tokens "
        "(estimated / run) | cost USD (estimated / run) | time s (estimated / run) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, e, r in rows:
        cells = [
            (e["items"], r["items"], "{:,}"),
            (e["tokens_in"], r["tokens_in"], "{:,}"),
            (e["tokens_out"], r["tokens_out"], "{:,}"),
            (e["cost_usd"], r["cost_usd"], "{:.5f}"),
            (e["elapsed_s"], r["elapsed_s"], "{:.1f}"),
        ]
        shown = [
            f"{'—' if a is None else f.format(a)} / {f.format(b)} (**{ratio(a, b)}**)"
            for a, b, f in cells
        ]
        lines.append(f"| {name} | " + " | ".join(shown) + " |")
    text = (
        f"Sample project (300 pool texts, 100 gold), model name `{MODEL}` (price "
        f"{rows[0][1]['price_per_mtok']} USD per million tokens), loopback endpoint answering "
        f"after {options.latency} s, concurrency {options.concurrency}.\n\n"
        + "\n".join(lines)
        + "\n\nBefore the first run the time is unknown (no answer has told the endpoint's "
        "latency) and output tokens are assumed; after it both come from the stored answers. "
        "The token ratios check that the estimate rebuilds the requests the run sends: the fake "
        "server counts characters / 4, as the estimate does.\n"
    )
    print(text)
    write_section(
        "prelabel-estimate", text, "PYTHONPATH=src python bench/bench_prelabel_estimate.py"
    )


if __name__ == "__main__":
    main()
