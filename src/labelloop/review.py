"""People in the loop: review queues, leases, accounts, tokens, sessions and the dashboard.

Pure service functions over a `Project`; the web app, the CLI and Python users call them. Every
query is built with SQLAlchemy expressions (never from strings).

Queues. Each open `ReviewTask` belongs to one queue — `review` (routing), `active` (active
learning), `audit` (a sample of auto-accepted items) — and needs `answers_needed` answers from
different people (more than one when overlap is set, for agreement), plus one for each live
rejection (`task_done`). Gold checks are not tasks: gold items are mixed into a person's stream at
the configured rate, look like review items, and each serving is a lease of its own (`GoldLease`):
many people are served the same gold item, each once.

Leases. Handing out a task takes a lease on it atomically (an UPDATE that only matches when the
lease is free or expired, checked by row count; on PostgreSQL the candidate row is also locked with
`FOR UPDATE SKIP LOCKED`), so two people never hold the same task at once, and an abandoned lease
frees itself after `lease_minutes`. Nobody is served an item they have already answered, and an
answer needs the caller's lease (`_answer_queue`): otherwise it is refused and changes nothing.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import random
import re
import secrets
import threading
import time
import unicodedata
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .errors import InputError, LabelloopError
from .project import (
    ITEM_STATE_COLUMNS,
    LEASE_FREE,
    OPEN_TASK,
    checked_label,
    labels_and_settings_of,
    task_done,
)
from .routing import LABELING_ACTIONS
from .store import (
    AUTO_ACCEPTED,
    GOLD,
    Annotation,
    Annotator,
    ApiToken,
    GoldLease,
    Item,
    Prediction,
    ProjectRow,
    ReviewTask,
    Store,
)
from .store.models import ReviewSession

if TYPE_CHECKING:
    from .project import Project

ROLES = ("admin", "annotator", "service")
TASK_QUEUES = ("review", "active", "audit", "recheck")
REVIEW_ACTIONS = ("accept", "correct", "label", "reject", "skip")
MIN_PASSWORD = 8
MAX_NAME = 200
MAX_LABELSTUDIO_USER = 2**31 - 1  # the store's integer column
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
    """Who is calling: an annotator, an admin or a service account of this project."""

    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_service(self) -> bool:
        return self.role == "service"


def utc_now() -> datetime:
    return datetime.now(UTC)


#: The clock of leases, sessions, token expiry and the dashboard; tests replace it to let time
#: pass.
clock: Callable[[], datetime] = utc_now


def _now() -> datetime:
    return clock()


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
# Accounts. A person logs in with a password (browser sessions) or sends an API token; a
# `service` account (a machine caller such as Label Studio) has no password, only tokens, and
# only the Label Studio ML-backend routes accept it. Every account change (disable, enable,
# password, revoke, link) raises the project's `accounts_version`: token caches compare it, so
# a change works at once in the process that made it and within `ACCOUNTS_CHECK_S` elsewhere.
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


# Characters that are invisible or move the text around them: controls (NUL, newlines, ESC...),
# bidi embeddings, overrides, isolates and marks, and line separators. In a name they forge
# log lines or make "alice\u202eecila" read as someone else. ZWNJ and ZWJ (U+200C, U+200D)
# stay: some scripts and emoji need them.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ALLOWED_FORMAT = frozenset({"\u200c", "\u200d"})


def user_name_problem(name: Any) -> str | None:
    """What makes `name` unfit to name a user, or None when it is fine."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        return f"a user name needs 1 to {MAX_NAME} characters"
    for char in name:
        if unicodedata.category(char) in _REFUSED_CATEGORIES and char not in _ALLOWED_FORMAT:
            return f"a user name may not hold control or bidi characters (U+{ord(char):04X})"
    return None


def check_user_name(name: Any) -> str:
    """The name if it may name a user, else InputError saying what is wrong with it."""
    problem = user_name_problem(name)
    if problem is not None:
        raise InputError(problem, value=name)
    return name


def add_user(
    project: Project,
    name: str,
    *,
    role: str = "annotator",
    password: str | None = None,
    labelstudio_user: int | None = None,
) -> dict[str, Any]:
    """Create an account; an annotator row made by earlier CLI answers is given the login.

    People get a password; a `service` account gets none (it signs in with API tokens only).
    """
    name = " ".join(check_user_name(name).split())
    _check_role(role)
    if role == "service" and password is not None:
        raise InputError("a service account has no password; give it an API token")
    if password is not None:
        _check_password(password)
    hashed = hash_password(password) if password is not None else None
    with _writing(project) as session:
        row = session.scalar(
            select(Annotator).where(Annotator.project_id == project.id, Annotator.name == name)
        )
        if row is not None and (row.password_hash is not None or row.role != "annotator"):
            raise ConflictError(f"a user named {name!r} already exists")
        if row is None:
            row = Annotator(project_id=project.id, name=name)
            session.add(row)
        row.role, row.password_hash, row.active = role, hashed, True
        if labelstudio_user is not None:
            _link(session, project, row, labelstudio_user)
    return get_user(project, name)


def _link(session: Session, project: Project, row: Annotator, labelstudio_user: int) -> None:
    if not 0 <= labelstudio_user <= MAX_LABELSTUDIO_USER:
        raise InputError("a Label Studio user id is a number from 0 to 2^31 - 1")
    taken = session.scalar(
        select(Annotator.name).where(
            Annotator.project_id == project.id,
            Annotator.labelstudio_user == labelstudio_user,
            Annotator.id != row.id,
        )
    )
    if taken is not None:
        raise ConflictError(f"Label Studio user {labelstudio_user} is linked to {taken!r}")
    row.labelstudio_user = labelstudio_user


def _annotator(session: Session, project: Project, name: str) -> Annotator:
    row = session.scalar(
        select(Annotator).where(Annotator.project_id == project.id, Annotator.name == name)
    )
    if row is None:
        raise NotFoundError(f"no user named {name!r}")
    return row


@contextmanager
def _changing_account(project: Project, name: str) -> Iterator[tuple[Session, Annotator]]:
    """One account changed in one transaction; token caches learn of it (see `_TokenCache`)."""
    with _writing(project) as session:
        row = _annotator(session, project, name)
        yield session, row
        version = session.execute(
            update(ProjectRow)
            .where(ProjectRow.id == project.id)
            .values(accounts_version=ProjectRow.accounts_version + 1)
            .returning(ProjectRow.accounts_version)
        ).scalar_one()
    _token_cache(project).saw_version(project.id, version)  # committed: at once, here


def _end_sessions(session: Session, annotator_id: int) -> int:
    ended = session.execute(delete(ReviewSession).where(ReviewSession.annotator_id == annotator_id))
    return ended.rowcount or 0


def set_password(project: Project, name: str, password: str) -> None:
    """A new password; the account's browser sessions end (its API tokens stay: `revoke`)."""
    _check_password(password)
    with _changing_account(project, name) as (session, row):
        if row.role == "service":
            raise InputError("a service account has no password; give it an API token")
        row.password_hash = hash_password(password)
        _end_sessions(session, row.id)


def set_active(project: Project, name: str, active: bool) -> dict[str, Any]:
    """Disable an account (its sessions end, its tokens and leases stop at once) or enable it.

    Tokens of a disabled account are kept and work again once it is enabled; `revoke` ends them.
    """
    with _changing_account(project, name) as (session, row):
        row.active = bool(active)
        if not active:
            _end_sessions(session, row.id)
        annotator_id = row.id
    if not active:
        release_leases(project, annotator_id)
    return get_user(project, name)


def revoke(project: Project, name: str) -> dict[str, Any]:
    """Delete every API token and end every browser session of an account."""
    with _changing_account(project, name) as (session, row):
        tokens = session.execute(delete(ApiToken).where(ApiToken.annotator_id == row.id))
        sessions = _end_sessions(session, row.id)
    return {"name": name, "tokens": tokens.rowcount or 0, "sessions": sessions}


def link_labelstudio(project: Project, name: str, labelstudio_user: int | None) -> dict[str, Any]:
    """Credit the answers a Label Studio user sends by webhook to this account (None: unlink)."""
    with _changing_account(project, name) as (session, row):
        if labelstudio_user is None:
            row.labelstudio_user = None
        else:
            _link(session, project, row, int(labelstudio_user))
    return get_user(project, name)


def _users_query(project: Project) -> Any:
    live = or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > _now())
    tokens = (
        select(func.count())
        .where(ApiToken.annotator_id == Annotator.id, live)
        .correlate(Annotator)
        .scalar_subquery()
    )
    return (
        select(
            Annotator.id,
            Annotator.name,
            Annotator.role,
            Annotator.active,
            Annotator.labelstudio_user,
            Annotator.password_hash.is_not(None).label("password"),
            tokens.label("tokens"),
        )
        .where(Annotator.project_id == project.id)
        .order_by(Annotator.id)
    )


def _user_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "active": bool(row.active),
        "password": bool(row.password),
        "tokens": int(row.tokens),
        "labelstudio_user": row.labelstudio_user,
    }


def list_users(project: Project) -> list[dict[str, Any]]:
    """Every account and answering name: role, active, has a password, live tokens, LS link."""
    with project.store.session() as session:
        return [_user_dict(row) for row in session.execute(_users_query(project))]


def get_user(project: Project, name: str) -> dict[str, Any]:
    """One account as `list_users` shows it."""
    with project.store.session() as session:
        row = session.execute(_users_query(project).where(Annotator.name == name)).first()
    if row is None:
        raise NotFoundError(f"no user named {name!r}")
    return _user_dict(row)


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


DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$")
DURATION_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
MAX_TOKEN_DAYS = 3650


def parse_duration(text: str) -> timedelta:
    """'90m', '12h', '30d', '2w' as a timedelta (at most ten years)."""
    found = DURATION.match(str(text))
    if found is None:
        raise InputError("a duration looks like 90m, 12h, 30d or 2w", value=text)
    seconds = int(found.group(1)) * DURATION_UNITS[found.group(2)]
    if not 0 < seconds <= MAX_TOKEN_DAYS * 86_400:
        raise InputError(f"a duration lies between 1m and {MAX_TOKEN_DAYS}d", value=text)
    return timedelta(seconds=seconds)


def new_token(
    project: Project, name: str, *, expires: str | timedelta | None = None
) -> dict[str, Any]:
    """A new API token for a user, valid for `expires` ('30d'; None: until revoked).

    Only its SHA-256 is stored, so the token is shown once.
    """
    lifetime = parse_duration(expires) if isinstance(expires, str) else expires
    expires_at = _now() + lifetime if lifetime is not None else None
    token = "ll_" + secrets.token_urlsafe(32)
    with _writing(project) as session:
        row = _annotator(session, project, name)
        session.add(ApiToken(annotator_id=row.id, token_hash=_digest(token), expires_at=expires_at))
    return {"name": name, "token": token, "expires_at": expires_at}


def create_token(project: Project, name: str, *, expires: str | timedelta | None = None) -> str:
    """A new API token for a user (see `new_token`)."""
    return new_token(project, name, expires=expires)["token"]


_PRINCIPAL = select(Annotator.id, Annotator.name, Annotator.role).where(
    Annotator.project_id == bindparam("project"), Annotator.active.is_(True)
)
_TOKEN_PRINCIPAL = (
    _PRINCIPAL.add_columns(ApiToken.expires_at)
    .join(ApiToken, ApiToken.annotator_id == Annotator.id)
    .where(
        ApiToken.token_hash == bindparam("digest"),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > bindparam("now")),
    )
)
_SESSION_PRINCIPAL = (
    _PRINCIPAL.add_columns(ReviewSession.csrf_token)
    .join(ReviewSession, ReviewSession.annotator_id == Annotator.id)
    .where(
        ReviewSession.token_hash == bindparam("digest"),
        ReviewSession.expires_at > bindparam("now"),
    )
)
_ACCOUNTS_VERSION = select(ProjectRow.accounts_version).where(ProjectRow.id == bindparam("project"))


@dataclass(frozen=True)
class _Cached:
    principal: Principal
    version: int  # the project's accounts version when the token was looked up
    until: float  # monotonic time after which the token is looked up again
    expires: float | None  # the token's own expiry (epoch seconds)


class _TokenCache:
    """Recently seen API tokens → their account, valid while the project's accounts are as seen.

    Scripts send a token with every request; the lookup would otherwise be a store round trip of
    its own before each one. An entry is trusted while the project's `accounts_version` is the
    one it was looked up under; that version is re-read from the store at most every
    `ACCOUNTS_CHECK_S` seconds, and this process learns at once of the changes it makes itself.
    So a disabled account or a revoked token stops working at once through this process and
    within `ACCOUNTS_CHECK_S` seconds when another process (the CLI) made the change. Expired
    tokens are refused from memory too; unknown tokens are never cached.
    """

    def __init__(self, max_size: int = 10_000) -> None:
        self.max_size = max_size
        self.entries: dict[tuple[int, str], _Cached] = {}
        self.versions: dict[int, tuple[int, float]] = {}  # project → (version, when read)
        self.lock = threading.Lock()

    def version(self, project_id: int) -> int | None:
        """The project's accounts version if read in the last `ACCOUNTS_CHECK_S` seconds."""
        known = self.versions.get(project_id)
        if known is None or known[1] + ACCOUNTS_CHECK_S < time.monotonic():
            return None
        return known[0]

    def saw_version(self, project_id: int, version: int) -> None:
        """Versions only grow: a reader that saw an older one cannot bring it back."""
        with self.lock:
            known = self.versions.get(project_id)
            if known is None or version >= known[0]:
                self.versions[project_id] = (version, time.monotonic())

    def get(self, key: tuple[int, str]) -> Principal | None:
        found = self.entries.get(key)
        if found is None or found.version != self.version(key[0]):
            return None
        if found.until < time.monotonic() or (
            found.expires is not None and found.expires <= time.time()
        ):
            return None
        return found.principal

    def put(self, key: tuple[int, str], cached: _Cached) -> None:
        with self.lock:
            if len(self.entries) >= self.max_size:
                self.entries.clear()
            self.entries[key] = cached


ACCOUNTS_CHECK_S = 1.0
TOKEN_CACHE_S = 60.0
_TOKENS: weakref.WeakKeyDictionary[Store, _TokenCache] = weakref.WeakKeyDictionary()


def _token_cache(project: Project) -> _TokenCache:
    with _LOCKS_GUARD:
        return _TOKENS.get(project.store) or _TOKENS.setdefault(project.store, _TokenCache())


def cached_principal(project: Project, token: str) -> Principal | None:
    """The account of an API token found in the cache (no store access; None: ask the store)."""
    return _token_cache(project).get((project.id, _digest(token)))


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; the store only holds UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def principal_for_token(project: Project, token: str) -> Principal | None:
    """The live account of an unexpired API token, or None."""
    key = (project.id, _digest(token))
    cache = _token_cache(project)
    principal = cache.get(key)
    if principal is not None:
        return principal
    params = {"project": project.id, "digest": key[1], "now": _now()}
    with project.store.engine.connect() as conn:  # indexed reads, no ORM session
        version = cache.version(project.id)
        if version is None:
            version = conn.execute(_ACCOUNTS_VERSION, params).scalar_one()
            cache.saw_version(project.id, version)
        row = conn.execute(_TOKEN_PRINCIPAL, params).first()
    if row is None:
        return None
    principal = Principal(row.id, row.name, row.role)
    expires = _utc(row.expires_at)
    cache.put(
        key,
        _Cached(
            principal,
            version,
            time.monotonic() + TOKEN_CACHE_S,
            expires.timestamp() if expires is not None else None,
        ),
    )
    return principal


def create_session(project: Project, principal: Principal) -> tuple[str, str]:
    """A browser session: (cookie token, CSRF token). The store keeps the cookie's hash."""
    if principal.is_service:
        raise ForbiddenError("service accounts have no browser sessions")
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
    params = {"project": project.id, "digest": _digest(token), "now": _now()}
    with project.store.engine.connect() as conn:
        row = conn.execute(_SESSION_PRINCIPAL, params).first()
    return (Principal(row[0], row[1], row[2]), row[3]) if row is not None else None


def end_session(project: Project, token: str) -> None:
    with _writing(project) as session:
        session.execute(delete(ReviewSession).where(ReviewSession.token_hash == _digest(token)))


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
        if not math.isfinite(value) or (self.whole and value != int(value)):
            return False
        return self.low <= value and (value < self.high if self.high_open else value <= self.high)

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


#: The range of each queue setting. A lease shorter than a minute would run out while a person
#: reads an item and hand it to someone else (the double assignment leases exist to prevent);
#: longer than a day, an abandoned lease keeps an item from everyone for more than a working day.
SETTING_BOUNDS: dict[str, Bounds] = {
    "overlap": Bounds(1, 100, whole=True),
    "overlap_share": Bounds(0.0, 1.0),
    "gold_rate": Bounds(0.0, 1.0, high_open=True),  # 1 would serve nothing but gold checks
    "audit_rate": Bounds(0.0, 1.0),
    "lease_minutes": Bounds(1.0, 24 * 60, unit=" of minutes"),
}


def check_setting(name: str, value: Any) -> float | int:
    """A queue setting's value, checked against `SETTING_BOUNDS` (InputError naming the range)."""
    return SETTING_BOUNDS[name].check(name, value)


def queue_settings(project: Project) -> dict[str, Any]:
    return _queue_settings_of(project.settings)


def set_queue_settings(project: Project, **values: Any) -> dict[str, Any]:
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


def apply_overlap(project: Project) -> int:
    """Set `answers_needed` of review and active tasks from the overlap settings.

    Call after routing or selection adds tasks. A task is done once it has `answers_needed`
    answers plus one per live rejection (`task_done`): the rejections are counted on the task,
    so re-applying the overlap never drops the extra answer a rejection asked for. Only tasks
    whose values change are written (the server applies it at every start: rewriting a million
    unchanged rows would bloat the store). Returns the number of tasks changed.
    """
    settings = queue_settings(project)
    needed = case(
        (_overlap_selected(float(settings["overlap_share"])), int(settings["overlap"])), else_=1
    )
    done = task_done(ReviewTask.answers, ReviewTask.rejections, needed)
    with _writing(project) as session:
        result = session.execute(
            update(ReviewTask)
            .where(
                ReviewTask.project_id == project.id,
                ReviewTask.queue.in_(("review", "active")),
                or_(ReviewTask.answers_needed != needed, ReviewTask.done != done),
            )
            .values(answers_needed=needed, done=done)
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
    with _writing(project) as session:
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
    if queue != "audit":
        apply_overlap(project)
    return added


def sample_audit(project: Project, rate: float | None = None, random_state: Any = None) -> int:
    """Queue a random share of auto-accepted items for audit (up to `rate` of all of them).

    Idempotent: a second call with the same rate adds only what new auto-accepted items need.
    """
    if rate is None:
        rate = queue_settings(project)["audit_rate"]
    rate = check_setting("audit_rate", rate)
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
# The serving path (next item, answer, undo) runs one short transaction per request, built from
# SQLAlchemy Core statements that each touch a handful of rows through an index: its cost does
# not grow with the store. `bench/bench_server.py` measures it with 1,000,000 queued items.
_TASKS, _ITEMS, _PROJECTS = ReviewTask.__table__, Item.__table__, ProjectRow.__table__
_GOLD_LEASES = GoldLease.__table__
_ANNOTATIONS, _PREDICTIONS = Annotation.__table__, Prediction.__table__
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


@contextmanager
def _transaction(project: Project) -> Iterator[Connection]:
    """One Core transaction (behind the SQLite writer lock): committed on success."""
    with _write_lock(project), project.store.engine.begin() as conn:
        yield conn


def _queue_settings_of(settings: dict[str, Any]) -> dict[str, Any]:
    """The queue settings stored in a project's settings; a value out of range (stored before
    ranges were checked) reads as the default."""
    stored = settings.get("review") or {}
    merged = dict(DEFAULT_SETTINGS)
    for name, value in stored.items():
        bounds = SETTING_BOUNDS.get(name)
        if bounds is not None and bounds.holds(value):
            merged[name] = value
    return merged


def _settings_in(conn: Connection, project: Project) -> dict[str, Any]:
    return _queue_settings_of(project.labels_and_settings(conn)[1])


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
#: Everything an answer reads, in one statement: the item's state, the project's label set and
#: settings, the open task whose lease names the caller, and whether a gold check was served to
#: the caller. The item's row is locked (PostgreSQL; SQLite has one writer), so that answers to
#: one item take turns and each sees the ones before it: the same answer sent twice at once is
#: taken once.
_ANSWER_CONTEXT = (
    select(
        *ITEM_STATE_COLUMNS,
        _PROJECTS.c.labels,
        _PROJECTS.c.settings,
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
    )
    .join_from(_ITEMS, _PROJECTS, _PROJECTS.c.id == _ITEMS.c.project_id)
    .where(_ITEMS.c.id == bindparam("item"))
    .with_for_update(of=_ITEMS)
)


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
        _ITEMS.c.split == GOLD,
        ~_answered_by(_ITEMS.c.id),
        _ITEMS.c.id.not_in(bindparam("exclude", expanding=True)),
    )
    .order_by(_ITEMS.c.id)
    .limit(32)
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


def _payload(conn: Connection, item_id: int, queue: str) -> dict[str, Any]:
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
        "queue": "review" if queue == "gold" else queue,
    }


def _gold_item(conn: Connection, params: dict[str, Any]) -> int | None:
    candidates = list(conn.scalars(_GOLD, params))
    return random.choice(candidates) if candidates else None


def next_item(
    project: Project, annotator_id: int, *, exclude: Sequence[int] = ()
) -> dict[str, Any] | None:
    """The caller's next item (leased to them), or None when nothing is left for them.

    A lease the caller already holds is served again first (a reload shows the same item),
    gold check or not; `exclude` lists item ids the caller already has on screen or prefetched.
    """
    with _transaction(project) as conn:
        return _next_in(conn, project, annotator_id, exclude, _settings_in(conn, project))


def _lease_params(
    project: Project, annotator_id: int, settings: dict[str, Any], **more: Any
) -> dict[str, Any]:
    now = _now()
    expires = now + timedelta(minutes=float(settings["lease_minutes"]))
    return {"project": project.id, "who": annotator_id, "now": now, "expires": expires, **more}


def _lease_gold(conn: Connection, item_id: int, params: dict[str, Any]) -> None:
    """Serve a gold check to `params["who"]`: a lease of their own, taken or renewed."""
    conn.execute(_LEASE_GOLD[conn.dialect.name], {**params, "item": item_id})


def _next_in(
    conn: Connection,
    project: Project,
    annotator_id: int,
    exclude: Sequence[int],
    settings: dict[str, Any],
) -> dict[str, Any] | None:
    """`next_item` inside the caller's transaction."""
    exclude = [int(i) for i in exclude][:MAX_EXCLUDE]
    params = _lease_params(project, annotator_id, settings, exclude=exclude)
    held = conn.execute(_open_tasks(True, bool(exclude)), params).first()
    if held is not None:
        conn.execute(_RENEW, {**params, "task": held.id})
        return _payload(conn, held.item_id, held.queue)
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
            _lease_gold(conn, gold, params)
            return _payload(conn, gold, "gold")
    task = conn.execute(_take(bool(exclude)), params).first()
    return _payload(conn, task.item_id, task.queue) if task is not None else None


def release_leases(project: Project, annotator_id: int) -> int:
    """Give back every lease a person holds, gold checks included (logout, or leaving the
    review page); they can no longer answer those items until they are served them again."""
    with _transaction(project) as conn:
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


def _check_time(time_spent_s: float | None) -> float | None:
    if time_spent_s is None:
        return None
    value = float(time_spent_s)
    if not math.isfinite(value) or not 0.0 <= value <= 86_400.0:
        raise InputError("time_spent_s must lie between 0 and 86400 seconds", value=time_spent_s)
    return value


def _answer_queue(conn: Connection, who: Principal, item: Any, action: str) -> str | None:
    """The queue an answer counts for; ConflictError when the caller may not answer the item.

    People answer what they hold: an open task whose lease names them (a lease that ran out
    still counts until someone else takes the task, so a slow reader's answer is not thrown
    away), or a gold check served to them. An admin may also answer an item directly when
    nobody else holds it: the answer counts for its first open task whose lease is free; on an
    item without an open task only a label is taken (a rejection there would leave the item in
    review with nobody asked). A task someone else holds is never taken from them. Everything
    else is refused with the same error, gold check or not, so a refusal tells nothing about
    the item.
    """
    if item.split == GOLD:
        if item.gold_held:
            return "gold"
    elif item.held_queue is not None:
        return item.held_queue
    elif who.is_admin:
        task = conn.execute(OPEN_TASK, {"item": item.id, "who": who.id, "now": _now()}).first()
        if task is None and action in LABELING_ACTIONS:
            return None
        if task is not None and task.free:
            return task.queue
    raise ConflictError(f"item {item.id} is not leased to you; answer the items you are served")


def submit(
    project: Project,
    who: Principal,
    item_id: int,
    *,
    action: str,
    label: str | None = None,
    time_spent_s: float | None = None,
    then_next: bool = False,
    exclude: Sequence[int] = (),
) -> dict[str, Any]:
    """Record a person's answer on an item they hold (see `_answer_queue`), and free its lease.

    One transaction: the answer, the item's new state, the task's count and the lease; a
    refusal changes nothing. With `then_next` the same transaction also serves the caller's
    next item (as `next_item` with `exclude`, under the key "next"): one round trip per answer
    for a review page or a script.
    """
    if action not in REVIEW_ACTIONS:
        raise InputError(f"action must be one of {', '.join(REVIEW_ACTIONS)}, not {action!r}")
    spent = _check_time(time_spent_s)
    with _transaction(project) as conn:
        item = conn.execute(_ANSWER_CONTEXT, {"item": item_id, "who": who.id}).first()
        if item is None or item.project_id != project.id:
            raise NotFoundError(f"no item with id {item_id}")
        state = labels_and_settings_of(item)
        if label is not None:  # bad input whatever the item, before the item is looked at
            checked_label(state[0], label)
        queue = _answer_queue(conn, who, item, action)
        answer = project.answer_in(
            conn,
            item_id,
            action=action,
            label=label,
            annotator_id=who.id,
            time_spent_s=spent,
            queue=queue,
            source="review",
            state=state,
            item=item,
        )
        # Checked on the item's answers, the new one included (a refusal rolls it all back).
        if any(
            a.annotator_id == who.id and a.action != "skip" and a.id != answer.annotation_id
            for a in answer.live
        ):
            raise ConflictError(f"you already answered item {item_id}; undo that answer first")
        if queue == "gold":
            conn.execute(_RETURN_GOLD, {"item": item_id, "who": who.id})
        result: dict[str, Any] = {
            "annotation_id": answer.annotation_id,
            "item_id": item_id,
            "action": action,
        }
        if then_next:
            settings = _queue_settings_of(state[1])
            result["next"] = _next_in(conn, project, who.id, exclude, settings)
    return result


def undo(project: Project, who: Principal, annotation_id: int | None = None) -> dict[str, Any]:
    """Withdraw the caller's last answer (or a given one) and give the item back to them.

    The caller gets the lease back, so that they can answer again: on a gold check always, on
    a task when nobody else took it meanwhile (otherwise answering it again is refused, as for
    any item not leased to them). Returns the item as `next_item` would, so the review page can
    show it again.
    """
    params: dict[str, Any] = {"project": project.id, "who": who.id, "annotation": annotation_id}
    query = _MY_LAST_ANSWER if annotation_id is None else _ANSWER_BY_ID
    with _transaction(project) as conn:
        row = conn.execute(query, params).first()
        if row is None:
            raise NotFoundError("there is no answer to undo")
        if row.annotator_id != who.id and not who.is_admin:
            raise ForbiddenError("you can only undo your own answers")
        state = project.labels_and_settings(conn)
        project.undo_in(conn, row.id, state=state)
        lease = _lease_params(project, who.id, _queue_settings_of(state[1]), item=row.item_id)
        if row.queue == "gold":
            _lease_gold(conn, row.item_id, lease)
        else:
            give_back = _GIVE_BACK
            if row.queue is not None:
                give_back = give_back.where(_TASKS.c.queue == row.queue)
            conn.execute(give_back, lease)
        item = _payload(conn, row.item_id, row.queue or "review")
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


def queue_counts(project: Project) -> dict[str, dict[str, int]]:
    """Open, done, leased and overlap tasks and answers per queue."""
    with project.store.session() as session:
        return _queue_counts(session, project)


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
    """Progress, review rate, auto-accepted accuracy, agreement, per-annotator work, plots
    (the calibration plots redrawn when they do not show the calibration in force)."""
    from .workflows.calibrate import current_plots
    from .workflows.learn import predictor_title

    stats = project.stats()
    calibration_plots = current_plots(project)
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
        "calibration_plots": calibration_plots,
        "predictor": predictor_title(stats.get("active_predictor")),
    }
