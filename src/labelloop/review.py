"""People in the loop: review queues, leases, accounts, tokens, sessions and the dashboard.

Pure service functions over a `Project`; the web app, the CLI and Python users call them. Every
query is built with SQLAlchemy expressions (never from strings).

Queues. Each open `ReviewTask` belongs to one queue — `review` (routing), `active` (active
learning), `audit` (a sample of auto-accepted items) — and needs `answers_needed` answers from
different people (more than one when overlap is set, for agreement). Gold checks are not tasks:
gold items are mixed into a person's stream at the configured rate and look like review items.

Leases. Handing out a task takes a lease on it atomically (an UPDATE that only matches when the
lease is free or expired, checked by row count; on PostgreSQL the candidate row is also locked with
`FOR UPDATE SKIP LOCKED`), so two people never hold the same task at once, and an abandoned lease
frees itself after `lease_minutes`. Nobody is served an item they have already answered.
"""

from __future__ import annotations

import hashlib
import math
import random
import secrets
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from .errors import InputError, LabelloopError
from .store import (
    AUTO_ACCEPTED,
    GOLD,
    Annotation,
    Annotator,
    ApiToken,
    Item,
    Prediction,
    ProjectRow,
    ReviewTask,
    Store,
)
from .store.models import ReviewSession

if TYPE_CHECKING:
    from .project import Project

ROLES = ("admin", "annotator")
TASK_QUEUES = ("review", "active", "audit", "recheck")
REVIEW_ACTIONS = ("accept", "correct", "label", "reject", "skip")
MIN_PASSWORD = 8
MAX_TEXT_SHOWN = 200_000  # characters of an item sent to the browser; longer texts are cut
MAX_EXCLUDE = 8
SESSION_HOURS = 12
DEFAULT_SETTINGS: dict[str, Any] = {
    "overlap": 1,  # answers wanted per item (from different people)
    "overlap_share": 1.0,  # share of review/active items that get `overlap` answers
    "gold_rate": 0.0,  # share of served items that are gold checks
    "audit_rate": 0.0,  # share of auto-accepted items sampled for audit
    "lease_minutes": 10.0,
}

# argon2id with the library's defaults (RFC 9106 low-memory profile); replaceable for tests.
PASSWORD_HASHER = PasswordHasher()
_dummy_hashes: dict[int, str] = {}


class NotFoundError(InputError):
    """The item, annotator or answer does not exist (in this project)."""


class ConflictError(InputError):
    """The request clashes with the store's state (already answered, name taken...)."""


class ForbiddenError(LabelloopError):
    """The caller may not do this (an annotator acting on someone else's work)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: an annotator or an admin of this project."""

    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _now() -> datetime:
    return datetime.now(UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# One writer at a time per SQLite store: SQLite serialises writers anyway, and doing it in-process
# avoids "database is locked" when a read transaction tries to become a write transaction.
_LOCKS: weakref.WeakKeyDictionary[Store, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _write_lock(project: Project) -> Any:
    store = project.store
    if not store.is_sqlite:
        return nullcontext()
    with _LOCKS_GUARD:
        lock = _LOCKS.get(store)
        if lock is None:
            lock = _LOCKS[store] = threading.Lock()
    return lock


@contextmanager
def _writing(project: Project) -> Iterator[Session]:
    with _write_lock(project), project.store.session() as session:
        yield session


# ----------------------------------------------------------------------------- accounts
def hash_password(password: str) -> str:
    return PASSWORD_HASHER.hash(password)


def _dummy_hash() -> str:
    """A hash to verify against when the name is unknown, so that both cases cost the same."""
    key = id(PASSWORD_HASHER)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = PASSWORD_HASHER.hash(secrets.token_hex(16))
    return _dummy_hashes[key]


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"a password needs at least {MIN_PASSWORD} characters")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def add_user(
    project: Project, name: str, *, role: str = "annotator", password: str | None = None
) -> dict[str, Any]:
    """Create an account; an annotator row made by earlier CLI answers is given the login."""
    name = " ".join(str(name).split())
    if not name or len(name) > 200:
        raise InputError("a user name needs 1 to 200 characters")
    _check_role(role)
    if password is not None:
        _check_password(password)
    hashed = hash_password(password) if password is not None else None
    with _writing(project) as session:
        row = session.scalar(
            select(Annotator).where(Annotator.project_id == project.id, Annotator.name == name)
        )
        if row is not None and row.password_hash is not None:
            raise ConflictError(f"a user named {name!r} already exists")
        if row is None:
            row = Annotator(project_id=project.id, name=name)
            session.add(row)
        row.role, row.password_hash, row.active = role, hashed, True
        session.flush()
        return {"id": row.id, "name": row.name, "role": row.role}


def set_password(project: Project, name: str, password: str) -> None:
    _check_password(password)
    with _writing(project) as session:
        row = _annotator(session, project, name)
        row.password_hash = hash_password(password)
        session.execute(delete(ReviewSession).where(ReviewSession.annotator_id == row.id))


def list_users(project: Project) -> list[dict[str, Any]]:
    with project.store.session() as session:
        rows = session.execute(
            select(Annotator.id, Annotator.name, Annotator.role, Annotator.active)
            .where(Annotator.project_id == project.id)
            .order_by(Annotator.id)
        ).all()
    return [{"id": i, "name": n, "role": r, "active": a} for i, n, r, a in rows]


def _annotator(session: Session, project: Project, name: str) -> Annotator:
    row = session.scalar(
        select(Annotator).where(Annotator.project_id == project.id, Annotator.name == name)
    )
    if row is None:
        raise NotFoundError(f"no user named {name!r}")
    return row


def authenticate(project: Project, name: str, password: str) -> Principal | None:
    """The account for a name and password, or None (same work whether or not the name exists)."""
    with project.store.session() as session:
        row = session.execute(
            select(Annotator.id, Annotator.name, Annotator.role, Annotator.password_hash).where(
                Annotator.project_id == project.id,
                Annotator.name == name,
                Annotator.active.is_(True),
            )
        ).first()
    stored = row.password_hash if row is not None and row.password_hash else _dummy_hash()
    try:
        PASSWORD_HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or not row.password_hash:
        return None
    return Principal(row.id, row.name, row.role)


def create_token(project: Project, name: str) -> str:
    """A new API token for a user; only its SHA-256 is stored, so it is shown once."""
    token = "ll_" + secrets.token_urlsafe(32)
    with _writing(project) as session:
        row = _annotator(session, project, name)
        session.add(ApiToken(annotator_id=row.id, token_hash=_digest(token)))
    return token


def _principal_query(project: Project) -> Any:
    return select(Annotator.id, Annotator.name, Annotator.role).where(
        Annotator.project_id == project.id, Annotator.active.is_(True)
    )


def principal_for_token(project: Project, token: str) -> Principal | None:
    with project.store.session() as session:
        row = session.execute(
            _principal_query(project)
            .join(ApiToken, ApiToken.annotator_id == Annotator.id)
            .where(ApiToken.token_hash == _digest(token))
        ).first()
    return Principal(*row) if row is not None else None


def create_session(project: Project, principal: Principal) -> tuple[str, str]:
    """A browser session: (cookie token, CSRF token). The store keeps the cookie's hash."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = _now()
    with _writing(project) as session:
        session.execute(delete(ReviewSession).where(ReviewSession.expires_at < now))
        session.add(
            ReviewSession(
                annotator_id=principal.id,
                token_hash=_digest(token),
                csrf_token=csrf,
                created_at=now,
                expires_at=now + timedelta(hours=SESSION_HOURS),
            )
        )
    return token, csrf


def session_principal(project: Project, token: str) -> tuple[Principal, str] | None:
    """The account and CSRF token of a live browser session."""
    with project.store.session() as session:
        row = session.execute(
            _principal_query(project)
            .add_columns(ReviewSession.csrf_token)
            .join(ReviewSession, ReviewSession.annotator_id == Annotator.id)
            .where(ReviewSession.token_hash == _digest(token), ReviewSession.expires_at > _now())
        ).first()
    return (Principal(row[0], row[1], row[2]), row[3]) if row is not None else None


def end_session(project: Project, token: str) -> None:
    with _writing(project) as session:
        session.execute(delete(ReviewSession).where(ReviewSession.token_hash == _digest(token)))


# ----------------------------------------------------------------------------- queue settings
def queue_settings(project: Project) -> dict[str, Any]:
    return {**DEFAULT_SETTINGS, **(project.settings.get("review") or {})}


def set_queue_settings(project: Project, **values: Any) -> dict[str, Any]:
    """Change overlap, gold rate, audit rate or lease length, and apply them to the queues."""
    unknown = set(values) - set(DEFAULT_SETTINGS)
    if unknown:
        raise InputError(f"unknown queue settings: {', '.join(sorted(unknown))}")
    merged = {**queue_settings(project), **{k: v for k, v in values.items() if v is not None}}
    checks = {
        "overlap": 1 <= int(merged["overlap"]) <= 100,
        "overlap_share": 0.0 <= float(merged["overlap_share"]) <= 1.0,
        "gold_rate": 0.0 <= float(merged["gold_rate"]) < 1.0,
        "audit_rate": 0.0 <= float(merged["audit_rate"]) <= 1.0,
        "lease_minutes": 0.0 < float(merged["lease_minutes"]) <= 24 * 60,
    }
    for key, ok in checks.items():
        if not ok:
            raise InputError(f"the queue setting {key} is out of range", value=merged[key])
    merged["overlap"] = int(merged["overlap"])
    project.update_settings(review=merged)
    apply_overlap(project)
    if values.get("audit_rate") is not None:
        sample_audit(project)
    return merged


def _overlap_selected(share: float) -> Any:
    """A fixed pseudo-random share of items (by id), so re-applying picks the same ones."""
    return (ReviewTask.item_id * 7919) % 1000 < round(share * 1000)


def apply_overlap(project: Project) -> int:
    """Set `answers_needed` of review and active tasks from the overlap settings.

    Call after routing or selection adds tasks. Tasks that already have enough answers stay done.
    """
    settings = queue_settings(project)
    needed = case(
        (_overlap_selected(float(settings["overlap_share"])), int(settings["overlap"])), else_=1
    )
    with _writing(project) as session:
        result = session.execute(
            update(ReviewTask)
            .where(ReviewTask.project_id == project.id, ReviewTask.queue.in_(("review", "active")))
            .values(answers_needed=needed, done=ReviewTask.answers >= needed)
        )
        return result.rowcount or 0


def enqueue(
    project: Project,
    item_ids: Sequence[int],
    *,
    queue: str = "active",
    priorities: Sequence[float] | None = None,
) -> int:
    """Queue items (store ids) for people; earlier ids are served first unless priorities say.

    Items already in that queue are left as they are. Returns the number of new tasks.
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
    with _writing(project) as session:
        for start in range(0, len(ids), 5_000):
            chunk = ids[start : start + 5_000]
            known = set(
                session.scalars(
                    select(Item.id).where(Item.project_id == project.id, Item.id.in_(chunk))
                )
            )
            if len(known) != len(chunk):
                missing = next(i for i in chunk if i not in known)
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
                if i not in queued
            ]
            if rows:
                session.execute(insert(ReviewTask), rows)
                added += len(rows)
    if queue != "audit":
        apply_overlap(project)
    return added


def sample_audit(project: Project, rate: float | None = None, random_state: Any = None) -> int:
    """Queue a random share of auto-accepted items for audit (up to `rate` of all of them).

    Idempotent: a second call with the same rate adds only what new auto-accepted items need.
    """
    rate = float(queue_settings(project)["audit_rate"] if rate is None else rate)
    if not 0.0 <= rate <= 1.0:
        raise InputError("the audit rate must lie in [0, 1]", value=rate)
    rng = random.Random(random_state)
    with _writing(project) as session:
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
                        "queue": "audit",
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
def _answered_by(annotator_id: int, item_column: Any) -> Any:
    return (
        select(Annotation.id)
        .where(
            Annotation.item_id == item_column,
            Annotation.annotator_id == annotator_id,
            Annotation.undone.is_(False),
        )
        .exists()
    )


def _lease_free(now: datetime) -> Any:
    return or_(ReviewTask.lease_owner.is_(None), ReviewTask.lease_expires < now)


def _open_tasks(project: Project, annotator_id: int, exclude: Sequence[int]) -> Any:
    query = select(ReviewTask.id, ReviewTask.item_id, ReviewTask.queue).where(
        ReviewTask.project_id == project.id,
        ReviewTask.done.is_(False),
        ~_answered_by(annotator_id, ReviewTask.item_id),
    )
    if exclude:
        query = query.where(ReviewTask.item_id.not_in(list(exclude)))
    return query


def _payload(session: Session, item_id: int, queue: str) -> dict[str, Any]:
    item, reasoning = session.execute(
        select(Item, Prediction.reasoning)
        .outerjoin(Prediction, Prediction.id == Item.prediction_id)
        .where(Item.id == item_id)
    ).one()
    confidence = (
        item.calibrated_confidence if item.calibrated_confidence is not None else item.confidence
    )
    text = item.text
    suggestion = None
    if item.llm_label is not None:
        suggestion = {
            "label": item.llm_label,
            "confidence": confidence,
            "calibrated": item.calibrated_confidence is not None,
            "reasoning": reasoning,
        }
    return {
        "id": item.id,
        "uid": item.uid,
        "text": text[:MAX_TEXT_SHOWN],
        "truncated": len(text) > MAX_TEXT_SHOWN,
        "suggestion": suggestion,
        # Gold checks look like review items, so that people cannot tell them apart.
        "queue": "review" if queue == "gold" else queue,
    }


def _gold_item(
    session: Session, project: Project, annotator_id: int, exclude: Sequence[int]
) -> int | None:
    query = select(Item.id).where(
        Item.project_id == project.id, Item.split == GOLD, ~_answered_by(annotator_id, Item.id)
    )
    if exclude:
        query = query.where(Item.id.not_in(list(exclude)))
    candidates = list(session.scalars(query.order_by(Item.id).limit(32)))
    return random.choice(candidates) if candidates else None


def next_item(
    project: Project, annotator_id: int, *, exclude: Sequence[int] = ()
) -> dict[str, Any] | None:
    """The caller's next item (leased to them), or None when nothing is left for them.

    A lease the caller already holds is served again first (a reload shows the same item);
    `exclude` lists item ids the caller already has on screen or prefetched.
    """
    settings = queue_settings(project)
    exclude = [int(i) for i in exclude][:MAX_EXCLUDE]
    now = _now()
    expires = now + timedelta(minutes=float(settings["lease_minutes"]))
    postgres = not project.store.is_sqlite
    with _writing(project) as session:
        # Ordered by id, not priority: the planner must use the lease index (a person holds a
        # handful of leases) rather than walk the whole queue in priority order.
        held = session.execute(
            _open_tasks(project, annotator_id, exclude)
            .where(ReviewTask.lease_owner == annotator_id, ReviewTask.lease_expires >= now)
            .order_by(ReviewTask.id)
            .limit(1)
        ).first()
        if held is not None:
            session.execute(
                update(ReviewTask).where(ReviewTask.id == held.id).values(lease_expires=expires)
            )
            return _payload(session, held.item_id, held.queue)
        free = (
            _open_tasks(project, annotator_id, exclude)
            .where(_lease_free(now))
            .order_by(ReviewTask.priority)
        )
        gold_rate = float(settings["gold_rate"])
        for _ in range(5):
            if postgres:
                candidates = session.execute(free.limit(1).with_for_update(skip_locked=True)).all()
            else:
                candidates = session.execute(free.limit(8)).all()
            if not candidates:
                return None
            if gold_rate > 0 and random.random() < gold_rate:
                gold = _gold_item(session, project, annotator_id, exclude)
                if gold is not None:
                    return _payload(session, gold, "gold")
            for task in candidates:
                taken = session.execute(
                    update(ReviewTask)
                    .where(ReviewTask.id == task.id, _lease_free(now))
                    .values(lease_owner=annotator_id, lease_expires=expires)
                )
                if taken.rowcount == 1:
                    return _payload(session, task.item_id, task.queue)
    return None


def _release(session: Session, item_id: int, annotator_id: int) -> None:
    session.execute(
        update(ReviewTask)
        .where(ReviewTask.item_id == item_id, ReviewTask.lease_owner == annotator_id)
        .values(lease_owner=None, lease_expires=None)
    )


def release_leases(project: Project, annotator_id: int) -> int:
    """Give back every lease a person holds (logout, or leaving the review page)."""
    with _writing(project) as session:
        result = session.execute(
            update(ReviewTask)
            .where(ReviewTask.project_id == project.id, ReviewTask.lease_owner == annotator_id)
            .values(lease_owner=None, lease_expires=None)
        )
        return result.rowcount or 0


def _check_time(time_spent_s: float | None) -> float | None:
    if time_spent_s is None:
        return None
    value = float(time_spent_s)
    if not math.isfinite(value) or not 0.0 <= value <= 86_400.0:
        raise InputError("time_spent_s must lie between 0 and 86400 seconds", value=time_spent_s)
    return value


def _answer_queue(session: Session, project: Project, who: Principal, item_id: int) -> str | None:
    """The queue an answer counts for; raises when the caller may not answer this item."""
    item = session.execute(
        select(Item.split).where(Item.id == item_id, Item.project_id == project.id)
    ).first()
    if item is None:
        raise NotFoundError(f"no item with id {item_id}")
    answered = session.scalar(
        select(Annotation.id).where(
            Annotation.item_id == item_id,
            Annotation.annotator_id == who.id,
            Annotation.undone.is_(False),
            Annotation.action != "skip",
        )
    )
    if answered is not None:
        raise ConflictError(f"you already answered item {item_id}; undo that answer first")
    if item.split == GOLD:
        return "gold"
    mine = case((ReviewTask.lease_owner == who.id, 0), else_=1)
    queue = session.scalar(
        select(ReviewTask.queue)
        .where(ReviewTask.item_id == item_id, ReviewTask.done.is_(False))
        .order_by(mine, ReviewTask.priority)
        .limit(1)
    )
    if queue is None and not who.is_admin:
        raise ConflictError(f"item {item_id} is not waiting for an answer")
    return queue


def _base_answers(settings: dict[str, Any], item_id: int, queue: str) -> int:
    """Answers a task wants before rejections: the overlap for selected review/active items."""
    if queue not in ("review", "active"):
        return 1
    selected = (item_id * 7919) % 1000 < round(float(settings["overlap_share"]) * 1000)
    return int(settings["overlap"]) if selected else 1


def _settle(session: Session, project: Project, item_id: int, queue: str | None) -> None:
    """Recount a task from its live answers; each rejection asks one more person.

    A rejected suggestion leaves the item without a label, so the task stays open for someone
    else (the rejecter is never served it again); undoing the rejection takes that back.
    """
    if queue is None or queue == "gold":
        return
    live = and_(
        Annotation.item_id == item_id,
        Annotation.queue == queue,
        Annotation.undone.is_(False),
        Annotation.action != "skip",
    )
    answers, rejects = session.execute(
        select(func.count(), func.sum(case((Annotation.action == "reject", 1), else_=0))).where(
            live
        )
    ).one()
    needed = _base_answers(queue_settings(project), item_id, queue) + int(rejects or 0)
    session.execute(
        update(ReviewTask)
        .where(ReviewTask.item_id == item_id, ReviewTask.queue == queue)
        .values(answers=answers, answers_needed=needed, done=answers >= needed)
    )


def submit(
    project: Project,
    who: Principal,
    item_id: int,
    *,
    action: str,
    label: str | None = None,
    time_spent_s: float | None = None,
) -> dict[str, Any]:
    """Record a person's answer on an item they were served, and free its lease."""
    if action not in REVIEW_ACTIONS:
        raise InputError(f"action must be one of {', '.join(REVIEW_ACTIONS)}, not {action!r}")
    spent = _check_time(time_spent_s)
    with _write_lock(project):
        with project.store.session() as session:
            queue = _answer_queue(session, project, who, item_id)
        result = project.annotate(
            item_id,
            action=action,
            label=label,
            annotator=who.id,
            time_spent_s=spent,
            queue=queue,
            source="review",
        )
        with project.store.session() as session:
            _release(session, item_id, who.id)
            if action != "skip":
                _settle(session, project, item_id, queue)
    return {"annotation_id": result["annotation_id"], "item_id": item_id, "action": action}


def undo(project: Project, who: Principal, annotation_id: int | None = None) -> dict[str, Any]:
    """Withdraw the caller's last answer (or a given one) and give the item back to them.

    Returns the item as `next_item` would, so the review page can show it again.
    """
    with _write_lock(project):
        with project.store.session() as session:
            query = select(Annotation.id, Annotation.annotator_id, Annotation.item_id).where(
                Annotation.project_id == project.id, Annotation.undone.is_(False)
            )
            if annotation_id is None:
                query = query.where(Annotation.annotator_id == who.id).order_by(
                    Annotation.id.desc()
                )
            else:
                query = query.where(Annotation.id == annotation_id)
            row = session.execute(query.limit(1)).first()
        if row is None:
            raise NotFoundError("there is no answer to undo")
        if row.annotator_id != who.id and not who.is_admin:
            raise ForbiddenError("you can only undo your own answers")
        project.undo_annotation(row.id)
        minutes = float(queue_settings(project)["lease_minutes"])
        now = _now()
        with project.store.session() as session:
            queue = session.scalar(select(Annotation.queue).where(Annotation.id == row.id))
            _settle(session, project, row.item_id, queue)
            session.execute(
                update(ReviewTask)
                .where(
                    ReviewTask.item_id == row.item_id,
                    ReviewTask.done.is_(False),
                    or_(_lease_free(now), ReviewTask.lease_owner == who.id),
                )
                .values(lease_owner=who.id, lease_expires=now + timedelta(minutes=minutes))
            )
            item = _payload(session, row.item_id, queue or "review")
    return {"undone": row.id, "item": item}


# ----------------------------------------------------------------------------- own work
def project_info(project: Project) -> dict[str, Any]:
    """What the review page needs once: the task and the ordered label set."""
    with project.store.session() as session:
        row = session.get_one(ProjectRow, project.id)
        return {"name": row.name, "task": row.task, "labels": list(row.labels)}


def annotations_of(
    project: Project, annotator_id: int, *, limit: int = 50, before: int | None = None
) -> list[dict[str, Any]]:
    """A person's latest answers, newest first (the queue is not shown: gold stays hidden)."""
    query = (
        select(Annotation, Item.uid)
        .join(Item, Item.id == Annotation.item_id)
        .where(Annotation.project_id == project.id, Annotation.annotator_id == annotator_id)
        .order_by(Annotation.id.desc())
        .limit(max(1, min(int(limit), 500)))
    )
    if before is not None:
        query = query.where(Annotation.id < before)
    with project.store.session() as session:
        rows = session.execute(query).all()
    return [
        {
            "id": a.id,
            "item_id": a.item_id,
            "uid": uid,
            "action": a.action,
            "label": a.label,
            "suggested_label": a.suggested_label,
            "time_spent_s": a.time_spent_s,
            "undone": a.undone,
            "created_at": a.created_at.isoformat() if a.created_at else None,
        }
        for a, uid in rows
    ]


# ----------------------------------------------------------------------------- dashboard
def _queue_counts(session: Session, project: Project) -> dict[str, dict[str, int]]:
    now = _now()
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
        .where(ReviewTask.project_id == project.id)
        .group_by(ReviewTask.queue)
    ).all()
    return {
        queue: {
            "open": int(o or 0),
            "done": int(d or 0),
            "leased": int(le or 0),
            "overlap": int(ov or 0),
            "answers": int(a or 0),
        }
        for queue, o, d, le, ov, a in rows
    }


def _annotator_rows(session: Session, project: Project) -> list[dict[str, Any]]:
    live = and_(Annotation.project_id == project.id, Annotation.undone.is_(False))
    answered = Annotation.action != "skip"
    gold = and_(Item.split == GOLD, answered)
    since = _now() - timedelta(hours=1)
    rows = session.execute(
        select(
            Annotator.name,
            Annotator.role,
            func.sum(case((answered, 1), else_=0)),
            func.sum(case((Annotation.action == "skip", 1), else_=0)),
            func.avg(Annotation.time_spent_s),
            func.sum(case((gold, 1), else_=0)),
            func.sum(case((and_(gold, Annotation.label == Item.gold_label), 1), else_=0)),
            func.sum(case((and_(answered, Annotation.created_at >= since), 1), else_=0)),
        )
        .join(Annotation, and_(Annotation.annotator_id == Annotator.id, live))
        .join(Item, Item.id == Annotation.item_id)
        .where(Annotator.project_id == project.id)
        .group_by(Annotator.id, Annotator.name, Annotator.role)
        .order_by(Annotator.name)
    ).all()
    return [
        {
            "name": name,
            "role": role,
            "answers": int(n or 0),
            "skips": int(skips or 0),
            "mean_time_s": float(t) if t is not None else None,
            "gold_checked": int(g or 0),
            "gold_accuracy": (int(gc or 0) / int(g)) if g else None,
            "answers_last_hour": int(h or 0),
        }
        for name, role, n, skips, t, g, gc, h in rows
    ]


def _auto_accuracy(session: Session, project: Project) -> dict[str, Any]:
    """How often auto-accepted labels are right: from audits, and from gold above threshold."""
    audits = session.execute(
        select(
            func.count(),
            func.sum(case((Annotation.label == Annotation.suggested_label, 1), else_=0)),
        ).where(
            Annotation.project_id == project.id,
            Annotation.queue == "audit",
            Annotation.undone.is_(False),
            Annotation.action != "skip",
        )
    ).one()
    confidence = func.coalesce(Item.calibrated_confidence, Item.confidence)
    gold = session.execute(
        select(
            func.count(),
            func.sum(case((Item.llm_label == Item.gold_label, 1), else_=0)),
        ).where(
            Item.project_id == project.id,
            Item.split == GOLD,
            Item.llm_label.is_not(None),
            confidence >= project.threshold,
        )
    ).one()

    def share(n: Any, k: Any) -> dict[str, Any]:
        return {"n": int(n or 0), "accuracy": (int(k or 0) / int(n)) if n else None}

    return {"audit": share(*audits), "gold_above_threshold": share(*gold)}


def _agreement(session: Session, project: Project, max_items: int = 5_000) -> dict[str, Any] | None:
    """Agreement among people on items answered by at least two of them."""
    try:
        from .agreement import agreement_report
    except ImportError:  # pragma: no cover - the agreement package is optional here
        return None
    live = and_(
        Annotation.project_id == project.id,
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
    rows = session.execute(
        select(Annotator.name, Annotation.item_id, Annotation.label)
        .join(Annotator, Annotator.id == Annotation.annotator_id)
        .where(live, Annotation.item_id.in_(select(shared.c.item_id)))
        .order_by(Annotation.id)
    ).all()
    if not rows:
        return None
    raters = sorted({name for name, _, _ in rows})
    items = sorted({item for _, item, _ in rows})
    row_of = {name: i for i, name in enumerate(raters)}
    col_of = {item: j for j, item in enumerate(items)}
    matrix: list[list[str | None]] = [[None] * len(items) for _ in raters]
    for name, item, label in rows:  # later answers overwrite earlier ones of the same person
        matrix[row_of[name]][col_of[item]] = label
    try:
        return agreement_report(matrix, project.labels, raters, n_boot=0)
    except ValueError as exc:
        return {"error": str(exc)}


def plot_files(project: Project) -> list[str]:
    """PNG plots saved in the project's `plots/` folder (calibration, learning curves...)."""
    folder = Path(project.path) / "plots"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob("*.png") if p.is_file())


def dashboard(project: Project) -> dict[str, Any]:
    """Progress, review rate, auto-accepted accuracy, agreement, per-annotator work, plots."""
    stats = project.stats()
    with project.store.session() as session:
        queues = _queue_counts(session, project)
        annotators = _annotator_rows(session, project)
        accuracy = _auto_accuracy(session, project)
        agreement = _agreement(session, project)
    pool = stats.get("pool") or 0
    labeled = (stats.get("human_labeled") or 0) + (stats.get("auto_accepted") or 0)
    return {
        "stats": stats,
        "progress": (labeled - (stats.get("gold") or 0)) / pool if pool else None,
        "review_rate": stats.get("review_rate"),
        "answers_last_hour": sum(a["answers_last_hour"] for a in annotators),
        "queues": queues,
        "queue_settings": queue_settings(project),
        "annotators": annotators,
        "auto_accepted_accuracy": accuracy,
        "agreement": agreement,
        "plots": plot_files(project),
    }
