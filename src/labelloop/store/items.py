"""Items as the workflows read and write them: texts, splits, gold and final labels, answers.

Reads that stand alone take the `Store` and open their own transaction; writes, and reads that
must see the caller's uncommitted writes, take the caller's `Session`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Executable, Select, case, func, select, union_all, update
from sqlalchemy.orm import Session

from ..vocabulary import LABELING_ACTIONS
from .db import Store
from .models import GOLD, HUMAN_LABELED, POOL, Annotation, Annotator, Item, ReviewTask

#: Ids per IN list.
CHUNK = 5_000


def fetch(store: Store, query: Executable) -> list[Any]:
    """Every row of a query, read in a transaction of its own."""
    with store.session() as session:
        return list(session.execute(query).all())


def known_uids(store: Store, project_id: int, uids: Sequence[str]) -> set[str]:
    """Which of these ids name items of the project already."""
    with store.session() as session:
        return set(
            session.scalars(
                select(Item.uid).where(Item.project_id == project_id, Item.uid.in_(list(uids)))
            )
        )


def texts_of(store: Store, item_ids: Sequence[int]) -> dict[int, str]:
    """Item id → text, for items that exist."""
    return dict(fetch(store, select(Item.id, Item.text).where(Item.id.in_(list(item_ids)))))


def texts_and_labels(store: Store, item_ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    """Item id → (text, final label), for items that exist (e.g. chosen few-shot examples)."""
    with store.session() as session:
        return {
            r.id: (r.text, r.final_label)
            for r in session.execute(
                select(Item.id, Item.text, Item.final_label).where(Item.id.in_(list(item_ids)))
            )
        }


#: (id, item_id, annotator_id, label, action) of the answers nobody withdrew.
_STANDING = select(
    Annotation.id,
    Annotation.item_id,
    Annotation.annotator_id,
    Annotation.label,
    Annotation.action,
    Annotation.labels,
).where(Annotation.undone.is_(False))


def splits_of(session: Session, project_id: int, item_ids: Sequence[int]) -> dict[int, str]:
    """Item id → split for those of `item_ids` (at most `CHUNK`) that belong to the project: an
    id missing from the answer is not one of its items (callers say so or skip it)."""
    rows = session.execute(
        select(Item.id, Item.split).where(Item.project_id == project_id, Item.id.in_(item_ids))
    )
    return {item_id: split for item_id, split in rows}


def standing_answers(session: Session, item_ids: Sequence[int]) -> list[Any]:
    """(id, item_id, annotator_id, label, action, labels) of the answers on these items that
    nobody withdrew: what final labels (and, multi-label, final sets) are resolved from."""
    query = _STANDING.where(Annotation.item_id.in_(list(item_ids))).order_by(Annotation.id)
    return list(session.execute(query).all())


def set_final_labels(session: Session, finals: Sequence[dict[str, Any]]) -> None:
    """Write items' final labels: dicts of item `id`, `state`, `final_label`, `final_source`
    and `label_posterior`."""
    if finals:
        session.execute(update(Item), list(finals))


def count_items(store: Store, project_id: int) -> int:
    """How many items the project holds."""
    with store.session() as session:
        query = select(func.count()).select_from(Item).where(Item.project_id == project_id)
        return session.scalar(query) or 0


def trusted_labels(store: Store, project_id: int, limit: int = 5_000) -> list[Any]:
    """(id, text, final_label) of items people labeled, gold first, then by id: where few-shot
    examples come from (a stable order keeps the prompt, and so its version, the same)."""
    return fetch(
        store,
        select(Item.id, Item.text, Item.final_label)
        .where(
            Item.project_id == project_id,
            Item.state == HUMAN_LABELED,
            Item.final_label.is_not(None),
        )
        .order_by(case((Item.split == GOLD, 0), else_=1), Item.id)
        .limit(limit),
    )


# ----------------------------------------------------------------------------- row sets
@dataclass(frozen=True, slots=True)
class ItemRows:
    """A set of (item id, value) rows in item id order, described but not yet read: batch work
    counts it, reads it whole or pages through it (`read_page`) without writing SQL."""

    query: Select[Any, Any]
    #: The item id column the rows are ordered by (keyset paging continues after it).
    key: Any

    def first(self, n: int) -> ItemRows:
        """At most the first `n` rows (as they are when read)."""
        return ItemRows(self.query.limit(n), self.key)

    def only(self, item_ids: Sequence[int], page: int = CHUNK) -> list[ItemRows]:
        """These rows restricted to `item_ids`, as one set per page of ids (bounded IN lists)."""
        ids = sorted(int(i) for i in item_ids)
        pages = max(1, math.ceil(len(ids) / page))
        size = max(1, math.ceil(len(ids) / pages))  # pages of equal size
        return [
            ItemRows(self.query.where(self.key.in_(ids[start : start + size])), self.key)
            for start in range(0, len(ids), size)
        ]


def read_rows(store: Store, rows: ItemRows) -> list[Any]:
    """Every row of the set."""
    return fetch(store, rows.query)


def read_page(store: Store, rows: ItemRows, after: int | None, size: int) -> list[Any]:
    """Up to `size` rows whose item id comes after `after` (from the start when None): keyset
    paging reads each row once even while results are being written."""
    query = rows.query if after is None else rows.query.where(rows.key > after)
    return fetch(store, query.limit(size))


def count_rows(store: Store, *sets: ItemRows) -> int:
    """How many rows these sets hold together."""
    with store.session() as session:
        return sum(
            session.scalar(select(func.count()).select_from(rows.query.subquery())) or 0
            for rows in sets
        )


def fixed_first(store: Store, rows: ItemRows, n: int) -> ItemRows:
    """The first `n` rows as they are now, fixed by the last one's id, so that a set paged
    while results are written neither shrinks nor grows past them."""
    if n <= 0:
        return ItemRows(rows.query.where(rows.key < 0), rows.key)
    with store.session() as session:
        cutoff = session.scalar(rows.query.with_only_columns(rows.key).offset(n - 1).limit(1))
    return rows if cutoff is None else ItemRows(rows.query.where(rows.key <= cutoff), rows.key)


def _texts(sets: Sequence[ItemRows]) -> Any:
    parts = [rows.query.subquery() for rows in sets]
    return union_all(*(select(p.c.id, p.c.text) for p in parts)).subquery()


def text_chars(store: Store, sets: Sequence[ItemRows], max_chars: int | None) -> tuple[int, int]:
    """(rows, characters of their texts cut at `max_chars`) of (id, text) sets: what a labeler
    would be sent."""
    texts = _texts(sets)
    length: Any = func.length(texts.c.text)
    if max_chars is not None:
        length = case((length > max_chars, max_chars), else_=length)
    with store.session() as session:
        n, chars = session.execute(select(func.count(), func.coalesce(func.sum(length), 0))).one()
    return int(n), int(chars)


def some_texts(store: Store, sets: Sequence[ItemRows], n: int) -> list[str]:
    """Up to `n` texts of (id, text) sets, e.g. to time a labeler on a sample."""
    with store.session() as session:
        return list(session.scalars(select(_texts(sets).c.text).limit(n)))


def item_texts(project_id: int, *, unlabeled_pool: bool = False) -> ItemRows:
    """(id, text) of the project's items; with `unlabeled_pool`, of pool items without a human
    label (those active learning scores)."""
    query = select(Item.id, Item.text).where(Item.project_id == project_id)
    if unlabeled_pool:
        query = query.where(Item.split == POOL, Item.state != HUMAN_LABELED)
    return ItemRows(query.order_by(Item.id), Item.id)


# ----------------------------------------------------------------------------- answers
def annotator_names(store: Store, project_id: int) -> dict[int, str]:
    """Annotator id → name, for every account of the project (reports name people)."""
    with store.session() as session:
        return dict(
            session.execute(
                select(Annotator.id, Annotator.name).where(Annotator.project_id == project_id)
            ).all()
        )


def labeling_answers(store: Store, project_id: int) -> list[Any]:
    """(annotator_id, item_id, label) of every standing answer that gave a label, oldest first
    (a later answer of the same person on the same item replaces an earlier one)."""
    return fetch(
        store,
        select(Annotation.annotator_id, Annotation.item_id, Annotation.label)
        .where(
            Annotation.project_id == project_id,
            Annotation.undone.is_(False),
            Annotation.action.in_(LABELING_ACTIONS),
            Annotation.label.is_not(None),
        )
        .order_by(Annotation.id),
    )


def gold_labels(store: Store, project_id: int) -> dict[int, str | None]:
    """Item id → gold label of the project's gold items."""
    with store.session() as session:
        return dict(
            session.execute(
                select(Item.id, Item.gold_label).where(
                    Item.project_id == project_id, Item.split == GOLD
                )
            ).all()
        )


def uids_of(store: Store, project_id: int, item_ids: Sequence[int] | None = None) -> dict[int, str]:
    """Item id → the item's own id (as imported), for these items or every item of the project."""
    query = select(Item.id, Item.uid).where(Item.project_id == project_id)
    if item_ids is not None:
        query = query.where(Item.id.in_(list(item_ids)))
    with store.session() as session:
        return dict(session.execute(query).all())


def gold_items(store: Store, project_id: int) -> list[Any]:
    """(id, uid, text, gold_label) of the project's gold items, by id."""
    return fetch(
        store,
        select(Item.id, Item.uid, Item.text, Item.gold_label)
        .where(Item.project_id == project_id, Item.split == GOLD)
        .order_by(Item.id),
    )


def learning_rows(store: Store, project_id: int) -> list[Any]:
    """(id, text, split, state, final_label, gold_label, final_source, final_labels,
    gold_labels) of every item, by id: what tells a trusted label or label set (gold, or given
    by people) from the rest."""
    return fetch(
        store,
        select(
            Item.id,
            Item.text,
            Item.split,
            Item.state,
            Item.final_label,
            Item.gold_label,
            Item.final_source,
            Item.final_labels,
            Item.gold_labels,
        )
        .where(Item.project_id == project_id)
        .order_by(Item.id),
    )


def outcomes(store: Store, project_id: int) -> list[Any]:
    """(uid, split, state, final_label, llm_label, confidence, calibrated_confidence) of every
    item: where each item ended and what the predictor said, to measure a finished run."""
    return fetch(
        store,
        select(
            Item.uid,
            Item.split,
            Item.state,
            Item.final_label,
            Item.llm_label,
            Item.confidence,
            Item.calibrated_confidence,
        ).where(Item.project_id == project_id),
    )


def queued_items(store: Store, project_id: int, queue: str) -> set[int]:
    """Items with an unfinished task in `queue`."""
    with store.session() as session:
        return set(
            session.scalars(
                select(ReviewTask.item_id).where(
                    ReviewTask.project_id == project_id,
                    ReviewTask.queue == queue,
                    ReviewTask.done.is_(False),
                )
            )
        )


def standing_labels(store: Store, project_id: int) -> list[Any]:
    """(id, item_id, annotator_id, label, action) of every standing answer that measures an
    annotator (a labeling action), oldest first: what the annotator-quality model is fitted on."""
    return fetch(
        store,
        _STANDING.where(
            Annotation.project_id == project_id, Annotation.action.in_(LABELING_ACTIONS)
        ).order_by(Annotation.id),
    )


def priors_of(store: Store, project_id: int, item_ids: Sequence[int]) -> list[Any]:
    """(id, split, gold_label, llm_label, calibrated_confidence) of these items, by id: what
    the annotator-quality model knows of an item before its answers."""
    return fetch(
        store,
        select(Item.id, Item.split, Item.gold_label, Item.llm_label, Item.calibrated_confidence)
        .where(Item.project_id == project_id, Item.id.in_(list(item_ids)))
        .order_by(Item.id),
    )


def answered_items(conn: Connection | Session, project_id: int) -> list[int]:
    """Items with at least one standing answer, in the caller's transaction."""
    return list(
        conn.scalars(
            select(Annotation.item_id)
            .where(Annotation.project_id == project_id, Annotation.undone.is_(False))
            .distinct()
        ).all()
    )
