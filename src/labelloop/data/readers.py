"""Read CSV, JSONL, JSON and Parquet files into (line number, record) pairs.

Readers are strict: undecodable bytes, a truncated file or a malformed line is an
:class:`InputError` naming the file and line, never a silently shorter import.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError

Record = tuple[int, dict[str, Any]]
FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")
csv.field_size_limit(2**31 - 1)


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("ndjson",):
        return "jsonl"
    if suffix in ("parq", "pq"):
        return "parquet"
    if suffix in FORMATS:
        return suffix
    raise InputError(
        f"cannot tell the format from the extension {path.suffix!r}; "
        f"use one of .csv, .tsv, .jsonl, .json, .parquet",
        file=str(path),
    )


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(
            f"byte {data[exc.start : exc.start + 1]!r} at character {column} is not valid UTF-8",
            file=str(path),
            line=line,
        ) from exc


def read_csv(path: Path, delimiter: str = ",") -> Iterator[Record]:
    text = _decode(path, path.read_bytes())
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("the file is empty", file=str(path)) from None
    except csv.Error as exc:
        raise InputError(f"malformed CSV header: {exc}", file=str(path), line=1) from exc
    header = [name.strip() for name in header]
    width = len(header)
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != width:
                raise InputError(
                    f"expected {width} fields as in the header, found {len(row)}"
                    + (" (the file may be truncated)" if len(row) < width else ""),
                    file=str(path),
                    line=line,
                )
            yield line, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise InputError(
            f"malformed CSV ({exc}); the file may be truncated", file=str(path), line=line + 1
        ) from exc


def read_jsonl(path: Path) -> Iterator[Record]:
    data = path.read_bytes()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"byte {raw[exc.start : exc.start + 1]!r} at character {exc.start + 1} "
                "is not valid UTF-8",
                file=str(path),
                line=number,
            ) from exc
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            hint = " (the file may be truncated)" if number == data.count(b"\n") + 1 else ""
            raise InputError(
                f"not valid JSON at character {exc.colno}: {exc.msg}{hint}",
                file=str(path),
                line=number,
            ) from exc
        if not isinstance(record, dict):
            raise InputError(
                f"each line must be a JSON object, found {type(record).__name__}",
                file=str(path),
                line=number,
            )
        yield number, record


def read_json(path: Path) -> Iterator[Record]:
    text = _decode(path, path.read_bytes())
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON at character {exc.colno}: {exc.msg}", file=str(path), line=exc.lineno
        ) from exc
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        raise InputError("expected a JSON array of objects", file=str(path))
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise InputError(
                f"record {number} is a {type(record).__name__}, expected an object",
                file=str(path),
            )
        yield number, record


def read_parquet(path: Path) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        batches = parquet.iter_batches(batch_size=65536)
        number = 0
        for batch in batches:
            for record in batch.to_pylist():
                number += 1
                yield number, record
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"cannot read Parquet ({exc}); the file may be truncated or not Parquet",
            file=str(path),
        ) from exc


def read_file(path: str | Path, fmt: str | None = None) -> Iterator[Record]:
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", file=str(path))
    fmt = (fmt or detect_format(path)).lower()
    readers = {
        "csv": read_csv,
        "tsv": lambda p: read_csv(p, delimiter="\t"),
        "jsonl": read_jsonl,
        "json": read_json,
        "parquet": read_parquet,
    }
    if fmt not in readers:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return readers[fmt](path)


def records_from_data(data: Any) -> tuple[str, Iterable[Record]]:
    """Records from a pandas or polars DataFrame, a list of dicts or a list of strings."""
    module = type(data).__module__
    if module.startswith("pandas"):
        rows = data.to_dict("records")
        return "DataFrame", enumerate(rows, start=1)
    if module.startswith("polars"):
        return "DataFrame", enumerate(data.to_dicts(), start=1)
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise InputError("add_items expects a DataFrame, a list of dicts or a list of strings")
    rows = [{"text": row} if isinstance(row, str) else row for row in data]
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise InputError(f"row {number} is a {type(row).__name__}; expected a dict or a string")
    return "list", enumerate(rows, start=1)
