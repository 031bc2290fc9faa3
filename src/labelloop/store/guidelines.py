"""The guidelines' named queries: the version in force, the history, a new version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from .models import GuidelineVersion


def guideline_dict(row: GuidelineVersion) -> dict[str, Any]:
    return {
        "version": row.version,
        "text": row.text,
        "label_descriptions": dict(row.label_descriptions or {}),
        "author": row.author,
        "source": row.source,
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }


def latest_guidelines(session: Session, project_id: int) -> dict[str, Any] | None:
    """The version in force (the newest), or None when the project has none."""
    row = session.scalar(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project_id)
        .order_by(GuidelineVersion.version.desc())
        .limit(1)
    )
    return None if row is None else guideline_dict(row)


def guideline_history(session: Session, project_id: int) -> list[dict[str, Any]]:
    """Every version, oldest first."""
    rows = session.scalars(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project_id)
        .order_by(GuidelineVersion.version)
    )
    return [guideline_dict(row) for row in rows]


def add_guidelines(
    session: Session,
    project_id: int,
    *,
    text: str,
    label_descriptions: dict[str, str],
    author: str | None,
    source: str | None,
) -> dict[str, Any]:
    """Store a new version (numbered after the newest) and return it."""
    newest = session.scalar(
        select(func.max(GuidelineVersion.version)).where(GuidelineVersion.project_id == project_id)
    )
    row = GuidelineVersion(
        project_id=project_id,
        version=(newest or 0) + 1,
        text=text,
        label_descriptions=label_descriptions,
        author=author,
        source=source,
    )
    session.add(row)
    session.flush()
    return guideline_dict(row)


def description_in_force(
    conn: Connection | Session, project_id: int, label: str
) -> tuple[str | None, int | None]:
    """(description of `label`, version) of the guidelines in force; (None, None) without."""
    row = conn.execute(
        select(GuidelineVersion.label_descriptions, GuidelineVersion.version)
        .where(GuidelineVersion.project_id == project_id)
        .order_by(GuidelineVersion.version.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, None
    return (row.label_descriptions or {}).get(label), row.version
