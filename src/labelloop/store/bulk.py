"""Fast bulk inserts and updates: one prepared statement, executemany on the driver.

SQLAlchemy's ORM bulk path costs tens of microseconds a row; imports of millions of rows, and
rewriting a column of every prediction of a large pool, need the driver's executemany with
values already converted by the column types' own processors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, FromClause
from sqlalchemy.orm import Session


def bulk_insert(
    session: Session, table: FromClause, rows: Sequence[dict[str, Any]], batch: int = 20_000
) -> int:
    """Insert dict rows (all with the same keys) into `table` inside the session's transaction.

    Columns missing from the rows take their Python-side scalar or callable defaults once per
    batch (e.g. a creation time), so every row of a batch shares them.
    """
    if not rows:
        return 0
    connection = session.connection()
    dialect = connection.dialect
    given = list(rows[0])
    defaults = {
        column.name: column.default
        for column in table.columns
        if column.name not in given and column.default is not None and not column.primary_key
    }
    names = given + list(defaults)
    processors = [_processor(table.c[name].type, dialect) for name in names]
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    columns = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    # Only identifiers quoted by the dialect and placeholders: no data goes into the SQL text.
    table_name = dialect.identifier_preparer.format_table(table)
    values = ", ".join([marker] * len(names))
    sql = f"INSERT INTO {table_name} ({columns}) VALUES ({values})"  # noqa: S608
    process_given = [
        (i, process) for i, process in enumerate(processors[: len(given)]) if process is not None
    ]
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        fixed = tuple(
            _process(default.arg(None) if default.is_callable else default.arg, process)
            for default, process in zip(defaults.values(), processors[len(given) :], strict=True)
        )
        # Column by column: each column's values converted in one pass, then zipped into rows.
        by_column: list[list[Any]] = [[row[name] for row in chunk] for name in given]
        for i, process in process_given:
            by_column[i] = [None if value is None else process(value) for value in by_column[i]]
        by_column += [[value] * len(chunk) for value in fixed]
        connection.exec_driver_sql(sql, list(zip(*by_column, strict=True)))
    return len(rows)


def bulk_update(
    session: Session,
    table: FromClause,
    rows: Sequence[dict[str, Any]],
    key: str = "id",
    batch: int = 20_000,
) -> int:
    """Update rows of `table` by `key` inside the session's transaction: dict rows (all with the
    same keys) holding `key` and the new values, as an ORM bulk update by primary key takes
    them, and stored as it stores them (every value, None included, through its column type's
    conversion: a None JSON value is stored as JSON null, as the ORM does)."""
    if not rows:
        return 0
    connection = session.connection()
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    names = [name for name in rows[0] if name != key]
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    assignments = ", ".join(f"{quote(name)} = {marker}" for name in names)
    table_name = dialect.identifier_preparer.format_table(table)
    # Only identifiers quoted by the dialect and placeholders: no data goes into the SQL text.
    sql = f"UPDATE {table_name} SET {assignments} WHERE {quote(key)} = {marker}"  # noqa: S608
    processors = [
        (i, process)
        for i, name in enumerate([*names, key])
        if (process := _processor(table.c[name].type, dialect)) is not None
    ]
    for start in range(0, len(rows), batch):
        params = [(*[row[name] for name in names], row[key]) for row in rows[start : start + batch]]
        if processors:
            params = [_apply_all(values, processors) for values in params]
        connection.exec_driver_sql(sql, params)
    return len(rows)


def _processor(column_type: Any, dialect: Any) -> Any:
    """The column type's own bind conversion; JSON is serialised here when the dialect leaves
    it to its own parameter binding (which raw executemany bypasses)."""
    process = column_type.bind_processor(dialect)
    if process is None and isinstance(column_type, JSON):
        return lambda value: json.dumps(value, ensure_ascii=False)
    return process


def _process(value: Any, process: Any) -> Any:
    return value if value is None or process is None else process(value)


def _apply_all(values: tuple, processors: list[tuple[int, Any]]) -> tuple:
    """Convert the values of the columns whose type needs it, None included (as SQLAlchemy's
    own binding does: each type's processor decides what None becomes)."""
    converted = list(values)
    for i, process in processors:
        converted[i] = process(converted[i])
    return tuple(converted)
