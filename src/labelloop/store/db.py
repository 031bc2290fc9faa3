"""Engines, sessions and schema migrations for the project store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from sqlalchemy import Connection as Connection
from sqlalchemy import CursorResult, Engine, Result, Row, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import InputError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The newest migration's revision. Opening a store whose schema is at this revision reads one
#: row and loads no Alembic (a quarter of a second per command); a test keeps it equal to the
#: head of `migrations/versions`.
HEAD_REVISION = "0013_adjudication_index"

#: A row of any columns as the store's queries return it (columns by name or position).
Record: TypeAlias = Row[*tuple[Any, ...]]


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE touched (run through an ORM session or a connection)."""
    return cast(CursorResult[Any], result).rowcount or 0


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def normalise_url(url: str) -> str:
    """Accept the URLs people type (postgresql://...) and pick a driver that is installed."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError(f"not a database URL: {url!r}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    return engine


def _alembic_config(engine: Engine | None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    """The head of the migration scripts, as Alembic reads it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The store's schema revision, as Alembic reads it."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def stored_revisions(engine: Engine) -> list[str]:
    """The revisions recorded in the store's `alembic_version` table, read with plain SQL."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return []
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already).

    A store at `HEAD_REVISION` is recognised without Alembic; anything else (a new store, an
    older schema) is handed to Alembic, which upgrades it or reports a revision it does not know.
    """
    if stored_revisions(engine) == [HEAD_REVISION]:
        return
    if current_revision(engine) == head_revision():
        return
    from alembic import command

    command.upgrade(_alembic_config(engine), "head")


class Store:
    """An engine plus a session factory, migrated on open."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        migrate(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._growth: dict[str, list[int]] = {}  # table -> [rows added since, rows at] analysis
        self._growth_lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def grew(self, table: str, rows: int) -> None:
        """Keep PostgreSQL's planner statistics current while a table grows fast.

        With autovacuum off or behind, a table filled in one run still looks empty to the
        planner, and the correlated lookups that copy predictions onto items become scans
        (measured: 1.8 s instead of 0.04 s to refresh 512 items). Once a table has grown by
        a tenth (and at least 1,000 rows) since its last analysis here, it is analysed, as
        autovacuum would."""
        if self.is_sqlite or rows <= 0:
            return
        with self._growth_lock:
            added, base = self._growth.setdefault(table, [0, 0])
            added += rows
            due = added >= max(1000, base // 10)
            self._growth[table] = [0, base + added] if due else [added, base]
        if due:
            quoted = self.engine.dialect.identifier_preparer.quote(table)
            with self.engine.begin() as connection:
                connection.execute(text(f"ANALYZE {quoted}"))

    def dispose(self) -> None:
        self.engine.dispose()
