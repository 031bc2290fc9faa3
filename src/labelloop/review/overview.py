"""What people and admins see of the work: the project, their own answers, the dashboard."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from ..store import GOLD, Annotation, Annotator, Item, ProjectRow, ReviewTask
from ..store.guidelines import latest_guidelines
from ..vocabulary import Action, Queue
from . import common
from .common import ProjectScope
from .queues import queue_settings


def project_info(project: ProjectScope) -> dict[str, Any]:
    """What the review page needs once: the task, the ordered label set, the labels'
    descriptions and the guidelines in force (Markdown; None when there are none)."""
    with project.store.session() as session:
        row = session.get_one(ProjectRow, project.id)
        guide = latest_guidelines(session, project.id) or {}
        return {
            "name": row.name,
            "task": row.task,
            "labels": list(row.labels),
            "label_descriptions": guide.get("label_descriptions", {}),
            "guidelines": guide.get("text") or None,
            "guidelines_version": guide.get("version"),
        }


def annotations_of(
    project: ProjectScope, annotator_id: int, *, limit: int = 50, before: int | None = None
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
def _queue_counts(session: Session, project: ProjectScope) -> dict[str, dict[str, int]]:
    now = common.now()
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


def queue_counts(project: ProjectScope) -> dict[str, dict[str, int]]:
    """Open, done, leased and overlap tasks and answers per queue."""
    with project.store.session() as session:
        return _queue_counts(session, project)


def _annotator_rows(session: Session, project: ProjectScope) -> list[dict[str, Any]]:
    live = and_(Annotation.project_id == project.id, Annotation.undone.is_(False))
    answered = Annotation.action != Action.SKIP
    gold = and_(Item.split == GOLD, answered)
    since = common.now() - timedelta(hours=1)
    rows = session.execute(
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


def _auto_accuracy(session: Session, project: ProjectScope) -> dict[str, Any]:
    """How often auto-accepted labels are right: from audits, and from gold above threshold."""
    audits = session.execute(
        select(
            func.count(),
            func.sum(case((Annotation.label == Annotation.suggested_label, 1), else_=0)),
        ).where(
            Annotation.project_id == project.id,
            Annotation.queue == Queue.AUDIT,
            Annotation.undone.is_(False),
            Annotation.action != Action.SKIP,
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


def _agreement(
    session: Session, project: ProjectScope, max_items: int = 5_000
) -> dict[str, Any] | None:
    """Agreement among people on items answered by at least two of them."""
    from ..agreement import agreement_report  # SciPy: loaded when a dashboard is asked for

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


def plot_files(project: ProjectScope) -> list[str]:
    """PNG plots saved in the project's `plots/` folder (calibration, learning curves...)."""
    folder = Path(project.path) / "plots"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob("*.png") if p.is_file())


def dashboard(project: ProjectScope) -> dict[str, Any]:
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
