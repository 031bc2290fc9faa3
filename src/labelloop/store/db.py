"""Engines, sessions and schema migrations for the project store; and its lean read path.

The lean path (`open_reader`, `read_stats`) answers read-only questions with the fewest imports:
the standard library's sqlite3 for a SQLite store whose schema is current (SQLAlchemy alone
costs a command eight times a bare interpreter's start), SQLAlchemy Core otherwise. The
service layer reads the same summaries through it, so there is one query for each.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast
from urllib.parse import quote

from ..errors import InputError
from ..routing import DEFAULT_THRESHOLD
from ..vocabulary import (
    LABELING_ACTIONS,
    MULTI_LABEL,
    Action,
    ItemState,
    LabelSource,
    Queue,
    Split,
)

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection as Connection
    from sqlalchemy import CursorResult, Engine, Result, Row
    from sqlalchemy.orm import Session as Session

    #: A row of any columns as the store's queries return it (columns by name or position).
    Record: TypeAlias = Row[*tuple[Any, ...]]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The newest migration's revision. Opening a store whose schema is at this revision reads one
#: row and loads no Alembic (a quarter of a second per command); a test keeps it equal to the
#: head of `migrations/versions`.
HEAD_REVISION = "0015_needs_reviewer"

#: A project folder's settings file, its default SQLite store, and the variable naming another.
CONFIG_FILE = "labelloop.json"
DEFAULT_DB_FILE = "labelloop.db"
ENV_DB = "LABELLOOP_DB"


def __getattr__(name: str) -> Any:
    """SQLAlchemy's unit-of-work and row types, imported when first asked for (the lean read
    path needs none of them)."""
    if name == "Connection":
        from sqlalchemy import Connection

        return Connection
    if name == "Session":
        from sqlalchemy.orm import Session

        return Session
    if name == "Record":
        from sqlalchemy import Row

        return Row[*tuple[Any, ...]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE touched (run through an ORM session or a connection)."""
    return cast("CursorResult[Any]", result).rowcount or 0


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def read_project_config(path: Path) -> dict[str, Any]:
    """The folder's `labelloop.json`; bad input when there is none or it is not JSON."""
    config_path = path / CONFIG_FILE
    if not config_path.exists():
        raise InputError(
            f"{path} is not a labelloop project (no {CONFIG_FILE}); "
            "create one with `labelloop init`"
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{config_path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise InputError(f"{config_path} is not a JSON object")
    return config


def resolve_db(path: Path, db: str | None, config: dict[str, Any]) -> str:
    """The store of the project in `path`: `db`, else LABELLOOP_DB, else the folder's config."""
    url = db or os.environ.get(ENV_DB) or config.get("db")
    if url:
        if "://" not in url:  # a plain file name means SQLite, relative to the project folder
            candidate = Path(url)
            return sqlite_url(candidate if candidate.is_absolute() else path / candidate)
        return url
    return sqlite_url(path / DEFAULT_DB_FILE)


def normalise_url(url: str) -> str:
    """Accept the URLs people type (postgresql://...) and pick a driver that is installed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

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
    from sqlalchemy import create_engine, event

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
    from sqlalchemy import inspect, text

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
        from sqlalchemy.orm import sessionmaker

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
            from sqlalchemy import text

            quoted = self.engine.dialect.identifier_preparer.quote(table)
            with self.engine.begin() as connection:
                connection.execute(text(f"ANALYZE {quoted}"))

    def dispose(self) -> None:
        self.engine.dispose()


# -- the lean read path ----------------------------------------------------------------------
Rows = Callable[[str, dict[str, Any]], list[tuple[Any, ...]]]


class Reader:
    """Read-only SQL on a store: ``rows(sql, name=value, ...)``, parameters written ``:name``
    (the style both sqlite3 and SQLAlchemy take)."""

    def __init__(self, run: Rows, close: Callable[[], None] = lambda: None) -> None:
        self._run, self._close = run, close

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        return self._run(sql, params)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def engine_reader(engine: Engine, close: Callable[[], None] = lambda: None) -> Reader:
    """A reader on an SQLAlchemy engine; `close` is what closing the reader does."""
    from sqlalchemy import text

    def run(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]

    return Reader(run, close)


def open_reader(url: str) -> Reader:
    """A reader on the store at `url`: sqlite3 alone when it is a SQLite file at the current
    schema; otherwise the store is opened as usual (and migrated) and read through its engine."""
    sqlite = _current_sqlite(url)
    if sqlite is not None:

        def run(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
            return sqlite.execute(sql, params).fetchall()

        return Reader(run, sqlite.close)
    store = Store(url)
    return engine_reader(store.engine, store.dispose)


def _current_sqlite(url: str) -> sqlite3.Connection | None:
    """A read-only sqlite3 connection to the file `url` names, if its schema is at the head."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url or len(url) == len(prefix):
        return None  # a driver, options or an in-memory store: SQLAlchemy reads it
    path = url[len(prefix) :]
    try:
        connection = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        found = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        revisions = [row[0] for row in found]
    except sqlite3.Error:
        revisions = []
    if revisions != [HEAD_REVISION]:
        connection.close()
        return None
    return connection


def project_id_named(reader: Reader, name: str | None) -> int | None:
    """The id of the store's project of that name (a store may hold several), or None."""
    found = reader.rows("SELECT id FROM projects WHERE name = :name", name=name)
    return int(found[0][0]) if found else None


def find_project_id(reader: Reader, name: str | None) -> int:
    """The id of the project called `name` in the store; bad input when there is none."""
    found = project_id_named(reader, name)
    if found is None:
        raise InputError(f"the database has no project named {name!r}")
    return found


def read_stats(reader: Reader, project_id: int) -> dict[str, Any]:
    """Counts per state, review rate, the LLM's accuracy on gold, items reviewers settled and
    those waiting for one (see `Project.stats`); ``adjudication_waiting`` is None while items
    whose flag an upgrade could not settle remain (the review service settles them)."""
    (totals,) = reader.rows(
        "SELECT COUNT(*),"
        " SUM(CASE WHEN split = :gold THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN llm_label IS NOT NULL THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN split = :gold AND llm_label IS NOT NULL THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN split = :gold AND llm_label = gold_label THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN split = :pool AND state = :human THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN final_source = :adjudicated THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN needs_reviewer THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN needs_reviewer IS NULL THEN 1 ELSE 0 END)"
        " FROM items WHERE project_id = :project",
        gold=Split.GOLD.value,
        pool=Split.POOL.value,
        human=ItemState.HUMAN_LABELED.value,
        adjudicated=LabelSource.ADJUDICATED.value,
        project=project_id,
    )
    items, gold, predicted, gold_predicted, gold_correct, pool_human, adjudicated = (
        int(value or 0) for value in totals[:7]
    )
    waiting, unsettled = (int(value or 0) for value in totals[7:])
    counts = read_state_counts(reader, project_id)
    settings = read_settings(reader, project_id)
    if settings.get(MULTI_LABEL):  # subset accuracy: the whole suggested set is right
        gold_predicted, gold_correct = read_gold_set_counts(reader, project_id)
    pool = items - gold
    return {
        "items": items,
        "gold": gold,
        "pool": pool,
        "predicted": predicted,
        **counts,
        "review_rate": (counts[ItemState.IN_REVIEW] + pool_human) / pool if pool else None,
        "gold_accuracy": gold_correct / gold_predicted if gold_predicted else None,
        "gold_predicted": gold_predicted,
        "threshold": float(settings.get("threshold", DEFAULT_THRESHOLD)),
        "active_predictor": settings.get("active_predictor"),
        "audit": read_audit_estimate(reader, project_id),
        "adjudicated": adjudicated,
        # The review service keeps each item's flag by its rule (`review.waiting`); items an
        # upgrade left unsettled are its to settle first.
        "adjudication_waiting": None if unsettled else waiting,
    }


def read_gold_set_counts(reader: Reader, project_id: int) -> tuple[int, int]:
    """Gold items of a multi-label project showing a suggested set, and those whose set is
    exactly the gold one."""
    rows = reader.rows(
        "SELECT llm_labels, gold_labels FROM items WHERE project_id = :project AND split = :gold",
        project=project_id,
        gold=Split.GOLD.value,
    )
    shown = [
        (set(_json(suggested)), set(_json(gold) or ()))
        for suggested, gold in rows
        if _json(suggested) is not None
    ]
    return len(shown), sum(a == b for a, b in shown)


def _json(value: Any) -> Any:
    """A JSON column's value: text from sqlite3, already decoded from some drivers."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def read_state_counts(reader: Reader, project_id: int) -> dict[str, int]:
    """Items per routing state (every state named, zeros included)."""
    by_state = dict(
        reader.rows(
            "SELECT state, COUNT(*) FROM items WHERE project_id = :project GROUP BY state",
            project=project_id,
        )
    )
    states = (
        ItemState.AUTO_ACCEPTED,
        ItemState.IN_REVIEW,
        ItemState.HUMAN_LABELED,
        ItemState.UNRESOLVED,
    )
    return {state.value: int(by_state.get(state.value, 0)) for state in states}


def read_settings(reader: Reader, project_id: int) -> dict[str, Any]:
    """The project's settings (a JSON column: text from sqlite3, a dict from some drivers)."""
    found = reader.rows("SELECT settings FROM projects WHERE id = :project", project=project_id)
    return dict(_json(found[0][0]) or {}) if found else {}


def read_audit_estimate(
    reader: Reader, project_id: int, confidence_level: float = 0.95
) -> dict[str, Any] | None:
    """Accuracy of auto-accepted labels measured on audited items, with an interval: each
    audited item counts once, by its first answer."""
    actions = (*LABELING_ACTIONS, Action.REJECT)
    names = {f"action{k}": str(action) for k, action in enumerate(actions)}
    placeholders = ", ".join(f":{name}" for name in names)  # parameter names, not values
    rows = reader.rows(
        "SELECT item_id, action, label, suggested_label FROM annotations"  # noqa: S608
        " WHERE project_id = :project AND queue = :audit AND undone = :undone"
        f" AND action IN ({placeholders}) ORDER BY id",
        project=project_id,
        audit=Queue.AUDIT.value,
        undone=False,
        **names,
    )
    first: dict[int, bool] = {}
    for item_id, action, label, suggested in rows:
        if item_id not in first:
            first[item_id] = action == Action.ACCEPT or (
                action != Action.REJECT and label is not None and label == suggested
            )
    if not first:
        return None
    from ..calibration import audit_estimate  # SciPy: only when there are audits

    estimate = audit_estimate(list(first.values()), confidence_level)
    return {k: v for k, v in estimate.items() if not k.startswith("running_")}


def project_stats(path: Path, db: str | None = None) -> dict[str, Any]:
    """`Project.open(path, db=db).stats()` without loading the ORM, but for
    ``adjudication_waiting`` while items are left unsettled by an upgrade (None): what
    `labelloop stats` runs first."""
    path = path.resolve()
    config = read_project_config(path)
    with open_reader(resolve_db(path, db, config)) as reader:
        return read_stats(reader, find_project_id(reader, config.get("project")))
