"""labelloop's own exports as JSONL, CSV and Parquet files, and reading them back."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..export import export_rows, restore_cell
from ..readers import detect_format, read_file
from .provenance import item_from_row, iter_provenance_rows
from .records import ItemIn, Where

if TYPE_CHECKING:
    from ...project import Project


def write_jsonl(rows: Iterable[dict[str, Any]], out: Path) -> int:
    return export_rows(rows, out, "jsonl")


def write_json_array(records: Iterable[dict[str, Any]], out: Path) -> int:
    """Stream `records` into a JSON array at `out` (written aside, then moved into place), one
    record per line; the number written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    count = 0
    with partial.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for record in records:
            handle.write(("," if count else "") + "\n" + json.dumps(record, ensure_ascii=False))
            count += 1
        handle.write("\n]\n")
    partial.replace(out)
    return count


def exporter(fmt: str):
    """An exporter of provenance rows in one of the plain file formats."""

    def export(project: Project, out: Path, include: Any) -> int:
        return export_rows(iter_provenance_rows(project, include), out, fmt)

    export.__name__ = f"export_{fmt}"
    return export


def read_labelloop(project: Project, path: Path, *, fmt: str | None = None) -> Iterator[ItemIn]:
    """Rows of a labelloop export (JSONL, CSV or Parquet, by extension unless `fmt`)."""
    is_csv = (fmt or detect_format(path)).lower() == "csv"
    for number, row in read_file(path, fmt):
        if is_csv:
            row = {key: restore_cell(value) for key, value in row.items()}
        where = (
            Where(str(path), line=number)
            if path.suffix != ".parquet"
            else Where(str(path), record=number)
        )
        yield item_from_row(row, where)
