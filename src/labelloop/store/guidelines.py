"""The guidelines' named queries: the version in force, the history, a new version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from .models import GuidelineVersion


@dataclass(frozen=True, slots=True)
class Guidelines:
    """A stored version of the guidelines as plain values (read after its transaction has
    ended); `to_dict` is its JSON form, what `guidelines show --json` sends."""

    version: int
    text: str  # Markdown
    label_descriptions: dict[str, str]
    author: str | None
    source: str | None  # the file it came from, or how it was set
    created_at: datetime | None

    @classmethod
    def of(cls, row: GuidelineVersion) -> Guidelines:
        return cls(
            version=row.version,
            text=row.text,
            label_descriptions=dict(row.label_descriptions or {}),
            author=row.author,
            source=row.source,
            created_at=row.created_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "text": self.text,
            "label_descriptions": dict(self.label_descriptions),
            "author": self.author,
            "source": self.source,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def latest_guidelines(session: Session, project_id: int) -> Guidelines | None:
    """The version in force (the newest), or None when the project has none."""
    row = session.scalar(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project_id)
        .order_by(GuidelineVersion.version.desc())
        .limit(1)
    )
    return None if row is None else Guidelines.of(row)


def guideline_history(session: Session, project_id: int) -> list[Guidelines]:
    """Every version, oldest first."""
    rows = session.scalars(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project_id)
        .order_by(GuidelineVersion.version)
    )
    return [Guidelines.of(row) for row in rows]


def add_guidelines(
    session: Session,
    project_id: int,
    *,
    text: str,
    label_descriptions: dict[str, str],
    author: str | None,
    source: str | None,
) -> Guidelines:
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
    return Guidelines.of(row)


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
