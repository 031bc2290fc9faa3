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


def labeler_features_key(view: str, name: str) -> str:
    """The embedding-cache name of a labeler's own features of one view (`LabelResult.features`)
    under a prompt (`name` is ``model@version``): they describe the item as that model read
    that prompt."""
    return f"features:{view}:{name}"


def save_labeler_features(
    project: Project, model: str, version: str, results: Sequence[tuple[int, Any]]
) -> int:
    """Store the features the results carry (once per item and view); returns how many
    vectors were new."""
    by_view: dict[str, tuple[list[int], list[np.ndarray]]] = {}
    for item_id, result in results:
        for view, vector in (getattr(result, "features", None) or {}).items():
            ids, vectors = by_view.setdefault(view, ([], []))
            ids.append(item_id)
            vectors.append(np.asarray(vector, dtype=np.float32))
    return sum(
        save_vectors(
            project.store,
            project.id,
            labeler_features_key(view, f"{model}@{version}"),
            ids,
            np.stack(vectors),
        )
        for view, (ids, vectors) in by_view.items()
    )


def labeler_features(
    project: Project, view: str, name: str, item_ids: Sequence[int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored features of labeler `name` (``model@version``) in one view for these items,
    zero rows where an item has none, and which items have them; None when no item has."""
    vectors = stored_vectors(project.store, labeler_features_key(view, name), item_ids)
    if not vectors:
        return None
    width = len(next(iter(vectors.values())))
    X = np.zeros((len(item_ids), width), dtype=np.float32)
    has = np.zeros(len(item_ids), dtype=bool)
    for row, item_id in enumerate(item_ids):
        vector = vectors.get(item_id)
        if vector is not None and len(vector) == width:
            X[row], has[row] = vector, True
    return X, has


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
