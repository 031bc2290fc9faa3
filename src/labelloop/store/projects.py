"""The project queries: the project row and its settings, items by uid, imports, the labeler
answers `Project.save_predictions` writes, and the counts behind `Project.stats` and `route`.

Each function runs in the caller's session, so that `Project` decides what one transaction
holds (an import is one transaction, whatever its size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..vocabulary import ItemState, LabelSource, Split
from .bulk import bulk_insert, bulk_update
from .db import Record
from .models import Item, Prediction, ProjectRow, ReviewTask, table_of

#: Ids or uids per IN list.
CHUNK = 5_000


# ----------------------------------------------------------------------------- the project
def project_row(session: Session, project_id: int) -> ProjectRow:
    """The project's row (name, task, labels, settings); it exists while the project is open."""
    return session.get_one(ProjectRow, project_id)


def add_project(
    session: Session,
    name: str,
    task: str,
    labels: list[str],
    settings: dict[str, Any] | None = None,
) -> int:
    """A new project row (with no settings unless given); returns its id."""
    row = ProjectRow(name=name, task=task, labels=labels, settings=settings or {})
    session.add(row)
    session.flush()
    return row.id


# ----------------------------------------------------------------------------- items
def item_id_of(session: Session, project_id: int, uid: str) -> int | None:
    """The store id of the project's item with that uid (the id people and files use)."""
    return session.scalar(select(Item.id).where(Item.project_id == project_id, Item.uid == uid))


def has_items(session: Session, project_id: int) -> bool:
    """Whether the project holds any item (a first import has nothing to compare with)."""
    found = session.scalar(select(Item.id).where(Item.project_id == project_id).limit(1))
    return found is not None


def existing_items(
    session: Session, project_id: int, uids: set[str], *, with_meta: bool = False
) -> dict[str, tuple[Any, ...]]:
    """uid → (id, text hash, split[, meta]) for those of `uids` the project already holds.

    When `uids` is a good share of the project, one scan of its items is cheaper than many
    IN lists; otherwise they are looked up `CHUNK` at a time.
    """
    found: dict[str, tuple[Any, ...]] = {}
    if not uids:
        return found
    columns: list[Any] = [Item.uid, Item.id, Item.text_hash, Item.split]
    columns += [Item.meta] if with_meta else []
    query = select(*columns).where(Item.project_id == project_id)
    total = session.scalar(select(func.count()).where(Item.project_id == project_id)) or 0
    if total <= 4 * len(uids):
        return {uid: tuple(rest) for uid, *rest in session.execute(query) if uid in uids}
    ordered = sorted(uids)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        for uid, *rest in session.execute(query.where(Item.uid.in_(chunk))):
            found[uid] = tuple(rest)
    return found


def insert_items(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Add new items (dict rows with the same keys) in the session's transaction."""
    return bulk_insert(session, table_of(Item), rows)


def rename_item(session: Session, item_id: int, uid: str) -> None:
    """Give an item another uid (its file's id, where it had a content hash)."""
    session.execute(update(Item).where(Item.id == item_id).values(uid=uid))


def make_gold(
    session: Session, item_id: int, label: str | None, labels: list[str] | None = None
) -> None:
    """Turn a pool item into a gold item with that label (or, multi-label, that set `labels`),
    human-labeled, and drop its open review tasks: gold items are checks, never work in a
    queue."""
    session.execute(
        update(Item)
        .where(Item.id == item_id)
        .values(
            split=Split.GOLD,
            gold_label=label,
            gold_labels=labels,
            state=ItemState.HUMAN_LABELED,
            final_label=label,
            final_labels=labels,
            final_source=LabelSource.HUMAN,
        )
    )
    session.execute(
        delete(ReviewTask).where(ReviewTask.item_id == item_id, ReviewTask.done.is_(False))
    )


# ----------------------------------------------------------------------------- predictions
def stored_predictions(
    session: Session, item_ids: Sequence[int], model: str, version: str
) -> dict[int, Record]:
    """item id → (item_id, id, error, failures, created_at) of the predictions stored for these
    items under (model, prompt version): what a re-run keeps or retries."""
    rows = session.execute(
        select(
            Prediction.item_id,
            Prediction.id,
            Prediction.error,
            Prediction.failures,
            Prediction.created_at,
        ).where(
            Prediction.item_id.in_(item_ids),
            Prediction.model == model,
            Prediction.prompt_version == version,
        )
    )
    return {row.item_id: row for row in rows}


def replace_predictions(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Overwrite stored predictions by id (dict rows holding `id` and the new values)."""
    bulk_update(session, table_of(Prediction), rows)


# ----------------------------------------------------------------------------- counts
def self_reported_counts(session: Session, project_id: int) -> dict[str, int]:
    """Routed items (auto-accepted or in review) per state whose confidence is the number the
    model wrote itself, with no calibration over it."""
    rows = session.execute(
        select(Item.state, func.count())
        .join(Prediction, Prediction.id == Item.prediction_id)
        .where(
            Item.project_id == project_id,
            Item.state.in_((ItemState.AUTO_ACCEPTED, ItemState.IN_REVIEW)),
            Item.calibrated_confidence.is_(None),
            Prediction.reported_confidence.is_not(None),
        )
        .group_by(Item.state)
    )
    return {state: int(n) for state, n in rows}
