"""The account queries: annotators, API tokens (their hashes), browser sessions, and the
project's accounts version that token caches compare.

The token and session lookups run on every request of the review API, so they are prebuilt Core
statements read through a plain connection (indexed, no ORM session). Nothing here checks a
password or decides who may do what: `labelloop.review.accounts` does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from .db import Record, rowcount
from .models import Annotator, ApiToken, ProjectRow, ReviewSession


def annotator_named(session: Session, project_id: int, name: str) -> Annotator | None:
    """The project's annotator row of that name (a login, or a name that only answered)."""
    return session.scalar(
        select(Annotator).where(Annotator.project_id == project_id, Annotator.name == name)
    )


def annotator_id_named(session: Session, project_id: int, name: str) -> int | None:
    """The id of the project's annotator of that name, or None."""
    return session.scalar(
        select(Annotator.id).where(Annotator.project_id == project_id, Annotator.name == name)
    )


def add_annotator(session: Session, project_id: int, name: str, **values: Any) -> Annotator:
    """A new annotator row (flushed: its id is known)."""
    row = Annotator(project_id=project_id, name=name, **values)
    session.add(row)
    session.flush()
    return row


def linked_to(
    session: Session, project_id: int, labelstudio_user: int, other_than: int
) -> str | None:
    """The name of another account already linked to that Label Studio user, or None."""
    return session.scalar(
        select(Annotator.name).where(
            Annotator.project_id == project_id,
            Annotator.labelstudio_user == labelstudio_user,
            Annotator.id != other_than,
        )
    )


def bump_accounts_version(session: Session, project_id: int) -> int:
    """Raise the project's accounts version (an account changed); returns the new version."""
    return session.execute(
        update(ProjectRow)
        .where(ProjectRow.id == project_id)
        .values(accounts_version=ProjectRow.accounts_version + 1)
        .returning(ProjectRow.accounts_version)
    ).scalar_one()


def end_sessions(session: Session, annotator_id: int) -> int:
    """End every browser session of an account; returns how many there were."""
    return rowcount(
        session.execute(delete(ReviewSession).where(ReviewSession.annotator_id == annotator_id))
    )


def delete_tokens(session: Session, annotator_id: int) -> int:
    """Delete every API token of an account; returns how many there were."""
    return rowcount(session.execute(delete(ApiToken).where(ApiToken.annotator_id == annotator_id)))


def users(
    session: Session, project_id: int, now: datetime, name: str | None = None
) -> list[Record]:
    """The project's accounts (or the one named), by id: id, name, role, active, labelstudio
    user, whether it has a password, and its tokens live at `now`."""
    live = or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now)
    tokens = (
        select(func.count())
        .where(ApiToken.annotator_id == Annotator.id, live)
        .correlate(Annotator)
        .scalar_subquery()
    )
    query = (
        select(
            Annotator.id,
            Annotator.name,
            Annotator.role,
            Annotator.active,
            Annotator.labelstudio_user,
            Annotator.password_hash.is_not(None).label("password"),
            tokens.label("tokens"),
        )
        .where(Annotator.project_id == project_id)
        .order_by(Annotator.id)
    )
    if name is not None:
        query = query.where(Annotator.name == name)
    return list(session.execute(query))


def login_of(session: Session, project_id: int, name: str) -> Record | None:
    """(id, name, role, password_hash) of the active account of that name, or None."""
    return session.execute(
        select(Annotator.id, Annotator.name, Annotator.role, Annotator.password_hash).where(
            Annotator.project_id == project_id,
            Annotator.name == name,
            Annotator.active.is_(True),
        )
    ).first()


def add_token(
    session: Session, annotator_id: int, digest: str, expires_at: datetime | None
) -> None:
    """Store an API token by its hash (the token itself is never stored)."""
    session.add(ApiToken(annotator_id=annotator_id, token_hash=digest, expires_at=expires_at))


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


def accounts_version(conn: Connection, project_id: int) -> int:
    """The project's accounts version as stored (raised by every account change)."""
    return conn.execute(_ACCOUNTS_VERSION, {"project": project_id}).scalar_one()


def token_owner(conn: Connection, project_id: int, digest: str, now: datetime) -> Record | None:
    """(id, name, role, expires_at) of the active account holding the API token of that hash,
    live at `now`, or None."""
    params = {"project": project_id, "digest": digest, "now": now}
    return conn.execute(_TOKEN_PRINCIPAL, params).first()


def session_owner(conn: Connection, project_id: int, digest: str, now: datetime) -> Record | None:
    """(id, name, role, csrf_token) of the active account of the browser session of that
    hash, live at `now`, or None."""
    params = {"project": project_id, "digest": digest, "now": now}
    return conn.execute(_SESSION_PRINCIPAL, params).first()


def add_session(
    session: Session, annotator_id: int, digest: str, csrf: str, now: datetime, expires: datetime
) -> None:
    """Store a browser session by its cookie's hash, dropping the sessions expired by `now`."""
    session.execute(delete(ReviewSession).where(ReviewSession.expires_at < now))
    session.add(
        ReviewSession(
            annotator_id=annotator_id,
            token_hash=digest,
            csrf_token=csrf,
            created_at=now,
            expires_at=expires,
        )
    )


def end_session(session: Session, digest: str) -> None:
    """End the browser session of that cookie hash (logout)."""
    session.execute(delete(ReviewSession).where(ReviewSession.token_hash == digest))
