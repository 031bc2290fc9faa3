"""Review queues: tasks, their settings, and the leases that hand them out.

Each open `ReviewTask` belongs to one queue — `review` (routing), `active` (active learning),
`audit` (a sample of auto-accepted items), `recheck` (likely label issues) — and needs
`answers_needed` answers from different people (more than one when overlap is set, for
agreement), plus one for each live rejection (`task_done`). Gold checks are not tasks: gold items
are mixed into a person's stream at the configured rate, look like review items, and each serving
is a lease of its own (`GoldLease`): many people are served the same gold item, each once.

Leases. Handing out a task takes a lease on it atomically (an UPDATE that only matches when the
lease is free or expired, checked by row count; on PostgreSQL the candidate row is also locked
with `FOR UPDATE SKIP LOCKED`), so two people never hold the same task at once, and an abandoned
lease frees itself after `lease_minutes`. Nobody is served an item they have already answered.
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
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

from ..errors import InputError, NotFoundError
from ..store import (
    AUTO_ACCEPTED,
    GOLD,
    Annotation,
    GoldLease,
    Item,
    Prediction,
    ProjectRow,
    ReviewTask,
    rowcount,
)
from ..store.models import table_of
from ..vocabulary import TASK_QUEUES, Queue
from . import common
from .common import ProjectScope, transaction, writing

MAX_TEXT_SHOWN = 200_000  # characters of an item sent to the browser; longer texts are cut
MAX_EXCLUDE = 8
#: The queues whose tasks may want several answers (the overlap).
OVERLAP_QUEUES = (Queue.REVIEW, Queue.ACTIVE)
DEFAULT_SETTINGS: dict[str, Any] = {
    "overlap": 1,  # answers wanted per item (from different people)
    "overlap_share": 1.0,  # share of review/active items that get `overlap` answers
    "gold_rate": 0.0,  # share of served items that are gold checks
    "audit_rate": 0.0,  # share of auto-accepted items sampled for audit
    "lease_minutes": 10.0,
    # fixed: `overlap` answers per item; adaptive: another answer only while the item's label is
    # uncertain (its posterior under the annotator model below `overlap_target`), at most
    # `overlap_cap` answers (see `labelloop.review.answers.adaptive_needed`).
    "overlap_mode": "fixed",
    "overlap_target": 0.95,
    "overlap_cap": 5,
}

# Prebuilt Core statements (compiled once, then cached by SQLAlchemy), each touching a few rows
# through the primary key or an index.
_TASKS, _ITEMS, _PROJECTS = table_of(ReviewTask), table_of(Item), table_of(ProjectRow)
_GOLD_LEASES = table_of(GoldLease)
_ANNOTATIONS, _PREDICTIONS = table_of(Annotation), table_of(Prediction)


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
OPEN_TASK = (
    select(_TASKS.c.queue, LEASE_FREE.label("free"))
    .where(_TASKS.c.item_id == bindparam("item"), _TASKS.c.done.is_(False))
    .order_by(
        case((_TASKS.c.lease_owner == bindparam("who"), 0), (LEASE_FREE, 1), else_=2),
        _TASKS.c.priority,
    )
    .limit(1)
)


# ----------------------------------------------------------------------------- queue settings
@dataclass(frozen=True)
class Bounds:
    """The values a numeric setting may take: finite numbers within a range."""

    low: float
    high: float
    high_open: bool = False  # the high end itself is excluded
    whole: bool = False  # whole numbers only
    unit: str = ""  # as in "a number of minutes"

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        number = float(value)
        if not math.isfinite(number) or (self.whole and number != int(number)):
            return False
        return self.low <= number and (
            number < self.high if self.high_open else number <= self.high
        )

    def describe(self) -> str:
        kind = ("a whole number" if self.whole else "a number") + self.unit
        if self.high_open:
            return f"{kind} at least {self.low:g} and below {self.high:g}"
        return f"{kind} from {self.low:g} to {self.high:g}"

    def check(self, name: str, value: Any) -> float | int:
        """`value` as a number within bounds; anything else is bad input naming `name`."""
        if not self.holds(value):
            shown = repr(value)
            shown = shown if len(shown) <= 80 else shown[:80] + "…"
            raise InputError(f"{name} must be {self.describe()}, not {shown}")
        return int(value) if self.whole else float(value)


@dataclass(frozen=True)
class Choice:
    """The values a setting chosen by name may take."""

    names: tuple[str, ...]

    def holds(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.names

    def describe(self) -> str:
        return "one of " + ", ".join(self.names)

    def check(self, name: str, value: Any) -> str:
        if not self.holds(value):
            shown = repr(value)
            raise InputError(f"{name} must be {self.describe()}, not {shown[:80]}")
        return str(value)


#: The range of each queue setting. A lease shorter than a minute would run out while a person
#: reads an item and hand it to someone else (the double assignment leases exist to prevent);
#: longer than a day, an abandoned lease keeps an item from everyone for more than a working day.
SETTING_BOUNDS: dict[str, Bounds | Choice] = {
    "overlap": Bounds(1, 100, whole=True),
    "overlap_share": Bounds(0.0, 1.0),
    "gold_rate": Bounds(0.0, 1.0, high_open=True),  # 1 would serve nothing but gold checks
    "audit_rate": Bounds(0.0, 1.0),
    "lease_minutes": Bounds(1.0, 24 * 60, unit=" of minutes"),
    "overlap_mode": Choice(("fixed", "adaptive")),
    "overlap_target": Bounds(0.5, 1.0, high_open=True),  # 1 would never settle an item
    "overlap_cap": Bounds(1, 100, whole=True),
}


def check_setting(name: str, value: Any) -> float | int | str:
    """A queue setting's value, checked against `SETTING_BOUNDS` (InputError naming the range)."""
    return SETTING_BOUNDS[name].check(name, value)


def queue_settings(project: ProjectScope) -> dict[str, Any]:
    return queue_settings_of(project.settings)


def set_queue_settings(project: ProjectScope, **values: Any) -> dict[str, Any]:
    """Change overlap, gold rate, audit rate or lease length, and apply them to the queues.

    Values of None are left as they are; each given value is checked against its range
    (`SETTING_BOUNDS`) before anything is stored.
    """
    unknown = set(values) - set(SETTING_BOUNDS)
    if unknown:
        raise InputError(f"unknown queue settings: {', '.join(sorted(unknown))}")
    given = {name: check_setting(name, v) for name, v in values.items() if v is not None}
    merged = {**queue_settings(project), **given}
    project.update_settings(review=merged)
    apply_overlap(project)
    if "audit_rate" in given:
        sample_audit(project)
    return merged


def _overlap_selected(share: float) -> Any:
    """A fixed pseudo-random share of items (by id), so re-applying picks the same ones."""
    return (ReviewTask.item_id * 7919) % 1000 < round(share * 1000)


def apply_overlap(project: ProjectScope) -> int:
    """Set `answers_needed` of review and active tasks from the overlap settings.

    With adaptive overlap, a task with no answer yet needs one, and answered tasks are left to
    the answer path and the refit of the annotator model (`answers.settle_adaptive`).

    Call after routing or selection adds tasks. A task is done once it has `answers_needed`
    answers plus one per live rejection (`task_done`): the rejections are counted on the task,
    so re-applying the overlap never drops the extra answer a rejection asked for. Only tasks
    whose values change are written (the server applies it at every start: rewriting a million
    unchanged rows would bloat the store). Returns the number of tasks changed.
    """
    settings = queue_settings(project)
    needed: Any = case(
        (_overlap_selected(float(settings["overlap_share"])), int(settings["overlap"])), else_=1
    )
    which = [ReviewTask.project_id == project.id, ReviewTask.queue.in_(OVERLAP_QUEUES)]
    if settings["overlap_mode"] == "adaptive":
        needed, which = literal(1), [*which, ReviewTask.answers == 0]
    done = task_done(ReviewTask.answers, ReviewTask.rejections, needed)
    with writing(project) as session:
        result = session.execute(
            update(ReviewTask)
            .where(*which, or_(ReviewTask.answers_needed != needed, ReviewTask.done != done))
            .values(answers_needed=needed, done=done)
        )
        return rowcount(result)


def enqueue(
    project: ProjectScope,
    item_ids: Sequence[int],
    *,
    queue: str = Queue.ACTIVE,
    priorities: Sequence[float] | None = None,
) -> int:
    """Queue items (store ids) for people; earlier ids are served first unless priorities say.

    Items already in that queue are left as they are, and gold items are left out: they are
    checks served at the gold rate, never work in a queue. Returns the number of new tasks.
    """
    if queue not in TASK_QUEUES:
        raise InputError(f"queue must be one of {', '.join(TASK_QUEUES)}, not {queue!r}")
    ids = list(dict.fromkeys(int(i) for i in item_ids))
    if priorities is None:
        priorities = [i / max(len(ids), 1) for i in range(len(ids))]
    elif len(priorities) != len(item_ids):
        raise InputError("give one priority per item")
    priority_of = dict(zip((int(i) for i in item_ids), priorities, strict=True))
    added = 0
    with writing(project) as session:
        for start in range(0, len(ids), 5_000):
            chunk = ids[start : start + 5_000]
            split_of = dict(
                session.execute(
                    select(Item.id, Item.split).where(
                        Item.project_id == project.id, Item.id.in_(chunk)
                    )
                ).all()
            )
            if len(split_of) != len(chunk):
                missing = next(i for i in chunk if i not in split_of)
                raise NotFoundError(f"no item with store id {missing}")
            queued = set(
                session.scalars(
                    select(ReviewTask.item_id).where(
                        ReviewTask.item_id.in_(chunk), ReviewTask.queue == queue
                    )
                )
            )
            rows = [
                {
                    "project_id": project.id,
                    "item_id": i,
                    "queue": queue,
                    "priority": float(priority_of[i]),
                    "answers_needed": 1,
                    "answers": 0,
                    "done": False,
                }
                for i in chunk
                if i not in queued and split_of[i] != GOLD
            ]
            if rows:
                session.execute(insert(ReviewTask), rows)
                added += len(rows)
    if queue != Queue.AUDIT:
        apply_overlap(project)
    return added


def sample_audit(project: ProjectScope, rate: float | None = None, random_state: Any = None) -> int:
    """Queue a random share of auto-accepted items for audit (up to `rate` of all of them).

    Idempotent: a second call with the same rate adds only what new auto-accepted items need.
    """
    if rate is None:
        rate = queue_settings(project)["audit_rate"]
    rate = float(check_setting("audit_rate", rate))
    rng = random.Random(random_state)
    with writing(project) as session:
        auto = and_(Item.project_id == project.id, Item.state == AUTO_ACCEPTED)
        # Audited items that people have since answered left the auto-accepted state; they
        # still count toward the share, so that answering audits never triggers more of them.
        ever_audited = and_(Item.project_id == project.id, Item.audit.is_(True))
        audited = session.scalar(select(func.count()).where(ever_audited)) or 0
        unaudited = session.scalar(select(func.count()).where(auto, Item.audit.is_(False))) or 0
        wanted = round(rate * (unaudited + audited)) - audited
        if wanted <= 0:
            return 0
        candidates = list(session.scalars(select(Item.id).where(auto, Item.audit.is_(False))))
        chosen = rng.sample(candidates, min(wanted, len(candidates)))
        for start in range(0, len(chosen), 5_000):
            chunk = chosen[start : start + 5_000]
            session.execute(update(Item).where(Item.id.in_(chunk)).values(audit=True))
            session.execute(
                insert(ReviewTask),
                [
                    {
                        "project_id": project.id,
                        "item_id": i,
                        "queue": Queue.AUDIT,
                        "priority": rng.random(),
                        "answers_needed": 1,
                        "answers": 0,
                        "done": False,
                    }
                    for i in chunk
                ],
            )
        return len(chosen)


# ----------------------------------------------------------------------------- serving items
# The serving path (next item, answer, undo) runs one short transaction per request, built from
# SQLAlchemy Core statements that each touch a handful of rows through an index: its cost does
# not grow with the store. `bench/bench_server.py` measures it with 1,000,000 queued items.
_PAYLOAD = (
    select(
        _ITEMS.c.id,
        _ITEMS.c.uid,
        _ITEMS.c.text,
        _ITEMS.c.llm_label,
        _ITEMS.c.confidence,
        _ITEMS.c.calibrated_confidence,
        _PREDICTIONS.c.reasoning,
    )
    .select_from(_ITEMS)
    .outerjoin(_PREDICTIONS, _PREDICTIONS.c.id == _ITEMS.c.prediction_id)
    .where(_ITEMS.c.id == bindparam("item"))
)


def queue_settings_of(settings: dict[str, Any]) -> dict[str, Any]:
    """The queue settings stored in a project's settings; a value out of range (stored before
    ranges were checked) reads as the default."""
    stored = settings.get("review") or {}
    merged = dict(DEFAULT_SETTINGS)
    for name, value in stored.items():
        bounds = SETTING_BOUNDS.get(name)
        if bounds is not None and bounds.holds(value):
            merged[name] = value
    return merged


_PROJECT_SETTINGS = select(_PROJECTS.c.settings).where(_PROJECTS.c.id == bindparam("project"))


def settings_in(conn: Connection, project: ProjectScope) -> dict[str, Any]:
    stored = conn.execute(_PROJECT_SETTINGS, {"project": project.id}).scalar_one()
    return queue_settings_of(dict(stored or {}))


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
GIVE_BACK = (
    update(_TASKS)
    .where(
        _TASKS.c.item_id == bindparam("item"),
        _TASKS.c.done.is_(False),
        or_(LEASE_FREE, _TASKS.c.lease_owner == bindparam("who")),
    )
    .values(lease_owner=bindparam("who"), lease_expires=bindparam("expires"))
)


#: Everything an answer reads, in one statement: the item's state, the project's label set and
#: settings, the open task whose lease names the caller, and whether a gold check was served to
#: the caller. The item's row is locked (PostgreSQL; SQLite has one writer), so that answers to
#: one item take turns and each sees the ones before it: the same answer sent twice at once is
#: taken once.
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
RETURN_GOLD = delete(_GOLD_LEASES).where(
    _GOLD_LEASES.c.item_id == bindparam("item"), _GOLD_LEASES.c.annotator_id == bindparam("who")
)
_GOLD = (
    select(_ITEMS.c.id)
    .where(
        _ITEMS.c.project_id == bindparam("project"),
        _ITEMS.c.split == GOLD,
        ~_answered_by(_ITEMS.c.id),
        _ITEMS.c.id.not_in(bindparam("exclude", expanding=True)),
    )
    .order_by(_ITEMS.c.id)
    .limit(32)
)


def payload(conn: Connection, item_id: int, queue: str) -> dict[str, Any]:
    item = conn.execute(_PAYLOAD, {"item": item_id}).one()
    calibrated = item.calibrated_confidence
    suggestion = None
    if item.llm_label is not None:
        suggestion = {
            "label": item.llm_label,
            "confidence": calibrated if calibrated is not None else item.confidence,
            "calibrated": calibrated is not None,
            "reasoning": item.reasoning,
        }
    return {
        "id": item.id,
        "uid": item.uid,
        "text": item.text[:MAX_TEXT_SHOWN],
        "truncated": len(item.text) > MAX_TEXT_SHOWN,
        "suggestion": suggestion,
        # Gold checks look like review items, so that people cannot tell them apart.
        "queue": Queue.REVIEW if queue == Queue.GOLD else queue,
    }


def _gold_item(conn: Connection, params: dict[str, Any]) -> int | None:
    candidates = list(conn.scalars(_GOLD, params))
    return random.choice(candidates) if candidates else None


def next_item(
    project: ProjectScope, annotator_id: int, *, exclude: Sequence[int] = ()
) -> dict[str, Any] | None:
    """The caller's next item (leased to them), or None when nothing is left for them.

    A lease the caller already holds is served again first (a reload shows the same item),
    gold check or not; `exclude` lists item ids the caller already has on screen or prefetched.
    """
    with transaction(project) as conn:
        return next_in(conn, project, annotator_id, exclude, settings_in(conn, project))


def lease_params(
    project: ProjectScope, annotator_id: int, settings: dict[str, Any], **more: Any
) -> dict[str, Any]:
    now = common.now()
    expires = now + timedelta(minutes=float(settings["lease_minutes"]))
    return {"project": project.id, "who": annotator_id, "now": now, "expires": expires, **more}


def lease_gold(conn: Connection, item_id: int, params: dict[str, Any]) -> None:
    """Serve a gold check to `params["who"]`: a lease of their own, taken or renewed."""
    conn.execute(_LEASE_GOLD[conn.dialect.name], {**params, "item": item_id})


def next_in(
    conn: Connection,
    project: ProjectScope,
    annotator_id: int,
    exclude: Sequence[int],
    settings: dict[str, Any],
) -> dict[str, Any] | None:
    """`next_item` inside the caller's transaction."""
    exclude = [int(i) for i in exclude][:MAX_EXCLUDE]
    params = lease_params(project, annotator_id, settings, exclude=exclude)
    held = conn.execute(_open_tasks(True, bool(exclude)), params).first()
    if held is not None:
        conn.execute(_RENEW, {**params, "task": held.id})
        return payload(conn, held.item_id, held.queue)
    gold_rate = float(settings["gold_rate"])
    if gold_rate > 0:
        gold = conn.execute(_held_gold(bool(exclude)), params).scalar()
        # Gold checks are mixed into a stream that is not over yet.
        if (
            gold is None
            and random.random() < gold_rate
            and conn.execute(_open_tasks(False, bool(exclude)), params).first() is not None
        ):
            gold = _gold_item(conn, params)
        if gold is not None:
            lease_gold(conn, gold, params)
            return payload(conn, gold, Queue.GOLD)
    task = conn.execute(_take(bool(exclude)), params).first()
    return payload(conn, task.item_id, task.queue) if task is not None else None


def release_leases(project: ProjectScope, annotator_id: int) -> int:
    """Give back every lease a person holds, gold checks included (logout, or leaving the
    review page); they can no longer answer those items until they are served them again."""
    with transaction(project) as conn:
        tasks = conn.execute(
            update(_TASKS)
            .where(_TASKS.c.project_id == project.id, _TASKS.c.lease_owner == annotator_id)
            .values(lease_owner=None, lease_expires=None)
        )
        gold = conn.execute(
            delete(_GOLD_LEASES).where(
                _GOLD_LEASES.c.project_id == project.id,
                _GOLD_LEASES.c.annotator_id == annotator_id,
            )
        )
        return (tasks.rowcount or 0) + (gold.rowcount or 0)
