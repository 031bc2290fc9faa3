"""A throw-away PostgreSQL schema, for tests and benchmarks that need a real server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator


@contextlib.contextmanager
def scratch_schema(url: str, prefix: str = "ll_scratch") -> Iterator[str]:
    """``url`` with its search path set to a fresh schema, which is dropped afterwards.

    ``url`` is a SQLAlchemy URL (``postgresql+psycopg://…``)."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    plain = url.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
