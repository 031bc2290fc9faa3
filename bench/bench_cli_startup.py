"""What a command costs before it does anything: `labelloop --help` and `labelloop stats --json`.

Each command runs as its own process, as users run it; its CPU time (user + sys) and peak
resident memory are the kernel's accounting of that child (`os.wait4`, the per-child figure
of `resource.getrusage(RUSAGE_CHILDREN)`). Baseline, measured in the same run and interleaved
round by round: a bare interpreter, `python3 -c pass`. `stats` runs on a small project (the
bundled sample: 400 items, 100 gold).

`--before SRC` also times the same commands with another checkout's `src` folder (for example
the main branch before a change), so both sets of ratios come from one run.

Run: PYTHONPATH=src python bench/bench_cli_startup.py [--runs N] [--before /path/to/old/src]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

SRC = Path(__file__).resolve().parent.parent / "src"
SAMPLE = SRC / "labelloop" / "sample_data"
#: The console script's own entry point, so the figures are those of the `labelloop` command.
FLOOR_MODULES = "typer._adapters, sqlalchemy.orm, sqlalchemy.dialects.sqlite"
DIRECT = "interpreter binary"
ENTRY = "import sys; from labelloop.cli import main; sys.argv[0] = 'labelloop'; main()"


@dataclass(frozen=True)
class Run:
    cpu_s: float
    peak_rss_mb: float


def run_child(argv: list[str], env: dict[str, str]) -> Run:
    """Run one process to its end; its own CPU time and peak RSS, from the kernel."""
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    stderr = process.stderr.read() if process.stderr else b""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv} exited {process.returncode}: {stderr.decode()[-2000:]}")
    return Run(usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def labelloop(src: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line of `labelloop ARGS` run from the tree `src`, and its environment."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return [sys.executable, "-c", ENTRY, *args], env


def make_project(folder: Path, src: Path) -> Path:
    """The sample project, made by the tree `src` (each tree reads a store of its own schema)."""
    project = folder / "reviews"
    steps = [
        ("init", str(project), "--task", "Sentiment of a review.", "--labels", "positive,negative"),
        ("import", str(SAMPLE / "reviews_pool.csv"), "--project", str(project)),
        (
            "import",
            str(SAMPLE / "reviews_gold.csv"),
            "--split",
            "gold",
            "--project",
            str(project),
        ),
    ]
    for step in steps:
        argv, env = labelloop(src, *step)
        subprocess.run(argv, env=env, check=True, capture_output=True)
    return project


def launchers() -> dict[str, tuple[list[str], list[str]]]:
    """How each command is started: as typed (`python3` and `labelloop` found on PATH, which
    may be wrappers such as pyenv's shims: what users pay) and straight from the interpreter
    binary (no wrapper: the figure the code alone controls). name -> (bare, labelloop)."""
    found = {"python3": shutil.which("python3"), "labelloop": shutil.which("labelloop")}
    direct = ([sys.executable, "-c", "pass"], [sys.executable, "-c", ENTRY])
    if not all(found.values()):
        return {DIRECT: direct}
    typed = ([str(found["python3"]), "-c", "pass"], [str(found["labelloop"])])
    return {"as typed (PATH)": typed, DIRECT: direct}


def reading(ratio: dict[tuple[str, str, str], float]) -> str:
    """What the figures say against the goals, from the interpreter-binary rows."""
    help_, stats = (ratio[(DIRECT, "after", f"labelloop {c}")] for c in ("--help", "stats --json"))
    (floor,) = (v for (way, tree, _), v in ratio.items() if way == DIRECT and tree == "—")

    def verdict(value: float, goal: float) -> str:
        return f"{value:.1f}× (goal {goal:g}×: {'met' if value <= goal else 'not met'})"

    return (
        f"\nReading: `--help` {verdict(help_, 5)}, `stats --json` {verdict(stats, 8)}. "
        f"Typer's option coercion (which brings pydantic) with SQLAlchemy's ORM and SQLite "
        f"dialect cost {floor:.1f}× alone: `stats` now reads a current SQLite store with the "
        "standard library's sqlite3 (`store.db.project_stats`, the queries `Project.stats` "
        "runs too) and imports neither SQLAlchemy nor the service layer (a project with answers "
        "or flags then asks the review service which items wait for a reviewer); what is left is "
        "mostly Typer and pydantic, which every command pays.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds (each runs every command)")
    parser.add_argument("--before", type=Path, help="another checkout's src folder to compare")
    options = parser.parse_args()

    trees = [("after", SRC)] + ([("before", options.before.resolve())] if options.before else [])
    started = launchers()
    with tempfile.TemporaryDirectory() as tmp:
        projects = {tree: make_project(Path(tmp) / tree, src) for tree, src in trees}
        bare = {way: (argv, dict(os.environ)) for way, (argv, _) in started.items()}
        commands = {
            (way, tree, name): ([*entry, *args], {**os.environ, "PYTHONPATH": str(src)})
            for way, (_, entry) in started.items()
            for tree, src in trees
            for name, args in (
                ("labelloop --help", ["--help"]),
                ("labelloop stats --json", ["stats", "--json", "--project", str(projects[tree])]),
            )
        }
        # The libraries every command that opens a store imports (Typer's option coercion
        # brings pydantic): the floor under `stats`, whatever labelloop does.
        floor = f"import {FLOOR_MODULES}"
        commands[(DIRECT, "—", f"python3 -c '{floor}'")] = (
            [sys.executable, "-c", floor],
            dict(os.environ),
        )
        for argv, env in [*bare.values(), *commands.values()]:  # warm caches and .pyc files
            run_child(argv, env)
        bare_runs: dict[str, list[Run]] = {way: [] for way in bare}
        runs: dict[tuple[str, str, str], list[Run]] = {key: [] for key in commands}
        ratios: dict[tuple[str, str, str], list[float]] = {key: [] for key in commands}
        for _ in range(options.runs):
            baseline = {way: run_child(*bare[way]) for way in bare}
            for way, run in baseline.items():
                bare_runs[way].append(run)
            for key, (argv, env) in commands.items():
                run = run_child(argv, env)
                runs[key].append(run)
                ratios[key].append(run.cpu_s / baseline[key[0]].cpu_s)

    def cpu(measured: list[Run]) -> str:
        return f"{1000 * statistics.median(m.cpu_s for m in measured):.0f}"

    def rss(measured: list[Run]) -> str:
        return f"{statistics.median(m.peak_rss_mb for m in measured):.0f}"

    rows = [
        "| started | tree | command | CPU time (ms, median) | × bare interpreter (median of "
        "per-round ratios, min–max) | peak RSS (MB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for way, measured in bare_runs.items():
        rows.append(
            f"| {way} | — | `python3 -c pass` (baseline) | {cpu(measured)} | 1× | {rss(measured)} |"
        )
        for (w, tree, name), done in runs.items():
            if w == way:
                r = ratios[(w, tree, name)]
                rows.append(
                    f"| {way} | {tree} | `{name}` | {cpu(done)} | **{statistics.median(r):.1f}×** "
                    f"({min(r):.1f}–{max(r):.1f}) | {rss(done)} |"
                )
    text = (
        f"{options.runs} rounds, each running the baselines then every command once; CPU time "
        "is user + sys of the child process (and of any process it waited for), peak RSS its "
        "largest resident set. *As typed*: `python3` and `labelloop` as found on PATH (here "
        "pyenv shims, a shell script in front of each); *interpreter binary*: the same Python "
        "started directly, with the console script's entry point.\n\n"
        + "\n".join(rows)
        + "\n\nGoals: `--help` at most 5× and `stats --json` at most 8× the bare interpreter's "
        "CPU time.\n"
    )
    if options.before:
        text += "\n`before`: the same commands from the tree given by `--before`.\n"
    text += reading({key: statistics.median(r) for key, r in ratios.items()})
    print(text)
    command = "PYTHONPATH=src python bench/bench_cli_startup.py"
    if options.before:
        command += " --before OLD/src"
    write_section("cli-startup", text, command)


if __name__ == "__main__":
    main()
