"""What people and admins see of the work: the project, their own answers, the dashboard."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..multilabel.sets import MULTI_LABEL
from ..store import Session
from ..store import reviews as store
from ..store.guidelines import latest_guidelines
from ..store.projects import project_row
from . import common
from .common import ProjectScope, Result, Stats
from .queues import QueueSettings, queue_settings


@dataclass(frozen=True, slots=True)
class ProjectInfo(Result):
    """What the review page needs once (`project_info`); `to_dict` is what the API sends, in
    this order."""

    name: str
    task: str
    labels: list[str]  # in order: key 1 picks the first
    multi_label: bool
    label_descriptions: dict[str, str]
    guidelines: str | None  # Markdown; None when there are none
    guidelines_version: int | None


def project_info(project: ProjectScope) -> ProjectInfo:
    """What the review page needs once: the task, the ordered label set, the labels'
    descriptions and the guidelines in force."""
    with project.store.session() as session:
        row = project_row(session, project.id)
        guide = latest_guidelines(session, project.id)
        return ProjectInfo(
            name=row.name,
            task=row.task,
            labels=list(row.labels),
            multi_label=bool((row.settings or {}).get(MULTI_LABEL)),
            label_descriptions={} if guide is None else guide.label_descriptions,
            guidelines=None if guide is None else guide.text or None,
            guidelines_version=None if guide is None else guide.version,
        )


@dataclass(frozen=True, slots=True)
class MyAnswer(store.AnswerFields, Result):
    """One of a person's own answers (`annotations_of`): the stored answer's fields with its
    time as text; `to_dict` is what the API sends, in this order. The queue it counted for is
    not shown: gold checks stay hidden."""

    created_at: str | None  # ISO 8601

    @classmethod
    def of(cls, answer: store.OwnAnswer) -> MyAnswer:
        shared = {f.name: getattr(answer, f.name) for f in fields(store.AnswerFields)}
        created = answer.created_at
        return cls(**shared, created_at=created.isoformat() if created else None)


def annotations_of(
    project: ProjectScope, annotator_id: int, *, limit: int = 50, before: int | None = None
) -> list[MyAnswer]:
    """A person's latest answers, newest first."""
    with project.store.session() as session:
        rows = store.answers_of(
            session, project.id, annotator_id, max(1, min(int(limit), 500)), before
        )
    return [MyAnswer.of(a) for a in rows]


# ----------------------------------------------------------------------------- dashboard
@dataclass(frozen=True, slots=True)
class QueueCounts(Result):
    """One queue's tasks: open, done, leased now, wanting overlap; and the answers counted."""

    open: int
    done: int
    leased: int
    overlap: int  # tasks wanting answers from more than one person
    answers: int


def _queue_counts(session: Session, project: ProjectScope) -> dict[str, QueueCounts]:
    counts = store.task_counts(session, project.id, common.now())
    return {queue: QueueCounts(*numbers) for queue, numbers in counts.items()}


def queue_counts(project: ProjectScope) -> dict[str, QueueCounts]:
    """Open, done, leased and overlap tasks and answers per queue."""
    with project.store.session() as session:
        return _queue_counts(session, project)


def _annotator_rows(session: Session, project: ProjectScope) -> list[dict[str, Any]]:
    rows = store.annotator_work(session, project.id, common.now() - timedelta(hours=1))
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
    audits = store.audit_agreement(session, project.id)
    gold = store.gold_above_threshold(session, project.id, project.threshold)

    def share(n: int, k: int) -> dict[str, Any]:
        return {"n": n, "accuracy": k / n if n else None}

    return {"audit": share(*audits), "gold_above_threshold": share(*gold)}


def _agreement(
    session: Session, project: ProjectScope, max_items: int = 5_000
) -> dict[str, Any] | None:
    """Agreement among people on items answered by at least two of them."""
    from ..agreement import agreement_report  # SciPy: loaded when a dashboard is asked for

    rows = store.shared_answers(session, project.id, max_items)
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


@dataclass(frozen=True, slots=True)
class Dashboard(Result):
    """The admin dashboard's figures; `to_dict` is what `GET /dashboard` sends and the page
    shows, in this order."""

    stats: Stats
    progress: float | None  # share of the pool labeled, by people or automatically
    review_rate: float | None
    answers_last_hour: int
    queues: dict[str, QueueCounts]
    queue_settings: QueueSettings
    annotators: list[dict[str, Any]]
    auto_accepted_accuracy: dict[str, Any]
    agreement: dict[str, Any] | None
    plots: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stats": self.stats.to_dict(),
            "progress": self.progress,
            "review_rate": self.review_rate,
            "answers_last_hour": self.answers_last_hour,
            "queues": {queue: counts.to_dict() for queue, counts in self.queues.items()},
            "queue_settings": self.queue_settings.to_dict(),
            "annotators": self.annotators,
            "auto_accepted_accuracy": self.auto_accepted_accuracy,
            "agreement": self.agreement,
            "plots": self.plots,
        }


@dataclass(frozen=True, slots=True)
class LearningDashboard(Result):
    """The dashboard with what the learning side adds (`Project.dashboard`): the calibration
    plots in force, each annotator's estimated quality and whose labels routing uses; sent
    after the dashboard's own sections."""

    board: Dashboard
    calibration_plots: dict[str, Any] | None
    annotator_quality: dict[str, dict[str, Any]]
    predictor: str

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.board.to_dict(),
            "calibration_plots": self.calibration_plots,
            "annotator_quality": self.annotator_quality,
            "predictor": self.predictor,
        }


def dashboard(project: ProjectScope) -> Dashboard:
    """Progress, review rate, auto-accepted accuracy, agreement, per-annotator work, plots."""
    stats = project.stats()
    with project.store.session() as session:
        queues = _queue_counts(session, project)
        annotators = _annotator_rows(session, project)
        accuracy = _auto_accuracy(session, project)
        agreement = _agreement(session, project)
    pool = stats.pool
    labeled = stats.human_labeled + stats.auto_accepted
    return Dashboard(
        stats=stats,
        progress=(labeled - stats.gold) / pool if pool else None,
        review_rate=stats.review_rate,
        answers_last_hour=sum(a["answers_last_hour"] for a in annotators),
        queues=queues,
        queue_settings=queue_settings(project),
        annotators=annotators,
        auto_accepted_accuracy=accuracy,
        agreement=agreement,
        plots=plot_files(project),
    )
