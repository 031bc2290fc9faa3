"""The embedding cache: one vector per (item, model), written once, read back in chunks.

Vectors are float32 bytes. Both the local path (`workflows.embed`) and the Ray engine write
through `save_vectors`, which skips items that already have a vector under the model, so a
retried batch stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from .bulk import bulk_insert
from .db import Store
from .items import ItemRows
from .models import HUMAN_LABELED, POOL, Embedding, Item, table_of

READ_CHUNK = 5_000  # ids per IN list


def stored_vectors(store: Store, model: str, item_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """The vectors stored under `model` for these items (items without one are left out)."""
    vectors: dict[int, np.ndarray] = {}
    with store.session() as session:
        for start in range(0, len(item_ids), READ_CHUNK):
            chunk = [int(i) for i in item_ids[start : start + READ_CHUNK]]
            for item_id, blob in session.execute(
                select(Embedding.item_id, Embedding.vector).where(
                    Embedding.item_id.in_(chunk), Embedding.model == model
                )
            ):
                vectors[item_id] = np.frombuffer(blob, dtype=np.float32)
    return vectors


def save_vectors(
    store: Store, project_id: int, model: str, item_ids: Iterable[Any], vectors: Any
) -> int:
    """Store the vectors of items that have none under `model` yet; returns how many were new."""
    wanted = [int(i) for i in item_ids]
    with store.session() as session:
        known = set(
            session.scalars(
                select(Embedding.item_id).where(
                    Embedding.item_id.in_(wanted), Embedding.model == model
                )
            )
        )
        rows = [
            {"project_id": project_id, "item_id": item_id, "model": model, "vector": v.tobytes()}
            for item_id, v in zip(wanted, np.asarray(vectors, np.float32), strict=True)
            if item_id not in known
        ]
        bulk_insert(session, table_of(Embedding), rows)
    return len(rows)


def drop_vectors(store: Store, project_id: int, model: str) -> None:
    """Forget the project's vectors under `model` (an encoder that was replaced)."""
    with store.session() as session:
        session.execute(
            delete(Embedding).where(Embedding.project_id == project_id, Embedding.model == model)
        )


def items_without_vector(project_id: int, model: str) -> ItemRows:
    """(id, text) of the project's items with no vector under `model` yet: what embedding
    still has to do (a resumed run skips what an interrupted one stored)."""
    has_vector = (
        select(Embedding.id).where(Embedding.item_id == Item.id, Embedding.model == model).exists()
    )
    query = select(Item.id, Item.text).where(Item.project_id == project_id, ~has_vector)
    return ItemRows(query.order_by(Item.id), Item.id)


def item_vectors(project_id: int, model: str, *, unlabeled_pool: bool = False) -> ItemRows:
    """(item_id, vector bytes) stored under `model` for the project's items (items without one
    are left out); with `unlabeled_pool`, only pool items without a human label."""
    query = (
        select(Embedding.item_id, Embedding.vector)
        .join(Item, Item.id == Embedding.item_id)
        .where(Item.project_id == project_id, Embedding.model == model)
    )
    if unlabeled_pool:
        query = query.where(Item.split == POOL, Item.state != HUMAN_LABELED)
    return ItemRows(query.order_by(Embedding.item_id), Embedding.item_id)
