"""The routing rule applied to every open item of a project in a few statements.

`labelloop.routing.is_confident` says it for one item; these statements say the same for a
whole store at once, without loading an item: a prediction is accepted when its calibrated
confidence (the raw one where there is none) reaches its label's threshold and nobody rejected it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from ..vocabulary import Action, ItemState, LabelSource, Queue
from .models import Annotation, Item, ReviewTask

#: The confidence routing trusts.
CONFIDENCE = func.coalesce(Item.calibrated_confidence, Item.confidence)


def _meets_threshold(threshold: float, label_thresholds: Mapping[str, float]) -> Any:
    if not label_thresholds:
        return threshold <= CONFIDENCE
    per_label = [
        and_(Item.llm_label == label, float(value) <= CONFIDENCE)
        for label, value in label_thresholds.items()
    ]
    other = and_(Item.llm_label.not_in(list(label_thresholds)), threshold <= CONFIDENCE)
    return or_(*per_label, other)


def confident(threshold: float, label_thresholds: Mapping[str, float]) -> ColumnElement[bool]:
    """Items whose prediction may be accepted without a person."""
    # A person said the suggestion is wrong: it is never accepted automatically again.
    rejected = (
        select(Annotation.id)
        .where(
            Annotation.item_id == Item.id,
            Annotation.action == Action.REJECT,
            Annotation.undone.is_(False),
        )
        .exists()
    )
    return and_(
        Item.llm_label.is_not(None),
        CONFIDENCE.is_not(None),
        _meets_threshold(threshold, label_thresholds),
        ~rejected,
    )


def route_items(
    session: Session, project_id: int, threshold: float, label_thresholds: Mapping[str, float]
) -> None:
    """Auto-accept the confident open items, put the others in review, and queue a review
    task for each item newly in review (dropping unanswered ones of now-confident items);
    unanswered review tasks take the item's current confidence as their priority."""
    accept = confident(threshold, label_thresholds)
    open_items = and_(Item.project_id == project_id, Item.state != ItemState.HUMAN_LABELED)
    session.execute(
        update(Item)
        .where(open_items, accept)
        .values(
            state=ItemState.AUTO_ACCEPTED, final_label=Item.llm_label, final_source=LabelSource.LLM
        )
    )
    already_in_review = and_(
        Item.state == ItemState.IN_REVIEW, Item.final_label.is_(None), Item.final_source.is_(None)
    )
    session.execute(
        update(Item)
        .where(
            open_items,
            ~accept | Item.llm_label.is_(None) | CONFIDENCE.is_(None),
            ~already_in_review,  # rewriting a row with its own values costs a page write
        )
        .values(state=ItemState.IN_REVIEW, final_label=None, final_source=None)
    )
    queued = select(ReviewTask.id).where(
        ReviewTask.item_id == Item.id, ReviewTask.queue == Queue.REVIEW
    )
    session.execute(
        insert(ReviewTask).from_select(
            ["project_id", "item_id", "queue", "priority", "answers_needed", "answers", "done"],
            select(
                Item.project_id,
                Item.id,
                literal(Queue.REVIEW.value),
                func.coalesce(CONFIDENCE, 0.0),
                literal(1),
                literal(0),
                literal(False),
            ).where(
                Item.project_id == project_id,
                Item.state == ItemState.IN_REVIEW,
                ~queued.exists(),
            ),
        )
    )
    # Tasks queued by an earlier pass follow the predictor routing trusts now (after `learn`
    # the review queue would otherwise mix the old predictor's order with the new one's).
    session.execute(
        update(ReviewTask)
        .where(
            ReviewTask.project_id == project_id,
            ReviewTask.queue == Queue.REVIEW,
            ReviewTask.answers == 0,
            ReviewTask.done.is_(False),
        )
        .values(
            priority=select(func.coalesce(CONFIDENCE, 0.0))
            .where(Item.id == ReviewTask.item_id)
            .scalar_subquery()
        )
    )
    session.execute(
        delete(ReviewTask).where(
            ReviewTask.project_id == project_id,
            ReviewTask.queue == Queue.REVIEW,
            ReviewTask.answers == 0,
            ReviewTask.item_id.in_(
                select(Item.id).where(
                    Item.project_id == project_id, Item.state == ItemState.AUTO_ACCEPTED
                )
            ),
        )
    )
