"""The review queries: tasks and their leases, gold checks, answers, and the dashboard's counts.

The serving path (next item, answer, undo) runs prebuilt Core statements (compiled once, then
cached by SQLAlchemy), each touching a few rows through the primary key or an index: its cost
does not grow with the store (`bench/bench_server.py` measures it with 1,000,000 queued items).
The functions run inside the caller's transaction (a `Connection` or a `Session`), so that a
service decides what one unit of work holds; they decide nothing about who may do what.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..vocabulary import Action, ItemState, Queue, Split
from .db import Record, rowcount
from .models import (
    Annotation,
    Annotator,
    GoldLease,
    Item,
    Prediction,
    ProjectRow,
    ReviewTask,
    table_of,
    utcnow,
)

_TASKS, _ITEMS, _PROJECTS = table_of(ReviewTask), table_of(Item), table_of(ProjectRow)
_GOLD_LEASES = table_of(GoldLease)
_ANNOTATIONS, _PREDICTIONS = table_of(Annotation), table_of(Prediction)
#: Rows written or read per statement when a caller hands over many ids.
CHUNK = 5_000


def task_done(answers: Any, rejections: Any, answers_needed: Any = _TASKS.c.answers_needed) -> Any:
    """Whether a review task has all its answers (SQL; the one rule every count uses).

    A task wants `answers_needed` answers from different people (the overlap), and one more for
    each live rejection: a rejected suggestion leaves the item without a label.
    """
    return answers >= answers_needed + rejections


#: A task nobody holds: never leased, or its lease ran out before `:now`.
LEASE_FREE = or_(_TASKS.c.lease_owner.is_(None), _TASKS.c.lease_expires < bindparam("now"))
#: The open task of an item that an answer without a queue counts for: the one `:who` holds,
#: else one that nobody holds, then by priority (`free` says whether it is held).
_OPEN_TASK = (
    select(_TASKS.c.queue, LEASE_FREE.label("free"))
    .where(_TASKS.c.item_id == bindparam("item"), _TASKS.c.done.is_(False))
    .order_by(
        case((_TASKS.c.lease_owner == bindparam("who"), 0), (LEASE_FREE, 1), else_=2),
        _TASKS.c.priority,
    )
    .limit(1)
)


def open_task_of(conn: Connection, item_id: int, who: int | None, now: datetime) -> Record | None:
    """The open task of an item an answer without a queue counts for: (queue, free), or None
    when the item has no open task."""
    return conn.execute(_OPEN_TASK, {"item": item_id, "who": who, "now": now}).first()


_PROJECT_SETTINGS = select(_PROJECTS.c.settings).where(_PROJECTS.c.id == bindparam("project"))


def stored_settings(conn: Connection, project_id: int) -> dict[str, Any]:
    """The project's settings as stored, read inside the caller's transaction (the serving path
    reads them there rather than through a second connection)."""
    return dict(conn.execute(_PROJECT_SETTINGS, {"project": project_id}).scalar_one() or {})


# ----------------------------------------------------------------------------- queues
def _overlap_selected(share: float) -> Any:
    """A fixed pseudo-random share of items (by id), so re-applying picks the same ones."""
    return (ReviewTask.item_id * 7919) % 1000 < round(share * 1000)


def set_answers_needed(
    session: Session,
    project_id: int,
    queues: Sequence[str],
    *,
    overlap: int,
    share: float,
    adaptive: bool,
) -> int:
    """Set `answers_needed` (and `done`) of the project's tasks in `queues` from the overlap
    settings, writing only the tasks whose values change. Adaptive overlap asks one answer of
    the tasks nobody answered yet and leaves the others alone. Returns the tasks changed."""
    needed: Any = case((_overlap_selected(share), overlap), else_=1)
    which = [ReviewTask.project_id == project_id, ReviewTask.queue.in_(queues)]
    if adaptive:
        needed, which = literal(1), [*which, ReviewTask.answers == 0]
    done = task_done(ReviewTask.answers, ReviewTask.rejections, needed)
    result = session.execute(
        update(ReviewTask)
        .where(*which, or_(ReviewTask.answers_needed != needed, ReviewTask.done != done))
        .values(answers_needed=needed, done=done)
    )
    return rowcount(result)


def queued_in(session: Session, item_ids: Sequence[int], queue: str) -> set[int]:
    """Those of `item_ids` (at most `CHUNK`) that already have a task in `queue`."""
    return set(
        session.scalars(
            select(ReviewTask.item_id).where(
                ReviewTask.item_id.in_(item_ids), ReviewTask.queue == queue
            )
        )
    )


def add_tasks(
    session: Session, project_id: int, queue: str, priorities: Mapping[int, float]
) -> int:
    """New open tasks in `queue`, one answer wanted, for the items of `priorities` (item id →
    priority, lower served first). Returns the tasks added."""
    if not priorities:
        return 0
    session.execute(
        insert(ReviewTask),
        [
            {
                "project_id": project_id,
                "item_id": item_id,
                "queue": queue,
                "priority": float(priority),
                "answers_needed": 1,
                "answers": 0,
                "done": False,
            }
            for item_id, priority in priorities.items()
        ],
    )
    return len(priorities)


def _auto_accepted(project_id: int) -> Any:
    return and_(Item.project_id == project_id, Item.state == ItemState.AUTO_ACCEPTED)


def audit_counts(session: Session, project_id: int) -> tuple[int, int]:
    """(items ever audited, auto-accepted items never audited). Audited items people have since
    answered left the auto-accepted state; they still count toward the audit share, so that
    answering audits never triggers more of them."""
    ever_audited = and_(Item.project_id == project_id, Item.audit.is_(True))
    audited = session.scalar(select(func.count()).where(ever_audited)) or 0
    unaudited = (
        session.scalar(
            select(func.count()).where(_auto_accepted(project_id), Item.audit.is_(False))
        )
        or 0
    )
    return audited, unaudited


def unaudited_auto_accepted(session: Session, project_id: int) -> list[int]:
    """Ids of the auto-accepted items never sampled for audit: the audit's candidates."""
    return list(
        session.scalars(select(Item.id).where(_auto_accepted(project_id), Item.audit.is_(False)))
    )


def mark_audited(session: Session, item_ids: Sequence[int]) -> None:
    """Flag items (at most `CHUNK`) as sampled for audit, so that they are never sampled twice."""
    session.execute(update(Item).where(Item.id.in_(item_ids)).values(audit=True))


# ----------------------------------------------------------------------------- leases
@dataclass(frozen=True, slots=True)
class Lease:
    """Who takes a lease, when, until when, and which items they already have on screen."""

    project_id: int
    annotator_id: int
    now: datetime
    expires: datetime
    exclude: Sequence[int] = field(default=())

    def params(self, **more: Any) -> dict[str, Any]:
        """The statements' parameters (`:project`, `:who`, `:now`, `:expires`, `:exclude`)."""
        return {
            "project": self.project_id,
            "who": self.annotator_id,
            "now": self.now,
            "expires": self.expires,
            "exclude": list(self.exclude),
            **more,
        }


def _answered_by(item_column: Any) -> Any:
    """The annotator `:who` has a live answer on the item."""
    return (
        select(_ANNOTATIONS.c.id)
        .where(
            _ANNOTATIONS.c.item_id == item_column,
            _ANNOTATIONS.c.annotator_id == bindparam("who"),
            _ANNOTATIONS.c.undone.is_(False),
        )
        .exists()
    )


@lru_cache(maxsize=8)
def _open_tasks(held: bool, exclude: bool) -> Any:
    """Open tasks of `:project` that `:who` has not answered (and not in `:exclude`): the lease
    `:who` holds (by id: the partial lease index, a person holds a handful), or the first free
    one by priority (the open-task index, walked in priority order)."""
    query = select(_TASKS.c.id, _TASKS.c.item_id, _TASKS.c.queue).where(
        _TASKS.c.project_id == bindparam("project"),
        _TASKS.c.done.is_(False),
        ~_answered_by(_TASKS.c.item_id),
    )
    if exclude:
        query = query.where(_TASKS.c.item_id.not_in(bindparam("exclude", expanding=True)))
    if held:
        query = query.where(
            _TASKS.c.lease_owner == bindparam("who"), _TASKS.c.lease_expires >= bindparam("now")
        )
        return query.order_by(_TASKS.c.id).limit(1)
    return query.where(LEASE_FREE).order_by(_TASKS.c.priority).limit(1)


@lru_cache(maxsize=2)
def _take(exclude: bool) -> Any:
    """Lease the first free task to `:who` in one statement. PostgreSQL locks the chosen row
    and skips rows others hold locked; SQLite runs one writer at a time."""
    first = _open_tasks(False, exclude).with_only_columns(_TASKS.c.id)
    return (
        update(_TASKS)
        .where(_TASKS.c.id == first.with_for_update(skip_locked=True).scalar_subquery())
        .where(LEASE_FREE)
        .values(lease_owner=bindparam("who"), lease_expires=bindparam("expires"))
        .returning(_TASKS.c.item_id, _TASKS.c.queue)
    )


_RENEW = (
    update(_TASKS)
    .where(_TASKS.c.id == bindparam("task"))
    .values(lease_expires=bindparam("expires"))
)
_GIVE_BACK = (
    update(_TASKS)
    .where(
        _TASKS.c.item_id == bindparam("item"),
        _TASKS.c.done.is_(False),
        or_(LEASE_FREE, _TASKS.c.lease_owner == bindparam("who")),
    )
    .values(lease_owner=bindparam("who"), lease_expires=bindparam("expires"))
)


def held_task(conn: Connection, lease: Lease) -> Record | None:
    """The open task (id, item_id, queue) whose live lease the caller holds, renewed."""
    held = conn.execute(_open_tasks(True, bool(lease.exclude)), lease.params()).first()
    if held is not None:
        conn.execute(_RENEW, lease.params(task=held.id))
    return held


def has_free_task(conn: Connection, lease: Lease) -> bool:
    """Whether a task nobody holds is left for the caller (their stream is not over)."""
    query = _open_tasks(False, bool(lease.exclude))
    return conn.execute(query, lease.params()).first() is not None


def take_task(conn: Connection, lease: Lease) -> Record | None:
    """Lease the caller's first free task by priority: (item_id, queue), or None when none is
    left. Atomic: two callers never take the same task."""
    return conn.execute(_take(bool(lease.exclude)), lease.params()).first()


def give_back(conn: Connection, lease: Lease, item_id: int, queue: str | None) -> None:
    """Lease the item's open task (in `queue`, if given) to the caller again, unless someone
    else took it meanwhile."""
    statement = _GIVE_BACK
    if queue is not None:
        statement = statement.where(_TASKS.c.queue == queue)
    conn.execute(statement, lease.params(item=item_id))


def release_leases(conn: Connection, project_id: int, annotator_id: int) -> int:
    """End every lease a person holds, gold checks included. Returns the leases ended."""
    tasks = conn.execute(
        update(_TASKS)
        .where(_TASKS.c.project_id == project_id, _TASKS.c.lease_owner == annotator_id)
        .values(lease_owner=None, lease_expires=None)
    )
    gold = conn.execute(
        delete(_GOLD_LEASES).where(
            _GOLD_LEASES.c.project_id == project_id,
            _GOLD_LEASES.c.annotator_id == annotator_id,
        )
    )
    return rowcount(tasks) + rowcount(gold)


_RELEASE_ITEM = (
    update(_TASKS)
    .where(_TASKS.c.item_id == bindparam("item"), _TASKS.c.lease_owner == bindparam("who"))
    .values(lease_owner=None, lease_expires=None)
)


def release_item(conn: Connection, item_id: int, annotator_id: int) -> None:
    """End the person's lease on one item (they answered it); other people's stay theirs."""
    conn.execute(_RELEASE_ITEM, {"item": item_id, "who": annotator_id})


# ----------------------------------------------------------------------------- gold checks
@lru_cache(maxsize=2)
def _held_gold(exclude: bool) -> Any:
    """A gold check served to `:who` whose lease is live (served again first, as tasks are)."""
    query = select(_GOLD_LEASES.c.item_id).where(
        _GOLD_LEASES.c.annotator_id == bindparam("who"),
        _GOLD_LEASES.c.lease_expires >= bindparam("now"),
        ~_answered_by(_GOLD_LEASES.c.item_id),
    )
    if exclude:
        query = query.where(_GOLD_LEASES.c.item_id.not_in(bindparam("exclude", expanding=True)))
    return query.order_by(_GOLD_LEASES.c.id).limit(1)


def _upsert_gold_lease(dialect: str) -> Any:
    insert_for = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = insert_for(_GOLD_LEASES).values(
        project_id=bindparam("project"),
        item_id=bindparam("item"),
        annotator_id=bindparam("who"),
        lease_expires=bindparam("expires"),
    )
    return statement.on_conflict_do_update(
        index_elements=[_GOLD_LEASES.c.item_id, _GOLD_LEASES.c.annotator_id],
        set_={"lease_expires": statement.excluded.lease_expires},
    )


_LEASE_GOLD = {dialect: _upsert_gold_lease(dialect) for dialect in ("sqlite", "postgresql")}
_RETURN_GOLD = delete(_GOLD_LEASES).where(
    _GOLD_LEASES.c.item_id == bindparam("item"), _GOLD_LEASES.c.annotator_id == bindparam("who")
)
_GOLD = (
    select(_ITEMS.c.id)
    .where(
        _ITEMS.c.project_id == bindparam("project"),
        _ITEMS.c.split == Split.GOLD,
        ~_answered_by(_ITEMS.c.id),
        _ITEMS.c.id.not_in(bindparam("exclude", expanding=True)),
    )
    .order_by(_ITEMS.c.id)
    .limit(32)
)


def held_gold(conn: Connection, lease: Lease) -> int | None:
    """The gold check served to the caller whose lease is live and that they have not answered."""
    return conn.execute(_held_gold(bool(lease.exclude)), lease.params()).scalar()


def gold_candidates(conn: Connection, lease: Lease) -> list[int]:
    """A few gold items the caller has not answered (and has not on screen) to serve one of."""
    return list(conn.scalars(_GOLD, lease.params()))


def lease_gold(conn: Connection, lease: Lease, item_id: int) -> None:
    """Serve a gold check to the caller: a lease of their own, taken or renewed."""
    conn.execute(_LEASE_GOLD[conn.dialect.name], lease.params(item=item_id))


def return_gold(conn: Connection, item_id: int, annotator_id: int) -> None:
    """End the caller's lease on a gold check (answered: it is served to them once)."""
    conn.execute(_RETURN_GOLD, {"item": item_id, "who": annotator_id})


_PAYLOAD = (
    select(
        _ITEMS.c.id,
        _ITEMS.c.uid,
        _ITEMS.c.text,
        _ITEMS.c.llm_label,
        _ITEMS.c.confidence,
        _ITEMS.c.calibrated_confidence,
        _PREDICTIONS.c.reasoning,
        _PROJECTS.c.settings,
    )
    .select_from(_ITEMS)
    .join(_PROJECTS, _PROJECTS.c.id == _ITEMS.c.project_id)
    .outerjoin(_PREDICTIONS, _PREDICTIONS.c.id == _ITEMS.c.prediction_id)
    .where(_ITEMS.c.id == bindparam("item"))
)


def shown_item(conn: Connection, item_id: int) -> Record:
    """What a person is shown of an item: id, uid, text, suggestion, confidences, reasoning,
    and its project's settings (which say whether the item takes a set)."""
    return conn.execute(_PAYLOAD, {"item": item_id}).one()


# ----------------------------------------------------------------------------- answers
#: What answering needs to know of an item: its split, state and suggestion, and the project's
#: label set and settings, in one statement (a row, or None when there is no such item).
ITEM_CONTEXT = (
    select(
        _ITEMS.c.id,
        _ITEMS.c.uid,
        _ITEMS.c.project_id,
        _ITEMS.c.split,
        _ITEMS.c.state,
        _ITEMS.c.final_label,
        _ITEMS.c.final_labels,
        _ITEMS.c.final_source,
        _ITEMS.c.label_posterior,
        _ITEMS.c.llm_label,
        _ITEMS.c.confidence,
        _ITEMS.c.calibrated_confidence,
        _PROJECTS.c.labels,
        _PROJECTS.c.settings,
    )
    .join_from(_ITEMS, _PROJECTS, _PROJECTS.c.id == _ITEMS.c.project_id)
    .where(_ITEMS.c.id == bindparam("item"))
)
#: `ITEM_CONTEXT` plus what the review API checks before it takes an answer: the open task whose
#: lease names the caller, and whether a gold check was served to the caller. The item's row is
#: locked (PostgreSQL; SQLite has one writer), so that answers to one item take turns and each
#: sees the ones before it: the same answer sent twice at once is taken once.
_ANSWER_CONTEXT = ITEM_CONTEXT.add_columns(
    select(_TASKS.c.queue)
    .where(
        _TASKS.c.item_id == _ITEMS.c.id,
        _TASKS.c.done.is_(False),
        _TASKS.c.lease_owner == bindparam("who"),
    )
    .order_by(_TASKS.c.priority)
    .limit(1)
    .correlate(_ITEMS)
    .scalar_subquery()
    .label("held_queue"),
    select(_GOLD_LEASES.c.id)
    .where(
        _GOLD_LEASES.c.item_id == _ITEMS.c.id,
        _GOLD_LEASES.c.annotator_id == bindparam("who"),
    )
    .correlate(_ITEMS)
    .exists()
    .label("gold_held"),
).with_for_update(of=_ITEMS)


def item_context(conn: Connection, item_id: int) -> Record | None:
    """An item as answering needs it (`ITEM_CONTEXT`), or None when there is no such item."""
    return conn.execute(ITEM_CONTEXT, {"item": item_id}).first()


def answer_context(conn: Connection, item_id: int, annotator_id: int) -> Record | None:
    """`item_context` plus the queue of the open task the caller holds (`held_queue`) and
    whether a gold check of it was served to them (`gold_held`); the item's row is locked."""
    return conn.execute(_ANSWER_CONTEXT, {"item": item_id, "who": annotator_id}).first()


def add_answer(conn: Connection, **values: Any) -> int:
    """Store one answer (live, stamped now); returns its id."""
    inserted = conn.execute(
        insert(_ANNOTATIONS), {**values, "undone": False, "created_at": utcnow()}
    ).inserted_primary_key
    assert inserted is not None  # an INSERT of one row
    return int(inserted[0])


_LIVE_ANSWERS = select(
    _ANNOTATIONS.c.id,
    _ANNOTATIONS.c.annotator_id,
    _ANNOTATIONS.c.label,
    _ANNOTATIONS.c.action,
    _ANNOTATIONS.c.queue,
).where(_ANNOTATIONS.c.item_id == bindparam("item"), _ANNOTATIONS.c.undone.is_(False))


def live_answers(conn: Connection, item_id: int) -> Sequence[Record]:
    """The item's answers not withdrawn: (id, annotator_id, label, action, queue), oldest
    first by id as stored."""
    return conn.execute(_LIVE_ANSWERS, {"item": item_id}).all()


_SET_ITEM_STATE = (
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("item"))
    .values(
        state=bindparam("new_state"),
        final_label=bindparam("new_label"),
        final_source=bindparam("new_source"),
        label_posterior=bindparam("new_posterior"),
    )
)


def set_item_state(
    conn: Connection,
    item_id: int,
    state: str,
    final_label: str | None,
    final_source: str | None,
    posterior: dict[str, float] | None,
) -> None:
    """Write the state, final label, its source and posterior that the item's answers give it."""
    conn.execute(
        _SET_ITEM_STATE,
        {
            "item": item_id,
            "new_state": state,
            "new_label": final_label,
            "new_source": final_source,
            "new_posterior": posterior,
        },
    )


_SETTLE = (
    update(_TASKS)
    .where(_TASKS.c.item_id == bindparam("item"), _TASKS.c.queue == bindparam("task_queue"))
    .values(
        answers=bindparam("n_answers"),
        rejections=bindparam("n_rejections"),
        done=task_done(bindparam("n_answers"), bindparam("n_rejections")),
    )
)
_SETTLE_ADAPTIVE = (
    update(_TASKS)
    .where(_TASKS.c.item_id == bindparam("item"), _TASKS.c.queue == bindparam("task_queue"))
    .values(
        answers=bindparam("n_answers"),
        rejections=bindparam("n_rejections"),
        answers_needed=bindparam("needed"),
        done=task_done(bindparam("n_answers"), bindparam("n_rejections"), bindparam("needed")),
    )
)


def count_task(
    conn: Connection,
    item_id: int,
    queue: str,
    answers: int,
    rejections: int,
    needed: int | None = None,
) -> None:
    """Set the item's task in `queue` to its counted answers and rejections (and the answers it
    needs, when given), and whether it is done by `task_done`."""
    params = {"item": item_id, "task_queue": queue, "n_answers": answers}
    params["n_rejections"] = rejections
    if needed is None:
        conn.execute(_SETTLE, params)
    else:
        conn.execute(_SETTLE_ADAPTIVE, {**params, "needed": needed})


_ANSWER_OF = select(
    _ANNOTATIONS.c.item_id,
    _ANNOTATIONS.c.action,
    _ANNOTATIONS.c.queue,
    _ANNOTATIONS.c.project_id,
    _ANNOTATIONS.c.undone,
).where(_ANNOTATIONS.c.id == bindparam("annotation"))
_MARK_UNDONE = (
    update(_ANNOTATIONS).where(_ANNOTATIONS.c.id == bindparam("annotation")).values(undone=True)
)
_LAST_ANSWER = select(
    _ANNOTATIONS.c.id,
    _ANNOTATIONS.c.annotator_id,
    _ANNOTATIONS.c.item_id,
    _ANNOTATIONS.c.queue,
    _ANNOTATIONS.c.action,
).where(_ANNOTATIONS.c.project_id == bindparam("project"), _ANNOTATIONS.c.undone.is_(False))
_MY_LAST_ANSWER = (
    _LAST_ANSWER.where(_ANNOTATIONS.c.annotator_id == bindparam("who"))
    .order_by(_ANNOTATIONS.c.id.desc())
    .limit(1)
)
_ANSWER_BY_ID = _LAST_ANSWER.where(_ANNOTATIONS.c.id == bindparam("annotation"))


def answer_of(conn: Connection, annotation_id: int) -> Record | None:
    """An answer's item, action, queue, project and whether it was withdrawn."""
    return conn.execute(_ANSWER_OF, {"annotation": annotation_id}).first()


def mark_undone(conn: Connection, annotation_id: int) -> None:
    """Withdraw an answer: kept for the record, no longer counted."""
    conn.execute(_MARK_UNDONE, {"annotation": annotation_id})


def last_live_answer(
    conn: Connection, project_id: int, annotator_id: int, annotation_id: int | None = None
) -> Record | None:
    """A live answer of the project (id, annotator_id, item_id, queue, action): the given one
    (whoever gave it), or else the person's latest."""
    params = {"project": project_id, "who": annotator_id, "annotation": annotation_id}
    query = _MY_LAST_ANSWER if annotation_id is None else _ANSWER_BY_ID
    return conn.execute(query, params).first()


_GOLD_ANSWER = (
    select(_ITEMS.c.gold_label, _ANNOTATIONS.c.label)
    .join_from(_ANNOTATIONS, _ITEMS, _ITEMS.c.id == _ANNOTATIONS.c.item_id)
    .where(_ANNOTATIONS.c.id == bindparam("annotation"))
)


def gold_answer(conn: Connection, annotation_id: int) -> Record:
    """An answer on a gold item beside the item's gold label: (gold_label, label)."""
    return conn.execute(_GOLD_ANSWER, {"annotation": annotation_id}).one()


@dataclass(frozen=True, slots=True)
class AnswerFields:
    """What the store's record of a person's answer (`OwnAnswer`) and the API's
    (`review.overview.MyAnswer`) share, in the order the API sends it; each adds its
    `created_at`, a datetime here and ISO 8601 text there."""

    id: int
    item_id: int
    uid: str
    action: str
    label: str | None
    labels: list[str] | None  # a multi-label answer's set
    suggested_label: str | None
    time_spent_s: float | None
    undone: bool


@dataclass(frozen=True, slots=True)
class OwnAnswer(AnswerFields):
    """One of a person's answers with its item's uid, as plain values."""

    created_at: datetime | None


def answers_of(
    session: Session, project_id: int, annotator_id: int, limit: int, before: int | None
) -> list[OwnAnswer]:
    """A person's latest answers with their item's uid, newest first (at most `limit`, ids
    below `before` when given)."""
    query = (
        select(
            Annotation.id,
            Annotation.item_id,
            Item.uid,
            Annotation.action,
            Annotation.label,
            Annotation.labels,
            Annotation.suggested_label,
            Annotation.time_spent_s,
            Annotation.undone,
            Annotation.created_at,
        )
        .join(Item, Item.id == Annotation.item_id)
        .where(Annotation.project_id == project_id, Annotation.annotator_id == annotator_id)
        .order_by(Annotation.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(Annotation.id < before)
    return [OwnAnswer(*row) for row in session.execute(query)]


# ----------------------------------------------------------------------------- dashboard
def task_counts(session: Session, project_id: int, now: datetime) -> dict[str, tuple[int, ...]]:
    """Queue → (open, done, leased at `now`, overlap tasks, answers counted)."""
    leased = and_(ReviewTask.done.is_(False), ReviewTask.lease_expires >= now)
    rows = session.execute(
        select(
            ReviewTask.queue,
            func.sum(case((ReviewTask.done.is_(False), 1), else_=0)),
            func.sum(case((ReviewTask.done.is_(True), 1), else_=0)),
            func.sum(case((leased, 1), else_=0)),
            func.sum(case((ReviewTask.answers_needed > 1, 1), else_=0)),
            func.sum(ReviewTask.answers),
        )
        .where(ReviewTask.project_id == project_id)
        .group_by(ReviewTask.queue)
    ).all()
    return {queue: tuple(int(n or 0) for n in counts) for queue, *counts in rows}


def annotator_work(session: Session, project_id: int, since: datetime) -> list[Record]:
    """Per person who answered, by name: name, role, answers, skips, mean time, gold answers,
    gold answers right, answers since `since` (live answers only)."""
    live = and_(Annotation.project_id == project_id, Annotation.undone.is_(False))
    answered = Annotation.action != Action.SKIP
    gold = and_(Item.split == Split.GOLD, answered)
    return list(
        session.execute(
            select(
                Annotator.name,
                Annotator.role,
                func.sum(case((answered, 1), else_=0)),
                func.sum(case((Annotation.action == Action.SKIP, 1), else_=0)),
                func.avg(Annotation.time_spent_s),
                func.sum(case((gold, 1), else_=0)),
                func.sum(case((and_(gold, Annotation.label == Item.gold_label), 1), else_=0)),
                func.sum(case((and_(answered, Annotation.created_at >= since), 1), else_=0)),
            )
            .join(Annotation, and_(Annotation.annotator_id == Annotator.id, live))
            .join(Item, Item.id == Annotation.item_id)
            .where(Annotator.project_id == project_id)
            .group_by(Annotator.id, Annotator.name, Annotator.role)
            .order_by(Annotator.name)
        ).all()
    )


def audit_agreement(session: Session, project_id: int) -> tuple[int, int]:
    """(audit answers, of which kept the suggested label): how often auto-accepted labels are
    right by the people who audited them."""
    n, right = session.execute(
        select(
            func.count(),
            func.sum(case((Annotation.label == Annotation.suggested_label, 1), else_=0)),
        ).where(
            Annotation.project_id == project_id,
            Annotation.queue == Queue.AUDIT,
            Annotation.undone.is_(False),
            Annotation.action != Action.SKIP,
        )
    ).one()
    return int(n or 0), int(right or 0)


def gold_above_threshold(session: Session, project_id: int, threshold: float) -> tuple[int, int]:
    """(gold items whose prediction reaches `threshold`, of which right): the accuracy the
    auto-accepted labels would have on gold."""
    confidence = func.coalesce(Item.calibrated_confidence, Item.confidence)
    n, right = session.execute(
        select(
            func.count(),
            func.sum(case((Item.llm_label == Item.gold_label, 1), else_=0)),
        ).where(
            Item.project_id == project_id,
            Item.split == Split.GOLD,
            Item.llm_label.is_not(None),
            confidence >= threshold,
        )
    ).one()
    return int(n or 0), int(right or 0)


def shared_answers(session: Session, project_id: int, max_items: int) -> list[Record]:
    """(annotator name, item id, label) of the live labeled answers on the latest `max_items`
    items that at least two people answered, oldest answer first: what agreement is measured
    on."""
    live = and_(
        Annotation.project_id == project_id,
        Annotation.undone.is_(False),
        Annotation.label.is_not(None),
        Annotation.annotator_id.is_not(None),
    )
    shared = (
        select(Annotation.item_id)
        .where(live)
        .group_by(Annotation.item_id)
        .having(func.count(func.distinct(Annotation.annotator_id)) >= 2)
        .order_by(Annotation.item_id.desc())
        .limit(max_items)
        .subquery()
    )
    return list(
        session.execute(
            select(Annotator.name, Annotation.item_id, Annotation.label)
            .join(Annotator, Annotator.id == Annotation.annotator_id)
            .where(live, Annotation.item_id.in_(select(shared.c.item_id)))
            .order_by(Annotation.id)
        ).all()
    )
