"""The adjudication queue of a large project, without and with the index its query reads.

A synthetic project: `--items` pool items answered by three annotators each, a share of them
(`--split`) with two different labels (they wait for a reviewer), the rest agreed. It is timed
alone in its store, then once the store also holds another project of `--other-items` items
(one database for a team's projects, as on PostgreSQL). Each round drops the index on the
answers' project and item (`ix_annotations_project_item`), times the commands reviewers run,
then creates the index again and times them again; the ratio is taken round by round. Timed:
`labelloop adjudicate list --json` as a whole process, and `GET /api/v1/adjudication/next`
against a running `labelloop serve` (median of `--calls`).

Run: PYTHONPATH=src python bench/bench_adjudication_queue.py [--items N] [--rounds R]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
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
from labelloop.store import Annotation, Item
from labelloop.store.bulk import bulk_insert
from labelloop.testing.server import SERVE, free_port, start_serve

LABELS = ["positive", "negative", "neutral"]
INDEX = "ix_annotations_project_item"
PEOPLE = ("ann", "bob", "cid")


def build(
    folder: Path, n_items: int, split: float, *, db: str | None = None, seed: int = 0
) -> tuple[Project, str]:
    """The project (in the store `db`, else its own), filled in bulk; returns it and a
    reviewer's API token."""
    rng = np.random.default_rng(seed)
    project = Project.create(folder, task="Sentiment.", labels=LABELS, db=db, name=folder.name)
    for name in PEOPLE:
        project.add_user(name, password=f"{name}-password")
    project.add_user("rita", role="reviewer", password="rita-password")
    token = project.create_token("rita")
    people = [project.annotator_id(name) for name in PEOPLE]
    items = []
    for i in range(n_items):
        text = f"item {i}: the delivery was late but the support team was helpful"
        items.append(
            {
                "project_id": project.id,
                "uid": f"u{i}",
                "text": text,
                "text_hash": hashlib.sha256(text.encode()).hexdigest(),
                "split": "pool",
                "state": "human_labeled",
                "audit": False,
            }
        )
    with project.store.session() as session:
        bulk_insert(session, Item.__table__, items)
        ids = [i for (i,) in session.execute(Item.__table__.select().with_only_columns(Item.id))]
    answers = []
    for item_id in ids:
        first = int(rng.integers(0, 3))
        other = (first + 1) % 3 if rng.random() < split else first
        for who, label in zip(people, (first, first, other), strict=True):
            answers.append(
                {
                    "project_id": project.id,
                    "item_id": item_id,
                    "annotator_id": who,
                    "label": LABELS[label],
                    "action": "label",
                    "queue": "review",
                    "source": "labelloop",
                    "undone": False,
                }
            )
    with project.store.session() as session:
        bulk_insert(session, Annotation.__table__, answers)
    settle_flags(project)
    analyze(project)
    return project, token


def settle_flags(project: Project) -> None:
    """Set each item's `needs_reviewer` as recording the answers through the service would
    have (a checkout from before the flag has none to set)."""
    try:
        from labelloop.review import waiting
    except ImportError:
        return
    with project.store.engine.begin() as conn:
        waiting.settle(conn, project.id)


def analyze(project: Project) -> None:
    """What `PRAGMA optimize` / autovacuum would have done by now: fresh planner statistics."""
    with project.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")


def set_index(project: Project, present: bool) -> None:
    """Create or drop the index, as the model declares it."""
    (index,) = [i for i in Annotation.__table__.indexes if i.name == INDEX]
    if present:
        index.create(project.store.engine, checkfirst=True)
    else:
        index.drop(project.store.engine, checkfirst=True)
    analyze(project)


def timed_list(folder: Path) -> float:
    argv = [sys.executable, "-c", SERVE, "adjudicate", "list", "--json", "--project", folder]
    start = time.perf_counter()
    subprocess.run([str(a) for a in argv], check=True, capture_output=True)
    return time.perf_counter() - start


def timed_next(port: int, token: str, calls: int) -> float:
    """Median seconds of GET /api/v1/adjudication/next on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    samples = []
    try:
        for _ in range(calls):
            start = time.perf_counter()
            connection.request(
                "GET", "/api/v1/adjudication/next", headers={"Authorization": f"Bearer {token}"}
            )
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
            samples.append(time.perf_counter() - start)
    finally:
        connection.close()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--other-items", type=int, default=50_000)
    parser.add_argument("--split", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-adjudication-") as tmp:
        folder = Path(tmp) / "team"
        project, token = build(folder, args.items, args.split)
        port = free_port()
        server = start_serve(folder, port, "--retrain-every", "0")
        try:
            alone = measure(project, folder, port, token, args)
            db = str(project.store.engine.url)
            build(Path(tmp) / "other", args.other_items, args.split, db=db, seed=1)
            shared = measure(project, folder, port, token, args)
        finally:
            server.terminate()
            server.wait()
        report(args, {"alone": alone, "shared": shared}, project.stats().adjudication_waiting)


def measure(
    project: Project, folder: Path, port: int, token: str, args: argparse.Namespace
) -> dict[str, dict[bool, list[float]]]:
    """Seconds per command and round, without (False) and with (True) the index."""
    times: dict[str, dict[bool, list[float]]] = {k: {False: [], True: []} for k in ("list", "next")}
    for _ in range(args.rounds):
        for present in (False, True):
            set_index(project, present)
            times["list"][present].append(timed_list(folder))
            times["next"][present].append(timed_next(port, token, args.calls))
    return times


def report(args: argparse.Namespace, runs: dict, waiting: int) -> None:
    lines = [
        f"{args.items:,} pool items × 3 answers, {args.split:.0%} with two labels ({waiting:,} "
        f"wait for a reviewer); {args.rounds} rounds, the index dropped then created each round; "
        f"SQLite. `next`: median of {args.calls} calls per round on a running `labelloop serve`.",
        "",
        "| store | command | without the index (s, median) | with it (s, median) | "
        "ratio without / with (median of rounds [min–max]) |",
        "|---|---|---|---|---|",
    ]
    stores = {
        "alone": "this project only",
        "shared": f"also another project of {args.other_items:,} items",
    }
    names = {
        "list": "`labelloop adjudicate list --json` (whole process)",
        "next": "`GET /api/v1/adjudication/next`",
    }
    for store, times in runs.items():
        for key, label in names.items():
            without, with_ = times[key][False], times[key][True]
            ratios = [a / b for a, b in zip(without, with_, strict=True)]
            lines.append(
                f"| {stores[store]} | {label} | {statistics.median(without):.3f} | "
                f"{statistics.median(with_):.3f} | {statistics.median(ratios):.2f}× "
                f"[{min(ratios):.2f}–{max(ratios):.2f}] |"
            )
            print(lines[-1])
    write_section(
        "Adjudication queue at scale",
        "\n".join(lines),
        "PYTHONPATH=src python bench/bench_adjudication_queue.py",
    )


if __name__ == "__main__":
    main()
