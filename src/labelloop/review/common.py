"""What the review services share: the project they work on, the clock, and the writer lock."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..store import Connection, Session, Store

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class Result:
    """A base for the services' typed results (frozen dataclasses): `to_dict` is their JSON form,
    what `--json` and the API send."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(cast("DataclassInstance", self))


@dataclass(frozen=True, slots=True)
class Stats(Result):
    """A project's counts per state, review rate and the LLM's accuracy on gold
    (`Project.stats`); `to_dict` is what `stats --json` and the API send."""

    items: int
    gold: int
    pool: int
    predicted: int
    auto_accepted: int
    in_review: int
    human_labeled: int
    unresolved: int
    review_rate: float | None  # share of the pool people look at (in review or labeled)
    gold_accuracy: float | None  # of the shown suggestions on gold items
    gold_predicted: int
    threshold: float
    active_predictor: dict[str, Any] | None
    audit: dict[str, Any] | None  # accuracy of auto-accepted labels measured on audits
    adjudicated: int  # items whose label a reviewer decided
    adjudication_waiting: int  # items waiting for a reviewer


@dataclass(frozen=True, slots=True)
class AuditEstimate(Result):
    """The accuracy of auto-accepted labels measured on audited items (each counted once, by
    its first answer), with its interval at `confidence_level` (`Project.audit_estimate`)."""

    n_audited: int
    n_correct: int
    accuracy: float | None
    lower: float
    upper: float
    confidence_level: float


class ProjectScope(Protocol):
    """What the review services need of a project (`labelloop.Project` is one).

    They take this rather than `Project`, which owns them: the services know the store and the
    project's settings, never the service layer above them.
    """

    id: int
    store: Store
    path: Path

    @property
    def labels(self) -> list[str]: ...

    @property
    def settings(self) -> dict[str, Any]: ...

    @property
    def threshold(self) -> float: ...

    def update_settings(self, **values: Any) -> dict[str, Any]: ...

    def stats(self) -> Stats: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


#: The clock of leases, sessions, token expiry and the dashboard; tests replace it to let time
#: pass.
clock: Callable[[], datetime] = utc_now


def now() -> datetime:
    """The time by `clock` (read at each call, so that replacing `clock` takes effect)."""
    return clock()


# One writer at a time per SQLite store: SQLite serialises writers anyway, and doing it in-process
# avoids "database is locked" when a read transaction tries to become a write transaction.
_LOCKS: weakref.WeakKeyDictionary[Store, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def write_lock(project: ProjectScope) -> AbstractContextManager[Any]:
    store = project.store
    if not store.is_sqlite:
        return nullcontext()
    with _LOCKS_GUARD:
        lock = _LOCKS.get(store)
        if lock is None:
            lock = _LOCKS[store] = threading.Lock()
    return lock


@contextmanager
def writing(project: ProjectScope) -> Iterator[Session]:
    """One ORM session (behind the SQLite writer lock): committed on success."""
    with write_lock(project), project.store.session() as session:
        yield session


@contextmanager
def transaction(project: ProjectScope) -> Iterator[Connection]:
    """One Core transaction (behind the SQLite writer lock): committed on success."""
    with write_lock(project), project.store.engine.begin() as conn:
        yield conn
