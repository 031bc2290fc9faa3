"""Agreement between every rater — people and LLM labelers — and likely-mislabeled items."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from .. import review
from ..agreement import agreement_report, find_label_issues
from ..errors import NotReadyError
from ..store import GOLD, Annotation, Annotator, Item, Prediction
from ..vocabulary import LABELING_ACTIONS, Queue
from .consensus import annotator_quality
from .learn import STUDENT

if TYPE_CHECKING:
    from ..project import Project

RECHECK_QUEUE = Queue.RECHECK


def rating_matrix(project: Project) -> tuple[list[str], list[int], list[list[str | None]]]:
    """Raters × items labels: each annotator's latest answer and each labeler's prediction.

    Only items rated by at least two raters count. Student and ensemble are not raters: they
    are trained on the people's labels.
    """
    ratings: dict[str, dict[int, str | None]] = {}  # labels: NOT NULL by the queries
    with project.store.session() as session:
        names: dict[int | None, str] = dict(
            session.execute(
                select(Annotator.id, Annotator.name).where(Annotator.project_id == project.id)
            ).all()
        )
        for annotator_id, item_id, label in session.execute(
            select(Annotation.annotator_id, Annotation.item_id, Annotation.label)
            .where(
                Annotation.project_id == project.id,
                Annotation.undone.is_(False),
                Annotation.action.in_(LABELING_ACTIONS),
                Annotation.label.is_not(None),
            )
            .order_by(Annotation.id)
        ):
            rater = f"human:{names.get(annotator_id, 'unknown')}"
            ratings.setdefault(rater, {})[item_id] = label
        for model, version, item_id, label in session.execute(
            select(
                Prediction.model, Prediction.prompt_version, Prediction.item_id, Prediction.label
            ).where(
                Prediction.project_id == project.id,
                Prediction.label.is_not(None),
                Prediction.model.not_in((STUDENT, "ensemble")),
            )
        ):
            ratings.setdefault(f"llm:{model}@{version}", {})[item_id] = label
    counts: dict[int, int] = {}
    for by_item in ratings.values():
        for item_id in by_item:
            counts[item_id] = counts.get(item_id, 0) + 1
    items = sorted(item_id for item_id, n in counts.items() if n >= 2)
    raters = sorted(ratings)
    matrix = [[ratings[r].get(item_id) for item_id in items] for r in raters]
    return raters, items, matrix


def agreement(project: Project, *, n_boot: int = 1000, random_state: int = 0) -> dict[str, Any]:
    """The agreement report over all raters, with each annotator's accuracy on gold items and
    against the weighted consensus, with intervals, and its drift (see `consensus`)."""
    raters, items, matrix = rating_matrix(project)
    if len(raters) < 2 or not items:
        raise NotReadyError(
            "agreement needs at least two raters on the same items (annotators' answers or "
            "LLM predictions); found " + (", ".join(raters) or "none")
        )
    with project.store.session() as session:
        gold_of = dict(
            session.execute(
                select(Item.id, Item.gold_label).where(
                    Item.project_id == project.id, Item.split == GOLD
                )
            ).all()
        )
        uids = dict(
            session.execute(select(Item.id, Item.uid).where(Item.project_id == project.id)).all()
        )
    gold = [gold_of.get(item_id) for item_id in items] if gold_of else None
    report = agreement_report(
        matrix, project.labels, raters, n_boot=n_boot, random_state=random_state, gold=gold
    )
    for flag in report.get("flags", []):
        if "items" in flag:
            flag["items"] = [uids[items[i]] for i in flag["items"] if i < len(items)]
    report["annotator_quality"] = list(annotator_quality(project).values())
    return report


def label_issues(project: Project, *, top: int = 50, queue: bool = True) -> dict[str, Any]:
    """Final labels that the student (out-of-fold) confidently disagrees with.

    Needs `learn` to have run: the student's stored probabilities are out-of-fold for the
    items it was trained on and out-of-sample for the others.
    """
    labels = project.labels
    with project.store.session() as session:
        rows = session.execute(
            select(Item.id, Item.uid, Item.final_label, Prediction.probs)
            .join(Prediction, Prediction.item_id == Item.id)
            .where(
                Item.project_id == project.id,
                Item.final_label.is_not(None),
                Prediction.model == STUDENT,
            )
            .order_by(Item.id)
        ).all()
    if not rows:
        raise NotReadyError("no student predictions yet; run `labelloop learn` first")
    given = np.array([labels.index(r.final_label) for r in rows])
    probs = np.array([[r.probs[label] for label in labels] for r in rows])
    issues = find_label_issues(given, probs, rank_by="self_confidence", max_issues=top)
    suspects = [
        {
            "id": rows[i].uid,
            "label": rows[i].final_label,
            "suggested": labels[int(s)],
            "score": float(score),
        }
        for i, s, score in zip(issues.indices, issues.suggested, issues.scores, strict=True)
    ]
    queued = 0
    if queue and suspects:
        ids = [rows[i].id for i in issues.indices]
        queued = review.enqueue(project, ids, queue=RECHECK_QUEUE)
    return {"checked": len(rows), "suspects": suspects, "queued": queued}
