"""Item embeddings, computed once per (item, model) and cached in the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..active.embeddings import TfidfEmbedder
from ..store.embeddings import save_vectors, stored_vectors

if TYPE_CHECKING:
    from ..project import Project

EMBED_BATCH = 512


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
    vectors = stored_vectors(project.store, model, item_ids)
    missing = [i for i, item_id in enumerate(item_ids) if item_id not in vectors]
    done = len(item_ids) - len(missing)
    if progress:
        progress(done, len(item_ids))
    for start in range(0, len(missing), EMBED_BATCH):
        batch = missing[start : start + EMBED_BATCH]
        embedded = np.asarray(embedder.embed([texts[i] for i in batch]), dtype=np.float32)
        batch_ids = [item_ids[i] for i in batch]
        vectors.update(zip(batch_ids, embedded, strict=True))
        save_vectors(project.store, project.id, model, batch_ids, embedded)
        done += len(batch)
        if progress:
            progress(done, len(item_ids))
    if not item_ids:
        return np.zeros((0, getattr(embedder, "dim", 0)), dtype=np.float32)
    return np.stack([vectors[item_id] for item_id in item_ids])
