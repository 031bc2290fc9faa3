"""The project queries: the project row and its settings, items by uid, imports, the counts
behind `Project.stats`, and the audit answers behind its accuracy estimate."""

from __future__ import annotations

from sqlalchemy.orm import Session

from .models import ProjectRow


def project_row(session: Session, project_id: int) -> ProjectRow:
    """The project's row (name, task, labels, settings); it exists while the project is open."""
    return session.get_one(ProjectRow, project_id)
