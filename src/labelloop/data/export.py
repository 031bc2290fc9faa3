"""Write labeled data with provenance: JSONL, CSV, Parquet.

JSONL and Parquet hold the stored values exactly. CSV files are opened in spreadsheets, so a text
cell that a spreadsheet would evaluate as a formula is written with a leading single quote
(read back exactly by ``--format labelloop``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError

EXPORT_FORMATS = ("jsonl", "csv", "parquet")

#: First characters that make a spreadsheet evaluate a cell as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as written instead of evaluating it.

    A text starting with a formula character gets a leading single quote. So that reading the
    file back is exact, a text that already starts with quotes before such a character gets one
    more; :func:`restore_cell` removes exactly one.
    """
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def restore_cell(value: Any) -> Any:
    """The text a :func:`neutralise_cell` cell was written from."""
    if isinstance(value, str) and value[:1] == "'" and value.lstrip("'").startswith(FORMULA_STARTS):
        return value[1:]
    return value


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}


def export_rows(rows: Iterable[dict[str, Any]], out: str | Path, fmt: str) -> int:
    """Write rows to `out` in `fmt`; returns how many were written.

    The file is written next to its destination and renamed at the end, so an interrupted
    export never leaves a half-written file under the final name.
    """
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    count = 0
    if fmt == "jsonl":
        with partial.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
    elif fmt == "csv":
        with partial.open("w", encoding="utf-8", newline="") as handle:
            writer: csv.DictWriter | None = None
            for row in rows:
                flat = _flat(row)
                if writer is None:
                    writer = csv.DictWriter(handle, fieldnames=list(flat))
                    writer.writeheader()
                writer.writerow({k: neutralise_cell(v) for k, v in flat.items()})
                count += 1
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer_pq = None
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal writer_pq
            table = pa.Table.from_pylist([_flat(r) for r in batch])
            if writer_pq is None:
                # A column that is empty in the first rows gets its type from its name.
                fields = [
                    pa.field(f.name, pa.float64() if "confidence" in f.name else pa.string())
                    if pa.types.is_null(f.type)
                    else f
                    for f in table.schema
                ]
                writer_pq = pq.ParquetWriter(partial, pa.schema(fields))
            writer_pq.write_table(table.cast(writer_pq.schema))
            batch.clear()

        for row in rows:
            batch.append(row)
            count += 1
            if len(batch) >= 50_000:
                flush()
        if batch or writer_pq is None:
            flush()
        assert writer_pq is not None  # the last flush opened it at the latest
        writer_pq.close()
    partial.replace(out)
    return count
