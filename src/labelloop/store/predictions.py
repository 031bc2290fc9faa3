"""Predictions: what labelers answered, which answer items show, and calibrations of them.

A prediction is keyed by (item, model, prompt version). The project's active predictor is one
such (model, prompt version) key; each item shows its answer (the calibrated label where a
calibration moved it) so that routing, review and exports read one row. Reads that stand alone
take the `Store` and open their own transaction; writes, and reads that must see the caller's
uncommitted writes, take the caller's `Session`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Text, and_, case, cast, delete, func, select, update
from sqlalchemy.orm import Session

from .bulk import bulk_insert
from .db import Store
from .items import ItemRows, fetch
from .models import GOLD, HUMAN_LABELED, POOL, Calibration, Item, Prediction, table_of

#: Ids per IN list.
CHUNK = 5_000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CalibrationRecord:
    """A stored calibration of a (model, prompt version) key, as plain values: services read
    it after its transaction has ended."""

    id: int
    model: str
    prompt_version: str
    method: str
    calibrator: dict[str, Any]  # the fitted calibrator's state (`calibrator_from_dict`)
    threshold: float
    label_thresholds: dict[str, Any] | None
    report: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: Calibration) -> CalibrationRecord:
        return cls(
            id=row.id,
            model=row.model,
            prompt_version=row.prompt_version,
            method=row.method,
            calibrator=row.calibrator,
            threshold=row.threshold,
            label_thresholds=row.label_thresholds,
            report=row.report,
            created_at=row.created_at,
        )


def show_active_prediction(
    session: Session,
    project_id: int,
    model: str,
    version: str,
    item_ids: Sequence[int] | None = None,
) -> None:
    """Copy the answer of the (model, version) key onto the items (all of the project's, or
    these): its id, label (the calibrated one where calibration moved it) and confidences.
    Items without an answer under the key show none.

    The one place that says what an item shows: prelabeling, calibration, imports and a change
    of active predictor all call it."""
    answer = (
        select(Prediction)
        .where(
            Prediction.project_id == project_id,
            Prediction.model == model,
            Prediction.prompt_version == version,
            Prediction.item_id == Item.id,
        )
        .correlate(Item)
    )
    condition = Item.project_id == project_id
    if item_ids is not None:
        condition = and_(condition, Item.id.in_(list(item_ids)))
    session.execute(
        update(Item)
        .where(condition)
        .values(
            prediction_id=answer.with_only_columns(Prediction.id).scalar_subquery(),
            llm_label=answer.with_only_columns(
                func.coalesce(Prediction.calibrated_label, Prediction.label)
            ).scalar_subquery(),
            confidence=answer.with_only_columns(Prediction.confidence).scalar_subquery(),
            calibrated_confidence=answer.with_only_columns(
                Prediction.calibrated_confidence
            ).scalar_subquery(),
            llm_labels=answer.with_only_columns(
                func.coalesce(Prediction.calibrated_labels, Prediction.labels)
            ).scalar_subquery(),
        )
    )


def shown_by_uid(store: Store, project_id: int, uids: Sequence[str]) -> list[Any]:
    """(uid, id, llm_label, llm_labels, confidence, calibrated_confidence, probs, model,
    prompt_version) of these items: the answer each shows, for tools that ask by their own ids
    (`llm_labels` and the prediction's per-label `probs` on multi-label projects)."""
    return fetch(
        store,
        select(
            Item.uid,
            Item.id,
            Item.llm_label,
            Item.llm_labels,
            Item.confidence,
            Item.calibrated_confidence,
            Prediction.probs,
            Prediction.model,
            Prediction.prompt_version,
        )
        .outerjoin(Prediction, Prediction.id == Item.prediction_id)
        .where(Item.project_id == project_id, Item.uid.in_(list(uids))),
    )


def key_answers(
    store: Store, project_id: int, model: str, version: str, item_ids: Sequence[int]
) -> list[Any]:
    """(item_id, label, labels, confidence, calibrated_confidence, probs) of one key's answers
    on these items; `label` (`labels`, the set of a multi-label answer) is the calibrated one
    where calibration moved it, None for a failed answer."""
    rows: list[Any] = []
    with store.session() as session:
        for start in range(0, len(item_ids), CHUNK):
            rows.extend(
                session.execute(
                    select(
                        Prediction.item_id,
                        func.coalesce(Prediction.calibrated_label, Prediction.label).label("label"),
                        func.coalesce(Prediction.calibrated_labels, Prediction.labels).label(
                            "labels"
                        ),
                        Prediction.confidence,
                        Prediction.calibrated_confidence,
                        Prediction.probs,
                    ).where(
                        Prediction.project_id == project_id,
                        Prediction.model == model,
                        Prediction.prompt_version == version,
                        Prediction.item_id.in_(list(item_ids[start : start + CHUNK])),
                    )
                )
            )
    return rows


def pending_answers(
    project_id: int, model: str, version: str, retry_failed: bool = True
) -> tuple[ItemRows, ItemRows]:
    """(gold, pool) sets of `(id, text)` lacking an answer under this key, by id.

    Items whose stored answer is a failure are asked again unless `retry_failed` is false. Pool
    items that already carry a human label are not sent.
    """
    stored = [
        Prediction.item_id == Item.id,
        Prediction.model == model,
        Prediction.prompt_version == version,
    ]
    if retry_failed:
        stored.append(Prediction.error.is_(None))
    done_already = select(Prediction.id).where(*stored).exists()
    wanted = (Item.project_id == project_id) & ~done_already
    gold = select(Item.id, Item.text).where(wanted, Item.split == GOLD).order_by(Item.id)
    pool = (
        select(Item.id, Item.text)
        .where(wanted, Item.split == POOL, Item.state != HUMAN_LABELED)
        .order_by(Item.id)
    )
    return ItemRows(gold, Item.id), ItemRows(pool, Item.id)


def failed_items(store: Store, project_id: int, model: str, version: str) -> set[int]:
    """Items whose stored answer under this key is a failure."""
    with store.session() as session:
        return set(
            session.scalars(
                select(Prediction.item_id).where(
                    Prediction.project_id == project_id,
                    Prediction.model == model,
                    Prediction.prompt_version == version,
                    Prediction.error.is_not(None),
                )
            )
        )


def answer_history(store: Store, project_id: int, model: str) -> tuple[int, Any, Any]:
    """(answers, mean output tokens, mean latency) of a model's successful answers in the
    project (zeros left out of the means): what its next run will likely cost."""
    with store.session() as session:
        n, tokens_out, latency = session.execute(
            select(
                func.count(),
                func.avg(case((Prediction.tokens_out > 0, Prediction.tokens_out))),
                func.avg(case((Prediction.latency_s > 0, Prediction.latency_s))),
            ).where(
                Prediction.project_id == project_id,
                Prediction.model == model,
                Prediction.error.is_(None),
            )
        ).one()
    return int(n), tokens_out, latency


class LabelerAnswer(NamedTuple):
    """An answer as `labeler_answers` reads it."""

    item_id: int
    model: str
    prompt_version: str
    label: str | None
    probs: dict[str, Any] | None
    confidence: float | None


def labeler_answers(
    store: Store, project_id: int, leave_out: Sequence[str], item_ids: Sequence[int] | None = None
) -> list[LabelerAnswer]:
    """(item_id, model, prompt_version, label, probs, confidence) of every answer (on these
    items, or all), except those of the `leave_out` models: labelers that are raters and stack
    inputs, not models trained on people's labels. A failed answer has label None."""
    query = select(
        Prediction.item_id,
        Prediction.model,
        Prediction.prompt_version,
        Prediction.label,
        cast(Prediction.probs, Text),
        Prediction.confidence,
    ).where(Prediction.project_id == project_id, Prediction.model.not_in(list(leave_out)))
    if item_ids is not None:
        query = query.where(Prediction.item_id.in_(list(item_ids)))
    with store.session() as session:
        return with_probs(session.execute(query).all(), 4, LabelerAnswer._make)


def with_probs(rows: Sequence[Any], at: int, make: Callable[[tuple[Any, ...]], T]) -> list[T]:
    """The rows with their column `at`, `probs` read as JSON text, decoded in one pass over
    all of them (what the JSON type does row by row, for a fifth of the time): `make` builds a
    row from its values."""
    if not rows:
        return []
    texts = [row[at] for row in rows]
    values = json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]")
    return [
        make((*row[:at], value, *row[at + 1 :])) for row, value in zip(rows, values, strict=True)
    ]


def add_predictions(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Store new predictions (rows with the same keys), in bounded INSERT statements."""
    bulk_insert(session, table_of(Prediction), rows)


def replace_answers(
    store: Store, project_id: int, model: str, rows: Sequence[dict[str, Any]]
) -> None:
    """Replace every prediction of `model` with these rows (a retrained model supersedes its
    previous answers), and keep the planner's statistics current as the table grows."""
    with store.session() as session:
        session.execute(
            delete(Prediction).where(Prediction.project_id == project_id, Prediction.model == model)
        )
        bulk_insert(session, table_of(Prediction), rows)
    store.grew("predictions", len(rows))


def model_probs_on_labeled(store: Store, project_id: int, model: str) -> list[Any]:
    """(id, uid, final_label, probs) of items with a final label and an answer of `model`, by
    item: what finding likely mislabeled items compares."""
    return fetch(
        store,
        select(Item.id, Item.uid, Item.final_label, Prediction.probs)
        .join(Prediction, Prediction.item_id == Item.id)
        .where(
            Item.project_id == project_id,
            Item.final_label.is_not(None),
            Prediction.model == model,
        )
        .order_by(Item.id),
    )


# ----------------------------------------------------------------------------- calibration
class ToCalibrate(NamedTuple):
    """A prediction as `to_calibrate` reads it."""

    id: int
    label: str | None
    probs: dict[str, Any] | None
    confidence: float | None
    calibrated_label: str | None
    calibrated_confidence: float | None


def to_calibrate(
    session: Session,
    project_id: int,
    model: str,
    version: str,
    item_ids: Sequence[int] | None = None,
) -> list[ToCalibrate]:
    """(id, label, probs, confidence, calibrated_label, calibrated_confidence) of one key's
    predictions (all, or on these items), by id: what a calibrator reads to write calibrated
    labels and confidences, and what they are now."""
    query = select(
        Prediction.id,
        Prediction.label,
        cast(Prediction.probs, Text),
        Prediction.confidence,
        Prediction.calibrated_label,
        Prediction.calibrated_confidence,
    ).where(
        Prediction.project_id == project_id,
        Prediction.model == model,
        Prediction.prompt_version == version,
    )
    if item_ids is not None:
        query = query.where(Prediction.item_id.in_(list(item_ids)))
    return with_probs(session.execute(query.order_by(Prediction.id)).all(), 2, ToCalibrate._make)


def active_calibration(
    store: Store, project_id: int, model: str, version: str
) -> CalibrationRecord | None:
    """The calibration in force for a key (the latest active one), or None."""
    with store.session() as session:
        row = session.scalar(
            select(Calibration)
            .where(
                Calibration.project_id == project_id,
                Calibration.model == model,
                Calibration.prompt_version == version,
                Calibration.active.is_(True),
            )
            .order_by(Calibration.id.desc())
        )
        return None if row is None else CalibrationRecord.of(row)


def active_calibration_id(store: Store, project_id: int, model: str, version: str) -> int | None:
    """The id of the calibration in force for a key: it changes with every new calibration."""
    with store.session() as session:
        return session.scalar(
            select(func.max(Calibration.id)).where(
                Calibration.project_id == project_id,
                Calibration.model == model,
                Calibration.prompt_version == version,
                Calibration.active.is_(True),
            )
        )


def gold_answers(store: Store, project_id: int, model: str, version: str) -> list[Any]:
    """(id, gold_label, label, probs, confidence) of one key's answers on gold items, by item:
    what calibration and comparisons measure a labeler on (answers without a label or a
    confidence measure nothing)."""
    return fetch(
        store,
        select(
            Item.id,
            Item.gold_label,
            Prediction.label,
            Prediction.probs,
            Prediction.confidence,
        )
        .join(Prediction, Prediction.item_id == Item.id)
        .where(
            Item.project_id == project_id,
            Item.split == GOLD,
            Prediction.model == model,
            Prediction.prompt_version == version,
            Prediction.label.is_not(None),
            Prediction.confidence.is_not(None),
        )
        .order_by(Item.id),
    )


def save_calibration(
    store: Store, project_id: int, model: str, version: str, **values: Any
) -> CalibrationRecord:
    """Store a calibration of a key as the one in force (earlier ones of the key stop being
    active); `values` are the remaining columns (method, calibrator, thresholds, report).
    Returns what was stored, with its id and creation time."""
    with store.session() as session:
        session.execute(
            update(Calibration)
            .where(
                Calibration.project_id == project_id,
                Calibration.model == model,
                Calibration.prompt_version == version,
            )
            .values(active=False)
        )
        stored = Calibration(
            project_id=project_id, model=model, prompt_version=version, active=True, **values
        )
        session.add(stored)
        session.flush()
        return CalibrationRecord.of(stored)


# ----------------------------------------------------------------------------- comparing
def keys_answering_gold(store: Store, project_id: int) -> list[tuple[str, str]]:
    """(model, prompt version) keys with at least one answer on a gold item, oldest first."""
    with store.session() as session:
        rows = session.execute(
            select(Prediction.model, Prediction.prompt_version, func.min(Prediction.id))
            .join(Item, Item.id == Prediction.item_id)
            .where(
                Prediction.project_id == project_id,
                Item.split == GOLD,
                Prediction.label.is_not(None),
            )
            .group_by(Prediction.model, Prediction.prompt_version)
            .order_by(func.min(Prediction.id))
        ).all()
    return [(model, version) for model, version, _ in rows]


def key_usage(store: Store, project_id: int, model: str, version: str) -> tuple[Any, ...]:
    """(answers, failed, tokens, cost, mean latency, first and last answer time) over every
    answer of one key: what a labeler costs and how fast it answers."""
    with store.session() as session:
        return tuple(
            session.execute(
                select(
                    func.count(),
                    func.count(Prediction.error),
                    func.coalesce(func.sum(Prediction.tokens_in + Prediction.tokens_out), 0),
                    func.coalesce(func.sum(Prediction.cost_usd), 0.0),
                    func.avg(Prediction.latency_s),
                    func.min(Prediction.created_at),
                    func.max(Prediction.created_at),
                ).where(
                    Prediction.project_id == project_id,
                    Prediction.model == model,
                    Prediction.prompt_version == version,
                )
            ).one()
        )
