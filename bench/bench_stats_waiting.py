"""`labelloop stats` on a project whose reviewers have a queue: this checkout against a baseline.

`stats` counts the items waiting for a reviewer. A checkout without the `needs_reviewer` flag
(migration 0015) finds them by grouping every live answer and checking each candidate item in
Python; with it, the count is one query on the items. Each checkout builds the same synthetic
project (`bench_adjudication_queue.build`: `--items` pool items × 3 answers, `--split` of them
with two labels) in a store of its own, in a process with its own `src` first on the path; then
`labelloop stats --json` is timed as a whole process, the two checkouts alternating, and the
ratio baseline / this is taken round by round. Both must report the same counts.

Run: PYTHONPATH=src python bench/bench_stats_waiting.py --baseline MAIN/src [--items N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
SERVE = "import sys; from labelloop.cli import main; sys.argv[0] = 'labelloop'; main()"


def env_for(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def build(src: Path, folder: Path, items: int, split: float) -> None:
    """The project, built by the checkout at `src` (its own schema and flag, if any)."""
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r});"
        "from pathlib import Path; from bench_adjudication_queue import build;"
        f"build(Path({str(folder)!r}), {items}, {split})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env_for(src))


def timed_stats(src: Path, folder: Path) -> tuple[float, dict]:
    argv = [sys.executable, "-c", SERVE, "stats", "--json", "--project", str(folder)]
    start = time.perf_counter()
    done = subprocess.run(argv, check=True, capture_output=True, text=True, env=env_for(src))
    return time.perf_counter() - start, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the baseline's src/")
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--split", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    checkouts = {"baseline": args.baseline.resolve(), "this": SRC}
    times: dict[str, list[float]] = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory(prefix="bench-stats-") as tmp:
        folders = {name: Path(tmp) / name for name in checkouts}
        for name, src in checkouts.items():
            build(src, folders[name], args.items, args.split)
        reported = {}
        for _ in range(args.rounds):
            for name, src in checkouts.items():
                seconds, reported[name] = timed_stats(src, folders[name])
                times[name].append(seconds)
        assert reported["baseline"] == reported["this"], reported
    report(args, times, reported["this"]["adjudication_waiting"])


def report(args: argparse.Namespace, times: dict[str, list[float]], waiting: int) -> None:
    from _report import write_section

    ratios = [a / b for a, b in zip(times["baseline"], times["this"], strict=True)]
    load = os.getloadavg()[0]
    lines = [
        f"{args.items:,} pool items × 3 answers, {args.split:.0%} with two labels ({waiting:,} "
        f"wait for a reviewer); SQLite; {args.rounds} rounds, the checkouts alternating; both "
        f"report the same counts. Load average at the end {load:.1f} on {os.cpu_count()} cores.",
        "",
        "| `labelloop stats --json` (whole process) | seconds, median [min–max] |",
        "|---|---|",
    ]
    for name, label in (("baseline", "baseline checkout"), ("this", "this checkout")):
        found = times[name]
        lines.append(
            f"| {label} | {statistics.median(found):.3f} [{min(found):.3f}–{max(found):.3f}] |"
        )
    lines += [
        "",
        f"Ratio baseline / this: {statistics.median(ratios):.2f}× (median of rounds; "
        f"{min(ratios):.2f}–{max(ratios):.2f}×).",
    ]
    print("\n".join(lines))
    write_section(
        "stats with a reviewers' queue",
        "\n".join(lines),
        "PYTHONPATH=src python bench/bench_stats_waiting.py --baseline MAIN/src",
    )


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
