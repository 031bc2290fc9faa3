"""What the demo's closing loop simulation costs: `labelloop demo` before and after a change.

Each run is the whole `labelloop demo` process, as CI and users run it (a fresh project in a
temporary folder, the embedded model, the bundled sample). Its CPU time (user + sys) is the
kernel's accounting of that child (`os.wait4`), its wall time a monotonic clock around it.
Baseline, measured in the same run and interleaved pair by pair (before, after, before, ...):
the same command with another checkout's `src` folder, for example the main branch before the
demo ended on the loop simulation. The ratio after/before is taken pair by pair, and the
median quoted, because the machine is shared and its speed drifts.

Run: PYTHONPATH=src python bench/bench_demo.py --before /path/to/old/src [--runs 3]
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
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

SRC = Path(__file__).resolve().parent.parent / "src"
ENTRY = "import sys; from labelloop.cli import main; sys.argv[0] = 'labelloop'; main()"


@dataclass(frozen=True)
class Run:
    cpu_s: float
    wall_s: float
    loop_s: float | None  # the closing simulation's own wall time, where the demo reports it


def run_demo(src: Path) -> Run:
    """One `labelloop demo --json` from the tree `src`, in a folder of its own."""
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as folder:
        argv = [sys.executable, "-c", ENTRY, "demo", "--directory", f"{folder}/p", "--json"]
        started = time.monotonic()
        process = subprocess.Popen(
            argv,
            env={**os.environ, "PYTHONPATH": str(src)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        out = process.stdout.read() if process.stdout else b""
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the demo from {src} failed")
    loop = json.loads(out).get("loop") or {}
    return Run(usage.ru_utime + usage.ru_stime, wall, loop.get("elapsed_s"))


def table(pairs: list[tuple[Run, Run]]) -> str:
    """Medians of both trees and of the pairwise ratios."""

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.1f}"

    rows = [
        "| figure | before (median) | after (median) | after / before (median of pairs) |",
        "| --- | --- | --- | --- |",
    ]
    for name, get in (("CPU s", lambda r: r.cpu_s), ("wall s", lambda r: r.wall_s)):
        before = [get(b) for b, _ in pairs]
        after = [get(a) for _, a in pairs]
        ratios = [a / b for b, a in zip(before, after, strict=True)]
        rows.append(
            f"| {name} | {med(before)} | {med(after)} | "
            f"{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}) |"
        )
    loops = [a.loop_s for _, a in pairs if a.loop_s is not None]
    if loops:
        share = [a.loop_s / a.wall_s for _, a in pairs if a.loop_s is not None]
        rows.append(
            f"\nThe closing simulation alone: {med(loops)} s wall (median), "
            f"{100 * statistics.median(share):.0f}% of the demo's wall time."
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the old checkout's src")
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs (before, after)")
    options = parser.parse_args()
    pairs = []
    for i in range(options.runs):
        before, after = run_demo(options.before.resolve()), run_demo(SRC)
        print(f"pair {i + 1}: before {before}, after {after}", flush=True)
        pairs.append((before, after))
    markdown = (
        f"{len(pairs)} pairs of whole `labelloop demo` processes, before and after in turn.\n\n"
        + table(pairs)
    )
    print(markdown)
    write_section(
        "Demo: the closing loop simulation",
        markdown,
        "PYTHONPATH=src python bench/bench_demo.py --before OLD/src --runs N",
    )


if __name__ == "__main__":
    main()
