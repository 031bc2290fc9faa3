"""The embedded model through the command users run: `labelloop prelabel --model local`.

Each run is a fresh process on a fresh copy of the sample project (the bundled Rotten Tomatoes
snippets, short texts, zero-shot), as a user would start it. Two run lengths tell the labeling
rate apart from the first-use costs (interpreter and imports, finding and checking the model
files, loading them, the first decode, the prompt prefix and the calibration prior):

    rate        = (long - short items) / (long - short run's wall time)
    first use   = short run's wall time - short items / rate

`--before OLD/src` runs another checkout the same way, interleaved round by round, so the
ratios come from the same minutes of a shared machine; the labels and probabilities the two
trees stored for the same items are compared. `--contended` keeps one core busy with a
CPU-bound process (pinned to it) during every run. `--cold` adds one run with an empty model
cache, which pays the one-time costs (joining the shipped chunks, writing the BF16 copy).
`--multi-label` runs a multi-label project on the same texts instead (four aspects of a review,
one yes/no decision per label on a shared prefix): the per-label decisions' rate.

    git worktree add /tmp/speed-base main
    PYTHONPATH=src python bench/bench_prelabel_local.py --before /tmp/speed-base/src \
        [--contended] [--multi-label]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from bench_cli_startup import SAMPLE, SRC, labelloop


@dataclass(frozen=True)
class Run:
    items: int
    wall_s: float
    cpu_s: float
    load: float  # 1-minute load average, mean of start and end


#: The multi-label project's task and labels (`--multi-label`): aspects a review talks about.
MULTI_LABEL_TASK = (
    "Aspects of a film that a movie review talks about.",
    "acting,story,visuals,music",
)


def make_template(folder: Path, src: Path, multi_label: bool = False) -> Path:
    """The sample pool as a project made by the tree `src` (zero-shot: no gold)."""
    project = folder / "template"
    task, labels = (
        MULTI_LABEL_TASK if multi_label else ("Sentiment of a movie review.", "positive,negative")
    )
    kind = ("--multi-label", "--allow-empty") if multi_label else ()
    steps = [
        ("init", str(project), "--task", task, "--labels", labels, *kind),
        ("import", str(SAMPLE / "reviews_pool.csv"), "--project", str(project)),
    ]
    for step in steps:
        argv, env = labelloop(src, *step)
        subprocess.run(argv, env=env, check=True, capture_output=True)
    return project


def prelabel(src: Path, template: Path, items: int, work: Path, cache: Path | None) -> Run:
    """One `labelloop prelabel --limit items` on a fresh copy of `template`."""
    project = work / f"run-{time.monotonic_ns()}"
    shutil.copytree(template, project)
    argv, env = labelloop(
        src,
        "prelabel",
        "--model",
        "local",
        "--limit",
        str(items),
        "--json",
        "--project",
        str(project),
    )
    if cache is not None:
        env["LABELLOOP_MODEL_CACHE"] = str(cache)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)  # the kernel's account of its CPU time
        wall = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(f"prelabel exited {child.returncode}: {err.read()[-2000:]!r}")
        done = json.loads(out.read().decode().strip().splitlines()[-1])["done"]
    cpu = usage.ru_utime + usage.ru_stime
    return Run(done, wall, cpu, (load + os.getloadavg()[0]) / 2)


def predictions(project_root: Path) -> dict[str, tuple[str, dict[str, float]]]:
    """Item uid -> (label, probabilities) stored by the newest run under `project_root`."""
    newest = max(project_root.glob("run-*"), key=lambda p: int(p.name.partition("-")[2]))
    with sqlite3.connect(newest / "labelloop.db") as db:
        rows = db.execute(
            "SELECT items.uid, predictions.label, predictions.probs FROM predictions "
            "JOIN items ON items.id = predictions.item_id"
        ).fetchall()
    return {
        uid: (label, json.loads(probs) if isinstance(probs, str) else probs)
        for uid, label, probs in rows
    }


def hog(core: int) -> None:
    """Keep one core busy."""
    os.sched_setaffinity(0, {core})
    while True:
        pass


def split(short: Run, long: Run) -> tuple[float, float, float, float]:
    """From a short and a long run: items/s while labeling, first-use seconds (wall), CPU
    seconds per labeled item and first-use CPU seconds. CPU time depends far less on the
    machine's other work than wall time does (though threads spinning while they wait count)."""
    extra = long.wall_s - short.wall_s
    rate = (long.items - short.items) / extra if extra > 0 else float("nan")
    cpu_per_item = (long.cpu_s - short.cpu_s) / (long.items - short.items)
    return (
        rate,
        short.wall_s - short.items / rate,
        cpu_per_item,
        short.cpu_s - short.items * cpu_per_item,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200, help="items of the long run")
    parser.add_argument("--short", type=int, default=4, help="items of the short run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", type=Path, help="another checkout's src folder")
    parser.add_argument("--contended", action="store_true", help="one core kept busy")
    parser.add_argument("--cold", action="store_true", help="also one run on an empty cache")
    parser.add_argument(
        "--multi-label", action="store_true", help="a multi-label project (per-label decisions)"
    )
    options = parser.parse_args()

    trees = [("after", SRC)] + ([("before", options.before.resolve())] if options.before else [])
    runs: dict[tuple[str, int], list[Run]] = {
        (t, n): [] for t, _ in trees for n in (options.short, options.items)
    }
    busy = None
    if options.contended:
        busy = multiprocessing.Process(
            target=hog, args=(min(os.sched_getaffinity(0)),), daemon=True
        )
        busy.start()
    cold: Run | None = None
    same: str = "—"
    try:
        with tempfile.TemporaryDirectory(prefix="speed-bench-") as tmp:
            work = Path(tmp)
            templates = {t: make_template(work / t, src, options.multi_label) for t, src in trees}
            for tree, src in trees:  # warm: the model cache is filled, files are in memory
                prelabel(src, templates[tree], options.short, work / tree, None)
            for round_ in range(options.rounds):
                for tree, src in trees if round_ % 2 == 0 else trees[::-1]:
                    for n in (options.short, options.items):
                        run = prelabel(src, templates[tree], n, work / tree, None)
                        runs[(tree, n)].append(run)
                        print(tree, run, flush=True)
            if options.before:
                stored = {t: predictions(work / t) for t, _ in trees}
                common = sorted(set(stored["after"]) & set(stored["before"]))
                labels_same = all(stored["after"][u][0] == stored["before"][u][0] for u in common)
                gap = max(
                    abs(stored["after"][u][1][k] - stored["before"][u][1][k])
                    for u in common
                    for k in stored["after"][u][1]
                )
                same = (
                    f"{len(common)} items: labels {'identical' if labels_same else 'DIFFER'},"
                    f" largest probability difference {gap:.1e}"
                )
            if options.cold:
                cold = prelabel(
                    SRC, templates["after"], options.short, work / "after", work / "empty-cache"
                )
    finally:
        if busy is not None:
            busy.terminate()
            busy.join()

    report = render(options, trees, runs, cold, same)
    print(report)
    command = "PYTHONPATH=src python bench/bench_prelabel_local.py"
    command += " --before OLD/src" if options.before else ""
    command += " --contended" if options.contended else ""
    command += " --multi-label" if options.multi_label else ""
    name = "prelabel-local" + ("-multilabel" if options.multi_label else "")
    name += "-contended" if options.contended else ""
    write_section(name, report, command)


CONTENDED = "One core was kept busy by a CPU-bound process pinned to it during every run. "


def render(options, trees, runs, cold: Run | None, same: str) -> str:
    """The markdown section: per tree the rates and first-use costs, ratios, loads."""
    rows = [
        "| tree | items/s while labeling | first use (s) | whole command, "
        f"{options.items} items: items/s | CPU ms per item | first use, CPU s | CPU / wall | "
        "load average |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    per_round: dict[str, list[tuple[float, ...]]] = {}
    for tree, _ in trees:
        shorts, longs = runs[(tree, options.short)], runs[(tree, options.items)]
        figures = [
            (*split(s, long), long.items / long.wall_s)
            for s, long in zip(shorts, longs, strict=True)
        ]
        per_round[tree] = figures
        everything = shorts + longs

        def median(k: int, scale: float = 1.0, figures=figures) -> float:
            return scale * statistics.median(f[k] for f in figures)

        rows.append(
            f"| {tree} | {median(0):.1f} | {median(1):.1f} | {median(4):.1f} | "
            f"{median(2, 1000):.0f} | {median(3):.1f} | "
            f"{statistics.median(r.cpu_s / r.wall_s for r in everything):.2f} | "
            f"{statistics.mean(r.load for r in everything):.1f} |"
        )
    project = "(Rotten Tomatoes snippets, zero-shot)"
    if options.multi_label:
        project = (
            f"made multi-label (Rotten Tomatoes snippets, zero-shot, labels "
            f"{MULTI_LABEL_TASK[1].replace(',', ', ')}: one yes/no decision per label)"
        )
    text = (
        f"`labelloop prelabel --model local --limit N` on fresh copies of the sample project "
        f"{project}, each run its own process, {options.rounds} "
        f"rounds of a {options.short}-item and a {options.items}-item run per tree, interleaved. "
        f"{CONTENDED if options.contended else ''}"
        "Rates and first-use costs (wall and CPU) come from the two run lengths (see the "
        "script); CPU / wall is the process's CPU time over its wall time (2.0 = both cores "
        "busy for it). The machine is shared with other work: the load average is the 1-minute "
        "figure around the runs, of which this benchmark's own threads are part; CPU time "
        "depends far less on that load than wall time.\n\n" + "\n".join(rows) + "\n"
    )
    if "before" in per_round:
        ratios = [
            (a[0] / b[0], a[4] / b[4], a[2] / b[2])
            for a, b in zip(per_round["after"], per_round["before"], strict=True)
        ]
        text += (
            f"\nAfter / before, per round (median): labeling rate "
            f"**{statistics.median(r[0] for r in ratios):.2f}×**, whole command "
            f"**{statistics.median(r[1] for r in ratios):.2f}×**, CPU time per item "
            f"**{statistics.median(r[2] for r in ratios):.2f}×** of before's. "
            f"Same items, both trees: {same}.\n"
        )
    after = per_round["after"]
    cpu_ms = 1000 * statistics.median(f[2] for f in after)
    if options.multi_label:
        text += (
            f"\nReading: labeling costs {1000 * statistics.median(f[2] for f in after):.0f} ms "
            "of CPU per item here (every label's decision included).\n"
        )
        return text
    text += (
        f"\nReading: labeling costs {cpu_ms:.0f} ms of CPU per item here, so with both cores "
        f"free the command could label at most about {2000 / cpu_ms:.0f} items/s, and with one "
        f"core taken about {1000 / cpu_ms:.0f} (CPU time per item itself grows when the cores "
        "are shared, so on a quiet machine both bounds are higher). Goals: ≥ 20 items/s on a "
        "quiet 2-core machine and no worse than half that with one core taken; the wall-clock "
        "rates above are what this machine's load left.\n"
    )
    if cold is not None:
        text += (
            f"\nFirst run on an empty model cache (joining the shipped chunks and writing the "
            f"BF16 copy, once per machine): {cold.wall_s:.1f} s for {cold.items} items.\n"
        )
    return text


if __name__ == "__main__":
    main()
