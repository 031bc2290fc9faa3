"""Accounts: people and machine callers, their passwords, API tokens and browser sessions.

A person logs in with a password (browser sessions) or sends an API token; a `service` account
(a machine caller such as Label Studio) has no password, only tokens, and only the Label Studio
ML-backend routes accept it. Every account change (disable, enable, password, revoke, link)
raises the project's `accounts_version`: token caches compare it, so a change works at once in
the process that made it and within `ACCOUNTS_CHECK_S` elsewhere.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import unicodedata
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import ConflictError, ForbiddenError, InputError, NotFoundError
from ..store import Annotator, Session, Store
from ..store import accounts as store
from ..vocabulary import Role
from . import common
from .common import ProjectScope, Result, writing
from .queues import release_leases

ROLES = tuple(Role)
MIN_PASSWORD = 8
MAX_NAME = 200
MAX_LABELSTUDIO_USER = 2**31 - 1  # the store's integer column
SESSION_HOURS = 12
PASSWORD_HASHER = PasswordHasher()
_dummy_hashes: dict[int, str] = {}


@dataclass(frozen=True)
class Principal:
    """Who is calling: an annotator, an admin or a service account of this project."""

    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_reviewer(self) -> bool:
        """May adjudicate: reviewers and admins."""
        return self.role in (Role.REVIEWER, Role.ADMIN)

    @property
    def is_service(self) -> bool:
        return self.role == Role.SERVICE


@dataclass(frozen=True, slots=True)
class Account(Result):
    """One account (or name that answered) as admins see it (`list_users`, `get_user`);
    `to_dict` is what `user list --json` and the API send. Never the password itself."""

    id: int
    name: str
    role: str
    active: bool
    password: bool  # whether it has one (a service account never does)
    tokens: int  # live API tokens
    labelstudio_user: int | None  # the Label Studio user whose webhook answers it is credited


@dataclass(frozen=True, slots=True)
class Revoked(Result):
    """What `revoke` ended: the account's API tokens and browser sessions."""

    name: str
    tokens: int
    sessions: int


@dataclass(frozen=True, slots=True)
class IssuedToken(Result):
    """A new API token, shown this once (only its SHA-256 is stored)."""

    name: str
    token: str
    expires_at: datetime | None  # None: until revoked


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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
    project: ProjectScope,
    name: str,
    *,
    role: str = Role.ANNOTATOR,
    password: str | None = None,
    labelstudio_user: int | None = None,
) -> Account:
    """Create an account; an annotator row made by earlier CLI answers is given the login.

    People get a password; a `service` account gets none (it signs in with API tokens only).
    """
    name = " ".join(check_user_name(name).split())
    _check_role(role)
    if role == Role.SERVICE and password is not None:
        raise InputError("a service account has no password; give it an API token")
    if password is not None:
        _check_password(password)
    hashed = hash_password(password) if password is not None else None
    with writing(project) as session:
        row = store.annotator_named(session, project.id, name)
        if row is not None and (row.password_hash is not None or row.role != Role.ANNOTATOR):
            raise ConflictError(f"a user named {name!r} already exists")
        if row is None:
            row = store.add_annotator(session, project.id, name)
        row.role, row.password_hash, row.active = role, hashed, True
        if labelstudio_user is not None:
            _link(session, project, row, labelstudio_user)
    return get_user(project, name)


def _link(session: Session, project: ProjectScope, row: Annotator, labelstudio_user: int) -> None:
    if not 0 <= labelstudio_user <= MAX_LABELSTUDIO_USER:
        raise InputError("a Label Studio user id is a number from 0 to 2^31 - 1")
    taken = store.linked_to(session, project.id, labelstudio_user, row.id)
    if taken is not None:
        raise ConflictError(f"Label Studio user {labelstudio_user} is linked to {taken!r}")
    row.labelstudio_user = labelstudio_user


def _annotator(session: Session, project: ProjectScope, name: str) -> Annotator:
    row = store.annotator_named(session, project.id, name)
    if row is None:
        raise NotFoundError(f"no user named {name!r}")
    return row


@contextmanager
def _changing_account(project: ProjectScope, name: str) -> Iterator[tuple[Session, Annotator]]:
    """One account changed in one transaction; token caches learn of it (see `_TokenCache`)."""
    with writing(project) as session:
        row = _annotator(session, project, name)
        yield session, row
        version = store.bump_accounts_version(session, project.id)
    _token_cache(project).saw_version(project.id, version)  # committed: at once, here


def set_password(project: ProjectScope, name: str, password: str) -> None:
    """A new password; the account's browser sessions end (its API tokens stay: `revoke`)."""
    _check_password(password)
    with _changing_account(project, name) as (session, row):
        if row.role == Role.SERVICE:
            raise InputError("a service account has no password; give it an API token")
        row.password_hash = hash_password(password)
        store.end_sessions(session, row.id)


def set_active(project: ProjectScope, name: str, active: bool) -> Account:
    """Disable an account (its sessions end, its tokens and leases stop at once) or enable it.

    Tokens of a disabled account are kept and work again once it is enabled; `revoke` ends them.
    """
    with _changing_account(project, name) as (session, row):
        row.active = bool(active)
        if not active:
            store.end_sessions(session, row.id)
        annotator_id = row.id
    if not active:
        release_leases(project, annotator_id)
    return get_user(project, name)


def revoke(project: ProjectScope, name: str) -> Revoked:
    """Delete every API token and end every browser session of an account."""
    with _changing_account(project, name) as (session, row):
        tokens = store.delete_tokens(session, row.id)
        sessions = store.end_sessions(session, row.id)
    return Revoked(name=name, tokens=tokens, sessions=sessions)


def link_labelstudio(project: ProjectScope, name: str, labelstudio_user: int | None) -> Account:
    """Credit the answers a Label Studio user sends by webhook to this account (None: unlink)."""
    with _changing_account(project, name) as (session, row):
        if labelstudio_user is None:
            row.labelstudio_user = None
        else:
            _link(session, project, row, int(labelstudio_user))
    return get_user(project, name)


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        name=row.name,
        role=row.role,
        active=bool(row.active),
        password=bool(row.password),
        tokens=int(row.tokens),
        labelstudio_user=row.labelstudio_user,
    )


def list_users(project: ProjectScope) -> list[Account]:
    """Every account and answering name: role, active, has a password, live tokens, LS link."""
    with project.store.session() as session:
        return [_account(row) for row in store.users(session, project.id, common.now())]


def get_user(project: ProjectScope, name: str) -> Account:
    """One account as `list_users` shows it."""
    with project.store.session() as session:
        rows = store.users(session, project.id, common.now(), name)
    if not rows:
        raise NotFoundError(f"no user named {name!r}")
    return _account(rows[0])


def authenticate(project: ProjectScope, name: str, password: str) -> Principal | None:
    """The account for a name and password, or None (same work whether or not the name exists)."""
    with project.store.session() as session:
        row = store.login_of(session, project.id, name)
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
    project: ProjectScope, name: str, *, expires: str | timedelta | None = None
) -> IssuedToken:
    """A new API token for a user, valid for `expires` ('30d'; None: until revoked).

    Only its SHA-256 is stored, so the token is shown once.
    """
    lifetime = parse_duration(expires) if isinstance(expires, str) else expires
    expires_at = common.now() + lifetime if lifetime is not None else None
    token = "ll_" + secrets.token_urlsafe(32)
    with writing(project) as session:
        row = _annotator(session, project, name)
        store.add_token(session, row.id, _digest(token), expires_at)
    return IssuedToken(name=name, token=token, expires_at=expires_at)


def create_token(
    project: ProjectScope, name: str, *, expires: str | timedelta | None = None
) -> str:
    """A new API token for a user (see `new_token`)."""
    return new_token(project, name, expires=expires).token


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
_TOKENS_GUARD = threading.Lock()


def _token_cache(project: ProjectScope) -> _TokenCache:
    with _TOKENS_GUARD:
        return _TOKENS.get(project.store) or _TOKENS.setdefault(project.store, _TokenCache())


def cached_principal(project: ProjectScope, token: str) -> Principal | None:
    """The account of an API token found in the cache (no store access; None: ask the store)."""
    return _token_cache(project).get((project.id, _digest(token)))


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; the store only holds UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def principal_for_token(project: ProjectScope, token: str) -> Principal | None:
    """The live account of an unexpired API token, or None."""
    key = (project.id, _digest(token))
    cache = _token_cache(project)
    principal = cache.get(key)
    if principal is not None:
        return principal
    with project.store.engine.connect() as conn:  # indexed reads, no ORM session
        version = cache.version(project.id)
        if version is None:
            version = store.accounts_version(conn, project.id)
            cache.saw_version(project.id, version)
        row = store.token_owner(conn, project.id, key[1], common.now())
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


def create_session(project: ProjectScope, principal: Principal) -> tuple[str, str]:
    """A browser session: (cookie token, CSRF token). The store keeps the cookie's hash."""
    if principal.is_service:
        raise ForbiddenError("service accounts have no browser sessions")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = common.now()
    with writing(project) as session:
        expires = now + timedelta(hours=SESSION_HOURS)
        store.add_session(session, principal.id, _digest(token), csrf, now, expires)
    return token, csrf


def session_principal(project: ProjectScope, token: str) -> tuple[Principal, str] | None:
    """The account and CSRF token of a live browser session."""
    with project.store.engine.connect() as conn:
        row = store.session_owner(conn, project.id, _digest(token), common.now())
    return (Principal(row[0], row[1], row[2]), row[3]) if row is not None else None


def end_session(project: ProjectScope, token: str) -> None:
    with writing(project) as session:
        store.end_session(session, _digest(token))
