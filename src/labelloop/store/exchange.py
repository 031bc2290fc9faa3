"""The rows that imports write and exports read: items with their provenance, in pages.

Exports stream every item of a project with its active prediction, its standing answers (with
the annotators' names) and, when asked, every prediction made for it; imports write items,
predictions, accounts and answers in one transaction and read back what is there already so
that importing the same file twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ..vocabulary import Role
from .adjudication import decisions_of
from .db import Store
from .models import Annotation, Annotator, Base, Item, Prediction

#: Ids per IN list and rows per INSERT statement.
CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class ProvenancePage:
    """One page of a project's items, in id order, with what their provenance rows need."""

    items: Sequence[Item]
    #: The prediction each item shows (its `prediction_id`), by prediction id.
    shown: dict[int, Prediction]
    #: Standing (not withdrawn) answers with their annotator's name, oldest first.
    answers: Sequence[tuple[Annotation, str | None]]
    #: Every prediction of these items, oldest first; empty unless asked for.
    predictions: Sequence[Prediction]
    #: The reviewer's decision in force on each adjudicated item, by item id.
    decisions: dict[int, dict[str, Any]]


def provenance_pages(
    store: Store, project_id: int, *, with_predictions: bool, size: int = CHUNK
) -> Iterator[ProvenancePage]:
    """Every item of the project in pages of `size`, by keyset on the id: each page is read in
    a transaction of its own, so an export of millions of items holds neither a long
    transaction nor more than a page in memory."""
    last_id = 0
    while True:
        with store.session() as session:
            items = session.scalars(
                select(Item)
                .where(Item.project_id == project_id, Item.id > last_id)
                .order_by(Item.id)
                .limit(size)
            ).all()
            if not items:
                return
            ids = [item.id for item in items]
            last_id = ids[-1]
            shown_ids = [item.prediction_id for item in items if item.prediction_id]
            shown = {
                p.id: p
                for p in session.scalars(select(Prediction).where(Prediction.id.in_(shown_ids)))
            }
            answers = [
                (annotation, name)
                for annotation, name in session.execute(
                    select(Annotation, Annotator.name)
                    .outerjoin(Annotator, Annotator.id == Annotation.annotator_id)
                    .where(Annotation.item_id.in_(ids), Annotation.undone.is_(False))
                    .order_by(Annotation.id)
                )
            ]
            predictions = (
                session.scalars(
                    select(Prediction).where(Prediction.item_id.in_(ids)).order_by(Prediction.id)
                ).all()
                if with_predictions
                else []
            )
            decisions = decisions_of(session.connection(), ids)
        yield ProvenancePage(items, shown, answers, predictions, decisions)


# ----------------------------------------------------------------------------- importing
def items_by_uid(
    session: Session, project_id: int, uids: Sequence[str]
) -> dict[str, tuple[int, str]]:
    """uid → (item id, text hash) of the items of the project with these ids."""
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(uids), CHUNK):
        for uid, item_id, digest in session.execute(
            select(Item.uid, Item.id, Item.text_hash).where(
                Item.project_id == project_id, Item.uid.in_(list(uids[start : start + CHUNK]))
            )
        ):
            found[uid] = (item_id, digest)
    return found


def insert_items_returning_ids(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert item rows (all with the same keys); returns uid → the new item's id."""
    ids: dict[str, int] = {}
    for start in range(0, len(rows), CHUNK):
        inserted = session.execute(
            insert(Item).returning(Item.uid, Item.id), list(rows[start : start + CHUNK])
        )
        ids.update({uid: item_id for uid, item_id in inserted})
    return ids


def prediction_keys(session: Session, item_ids: Sequence[int]) -> set[tuple[int, str, str]]:
    """(item id, model, prompt version) of every prediction stored for these items."""
    keys: set[tuple[int, str, str]] = set()
    for start in range(0, len(item_ids), CHUNK):
        keys.update(
            (item_id, model, version)
            for item_id, model, version in session.execute(
                select(Prediction.item_id, Prediction.model, Prediction.prompt_version).where(
                    Prediction.item_id.in_(list(item_ids[start : start + CHUNK]))
                )
            )
        )
    return keys


def answers_on(session: Session, item_ids: Sequence[int]) -> list[Any]:
    """(item_id, source, external_id, annotator_id, action, label, created_at) of every answer
    stored for these items, withdrawn or not: what tells an answer already imported."""
    rows: list[Any] = []
    for start in range(0, len(item_ids), CHUNK):
        rows.extend(
            session.execute(
                select(
                    Annotation.item_id,
                    Annotation.source,
                    Annotation.external_id,
                    Annotation.annotator_id,
                    Annotation.action,
                    Annotation.label,
                    Annotation.created_at,
                ).where(Annotation.item_id.in_(list(item_ids[start : start + CHUNK])))
            )
        )
    return rows


def ensure_annotators(session: Session, project_id: int, names: set[str]) -> dict[str, int]:
    """name → annotator id for these names, making an annotator account for each new name."""
    found = {
        name: annotator_id
        for name, annotator_id in session.execute(
            select(Annotator.name, Annotator.id).where(
                Annotator.project_id == project_id, Annotator.name.in_(sorted(names))
            )
        )
    }
    for name in sorted(names - set(found)):
        row = Annotator(project_id=project_id, name=name, role=Role.ANNOTATOR)
        session.add(row)
        session.flush()
        found[name] = row.id
    return found


def insert_answers(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert answer rows (all with the same keys)."""
    _insert(session, Annotation, rows)


def _insert(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(model), list(rows[start : start + CHUNK]))


# ----------------------------------------------------------------------------- Label Studio
def labelstudio_answer_ids(
    store: Store, project_id: int, external_ids: Sequence[str | None]
) -> list[int]:
    """Ids of the standing answers that came from Label Studio under these annotation ids."""
    with store.session() as session:
        return list(
            session.scalars(
                select(Annotation.id).where(
                    Annotation.project_id == project_id,
                    Annotation.source == "labelstudio",
                    Annotation.external_id.in_(list(external_ids)),
                    Annotation.undone.is_(False),
                )
            )
        )


def labelstudio_account(store: Store, project_id: int, user: int) -> int | None:
    """The annotator linked to a Label Studio user id (`labelloop user link`), or None."""
    with store.session() as session:
        return session.scalar(
            select(Annotator.id).where(
                Annotator.project_id == project_id, Annotator.labelstudio_user == user
            )
        )
