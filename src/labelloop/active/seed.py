"""The seed's three acquisition functions, same names, signatures and selections, at any scale.

They select exactly the index sets the original code selects (same scores, computed in the
same precision, then the same `argsort(...)[-n_select:]`), but the nearest-labeled distance
is computed blockwise instead of through the full N×M `cosine_distances` matrix.
"""

from __future__ import annotations

import numpy as np

from labelloop.active._distances import min_cosine_distance


def entropy(predictions: np.ndarray) -> np.ndarray:
    """Shannon entropy per row, with the seed's `+ 1e-10` guard against log(0)."""
    p = np.asarray(predictions)
    return -np.sum(p * np.log(p + 1e-10), axis=1)


def uncertainty_sampling(predictions: np.ndarray, n_select: int = 50) -> np.ndarray:
    """Indices of the `n_select` rows with the highest predictive entropy."""
    return np.argsort(entropy(predictions))[-n_select:]


def diversity_sampling(
    embeddings: np.ndarray, labeled_embeddings: np.ndarray, n_select: int = 50
) -> np.ndarray:
    """Indices of the `n_select` rows farthest (cosine) from their nearest labeled row."""
    min_distances = min_cosine_distance(embeddings, labeled_embeddings)
    return np.argsort(min_distances)[-n_select:]


def hybrid_acquisition(
    predictions: np.ndarray,
    embeddings: np.ndarray,
    labeled_embeddings: np.ndarray,
    n_select: int = 50,
    uncertainty_weight: float = 0.6,
) -> np.ndarray:
    """Weighted sum of normalised entropy and normalised distance to the labeled set."""
    combined = hybrid_scores(predictions, embeddings, labeled_embeddings, uncertainty_weight)
    return np.argsort(combined)[-n_select:]


def hybrid_scores(
    predictions: np.ndarray,
    embeddings: np.ndarray,
    labeled_embeddings: np.ndarray,
    uncertainty_weight: float = 0.6,
    min_distances: np.ndarray | None = None,
) -> np.ndarray:
    """The seed's combined score: w·H(p)/log(C) + (1 - w)·d_min / max(d_min)."""
    uncertainty = entropy(predictions) / np.log(np.asarray(predictions).shape[1])
    if min_distances is None:
        min_distances = min_cosine_distance(embeddings, labeled_embeddings)
    diversity = min_distances / max(min_distances.max(), 1e-10)
    return uncertainty_weight * uncertainty + (1 - uncertainty_weight) * diversity
