"""What weighted final labels cost: `labelloop resolve` weighted against majority, and the answer
path with a stored annotator model against the plain majority.

A synthetic team: `--items` pool items answered by three of eight annotators each (accuracy 0.55
to 0.95, wrong answers uniform), and 200 gold items answered by every annotator. Each round runs
`labelloop resolve --final-label weighted` (EM over every answer, then every answered item
re-resolved) and `labelloop resolve --final-label majority` (every answered item re-resolved, no
fit) as whole processes, interleaved; the ratio is taken round by round. The answer path is timed
in-process: `Project.annotate` on fresh items under each setting, interleaved in blocks. The final
labels' accuracy against the synthetic truth is printed beside, for orientation.

Run: PYTHONPATH=src python bench/bench_resolve.py [--items N] [--rounds R] [--answers N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from labelloop import Project

LABELS = ["a", "b", "c"]
ACCURACY = np.linspace(0.55, 0.95, 8)
ENTRY = "import sys; from labelloop.cli import main; sys.argv[0] = 'labelloop'; main()"


def build(folder: Path, n_items: int, seed: int = 0) -> tuple[Project, dict[str, str]]:
    """The synthetic project and each pool item's true label."""
    rng = np.random.default_rng(seed)
    project = Project.create(folder, task="Pick a letter.", labels=LABELS)
    gold_truth = rng.integers(0, 3, 200)
    project.add_items(
        [
            {"id": f"g{i}", "text": f"gold {i}", "label": LABELS[t]}
            for i, t in enumerate(gold_truth)
        ],
        label_col="label",
        split="gold",
    )
    truth = rng.integers(0, 3, n_items)
    project.add_items([{"id": f"i{i}", "text": f"item {i}"} for i in range(n_items)])

    def answer(uid: str, true: int, who: int) -> None:
        right = rng.random() < ACCURACY[who]
        given = true if right else (true + rng.integers(1, 3)) % 3
        project.annotate(uid, action="label", label=LABELS[given], annotator=f"ann{who}")

    for i, t in enumerate(gold_truth):
        for who in range(len(ACCURACY)):
            answer(f"g{i}", int(t), who)
    for i, t in enumerate(truth):
        for who in rng.choice(len(ACCURACY), 3, replace=False):
            answer(f"i{i}", int(t), int(who))
    return project, {f"i{i}": LABELS[t] for i, t in enumerate(truth)}


def accuracy(project: Project, truth: dict[str, str]) -> float:
    rows = {r["id"]: r["label"] for r in project.iter_export_rows(include=())}
    return float(np.mean([rows[uid] == label for uid, label in truth.items()]))


def timed_resolve(folder: Path, method: str) -> float:
    argv = [sys.executable, "-c", ENTRY, "resolve", "--final-label", method, "--project", folder]
    start = time.perf_counter()
    subprocess.run([str(a) for a in argv], check=True, capture_output=True)
    return time.perf_counter() - start


def answer_path(project: Project, n_answers: int, rng: np.random.Generator) -> dict[str, float]:
    """Milliseconds per recorded answer under each setting, on fresh items, blocks interleaved."""
    project.add_items([{"id": f"new{i}", "text": f"new item {i}"} for i in range(n_answers)])
    spent: dict[str, list[float]] = {"weighted": [], "majority": []}
    block = 25
    for first in range(0, n_answers, block):
        method = "weighted" if (first // block) % 2 == 0 else "majority"
        project.update_settings(final_label=method)
        start = time.perf_counter()
        for i in range(first, min(first + block, n_answers)):
            who = int(rng.integers(0, len(ACCURACY)))
            project.annotate(f"new{i}", action="label", label="a", annotator=f"ann{who}")
        spent[method].append((time.perf_counter() - start) / block * 1000)
    return {method: statistics.median(values) for method, values in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--answers", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "team"
        project, truth = build(folder, args.items)
        timings: dict[str, list[float]] = {"weighted": [], "majority": []}
        timed_resolve(folder, "weighted")  # warm-up
        for _ in range(args.rounds):
            for method in ("weighted", "majority"):
                timings[method].append(timed_resolve(folder, method))
        ratios = [w / m for w, m in zip(timings["weighted"], timings["majority"], strict=True)]
        project.resolve("majority")
        majority_accuracy = accuracy(project, truth)
        project.resolve("weighted")
        weighted_accuracy = accuracy(project, truth)
        per_answer = answer_path(project, args.answers, np.random.default_rng(1))
        project.close()
    n_answers = 200 * len(ACCURACY) + 3 * args.items
    median = {m: statistics.median(v) for m, v in timings.items()}
    spread = f"{statistics.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}]"
    per_ratio = per_answer["weighted"] / per_answer["majority"]
    resolve_row = f"{median['weighted']:.2f} | {median['majority']:.2f} | {spread}"
    answer_row = f"{per_answer['weighted']:.2f} | {per_answer['majority']:.2f} | {per_ratio:.2f}"
    markdown = f"""
{args.items} pool items × 3 answers and 200 gold items × {len(ACCURACY)} annotators
({n_answers} answers), SQLite, {args.rounds} interleaved rounds.

| figure | weighted | majority | ratio weighted / majority |
| --- | --- | --- | --- |
| `labelloop resolve`, whole process (median s) | {resolve_row} |
| one answer recorded (`Project.annotate`, median ms) | {answer_row} |
| final-label accuracy on the pool | {weighted_accuracy:.3f} | {majority_accuracy:.3f} | |

The ratio's brackets are the lowest and highest of the round-by-round ratios. The refit runs in
batch (`route`, `learn`, `resolve`), never on the answer path, which weighs each answer with the
stored annotator model. Much of the refit's extra time in a fresh process is loading SciPy and
the agreement package.
"""
    print(markdown)
    write_section(
        "Weighted final labels: the cost of the refit and of the answer path",
        markdown,
        "PYTHONPATH=src python bench/bench_resolve.py"
        f" --items {args.items} --rounds {args.rounds} --answers {args.answers}",
    )


if __name__ == "__main__":
    main()
