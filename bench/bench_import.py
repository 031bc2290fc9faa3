"""1,000,000 short rows through `labelloop import` (CSV and JSONL) on SQLite.

Baseline, measured in the same run: reading the same CSV with the csv module and inserting
(id, text) rows into a bare SQLite table with executemany — the floor any importer pays.
Run: PYTHONPATH=src python bench/bench_import.py [--rows N]
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from labelloop import Project

WORDS = [
    "good",
    "bad",
    "fine",
    "movie",
    "plot",
    "actor",
    "scene",
    "boring",
    "great",
    "awful",
    "slow",
    "funny",
    "dark",
]


def make_files(folder: Path, rows: int) -> tuple[Path, Path]:
    csv_path, jsonl_path = folder / "rows.csv", folder / "rows.jsonl"
    with csv_path.open("w", newline="") as c, jsonl_path.open("w") as j:
        writer = csv.writer(c)
        writer.writerow(["id", "text"])
        for i in range(rows):
            text = f"{WORDS[i % 13]} {WORDS[(i * 7) % 13]} {WORDS[(i * 11) % 13]} review {i}"
            writer.writerow([f"r{i}", text])
            j.write(json.dumps({"id": f"r{i}", "text": text}) + "\n")
    return csv_path, jsonl_path


def baseline(csv_path: Path, db: Path) -> float:
    started = time.perf_counter()
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (id TEXT PRIMARY KEY, text TEXT)")
    with csv_path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        connection.executemany("INSERT INTO t VALUES (?, ?)", reader)
    connection.commit()
    connection.close()
    return time.perf_counter() - started


def timed_import(folder: Path, file: Path, name: str) -> tuple[float, float, int]:
    project = Project.create(folder / name, task="Sentiment.", labels=["positive", "negative"])
    started = time.perf_counter()
    result = project.import_file(file, id_col="id")
    first = time.perf_counter() - started
    started = time.perf_counter()
    again = project.import_file(file, id_col="id")  # re-import: adds nothing
    second = time.perf_counter() - started
    assert again.added == 0, again
    project.close()
    return first, second, result.added


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path, jsonl_path = make_files(folder, args.rows)
        base = baseline(csv_path, folder / "baseline.db")
        csv_time, csv_again, added = timed_import(folder, csv_path, "csv")
        jsonl_time, _, _ = timed_import(folder, jsonl_path, "jsonl")
    assert added == args.rows
    table = (
        "| what | seconds | ratio to baseline |\n| --- | ---: | ---: |\n"
        f"| baseline: csv module + bare sqlite3 executemany | {base:.1f} | 1.0 |\n"
        f"| `labelloop import` CSV, {args.rows:,} rows | {csv_time:.1f} | {csv_time / base:.1f} |\n"
        f"| `labelloop import` JSONL, {args.rows:,} rows | {jsonl_time:.1f} | "
        f"{jsonl_time / base:.1f} |\n"
        f"| re-import of the same CSV (adds nothing) | {csv_again:.1f} | {csv_again / base:.1f} |\n"
    )
    note = (
        "\nlabelloop validates every row (text, id, label), hashes each text, checks ids against "
        "the store and writes one transaction with the item indexes; the baseline does none of "
        "that. Target: 1,000,000 rows in under a minute.\n"
    )
    print(table + note)
    write_section("import", table + note, f"python bench/bench_import.py --rows {args.rows}")


if __name__ == "__main__":
    main()
