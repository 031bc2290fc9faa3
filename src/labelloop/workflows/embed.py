"""Item embeddings, computed once per (item, model) and cached in the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from ..active.embeddings import TfidfEmbedder
from ..store import Embedding
from ..store.bulk import bulk_insert

if TYPE_CHECKING:
    from ..project import Project

EMBED_BATCH = 512
READ_CHUNK = 5_000


def is_corpus_fitted(embedder: Any) -> bool:
    """TF-IDF is fitted on the texts at hand: its vectors are not comparable across runs."""
    return isinstance(embedder, TfidfEmbedder)


def item_embeddings(
    project: Project,
    embedder: Any,
    item_ids: Sequence[int],
    texts: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Embeddings for the given items, in order; missing ones are computed and stored."""
    if is_corpus_fitted(embedder):
        return embedder.fit(list(texts)).embed(list(texts))
    model = embedder.model_id
    vectors: dict[int, np.ndarray] = {}
    with project.store.session() as session:
        for start in range(0, len(item_ids), READ_CHUNK):
            chunk = list(item_ids[start : start + READ_CHUNK])
            for item_id, blob in session.execute(
                select(Embedding.item_id, Embedding.vector).where(
                    Embedding.item_id.in_(chunk), Embedding.model == model
                )
            ):
                vectors[item_id] = np.frombuffer(blob, dtype=np.float32)
    missing = [i for i, item_id in enumerate(item_ids) if item_id not in vectors]
    done = len(item_ids) - len(missing)
    if progress:
        progress(done, len(item_ids))
    for start in range(0, len(missing), EMBED_BATCH):
        batch = missing[start : start + EMBED_BATCH]
        embedded = np.asarray(embedder.embed([texts[i] for i in batch]), dtype=np.float32)
        rows = []
        for i, vector in zip(batch, embedded, strict=True):
            vectors[item_ids[i]] = vector
            rows.append(
                {
                    "project_id": project.id,
                    "item_id": item_ids[i],
                    "model": model,
                    "vector": vector.tobytes(),
                }
            )
        with project.store.session() as session:
            bulk_insert(session, Embedding.__table__, rows)
        done += len(batch)
        if progress:
            progress(done, len(item_ids))
    if not item_ids:
        return np.zeros((0, getattr(embedder, "dim", 0)), dtype=np.float32)
    return np.stack([vectors[item_id] for item_id in item_ids])
