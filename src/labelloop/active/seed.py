"""The seed's three acquisition functions, same names, signatures and selections, at any scale.

They select the index sets the original code selects (same scores, computed in the same
precision, then the same `argsort(...)[-n_select:]`), but never build the N×M
`cosine_distances` matrix: small pools get every nearest-labeled distance blockwise, large
ones exact distances only for the rows that can reach the top (`ReferenceIndex`). On a large
pool, rows whose scores tie *exactly* at the cut may be ordered differently.
"""

from __future__ import annotations

import numpy as np

from labelloop.active._index import ReferenceIndex


def entropy(predictions: np.ndarray) -> np.ndarray:
    """Shannon entropy per row, with the seed's `+ 1e-10` guard against log(0)."""
    p = np.asarray(predictions)
    return -np.sum(p * np.log(p + 1e-10), axis=1)


def normalised_entropy(predictions: np.ndarray) -> np.ndarray:
    """Entropy divided by its maximum, log(number of classes): in [0, 1]."""
    return entropy(predictions) / np.log(np.asarray(predictions).shape[1])


def uncertainty_sampling(predictions: np.ndarray, n_select: int = 50) -> np.ndarray:
    """Indices of the `n_select` rows with the highest predictive entropy."""
    return np.argsort(entropy(predictions))[-n_select:]


def diversity_sampling(
    embeddings: np.ndarray, labeled_embeddings: np.ndarray, n_select: int = 50
) -> np.ndarray:
    """Indices of the `n_select` rows farthest (cosine) from their nearest labeled row."""
    index = ReferenceIndex(embeddings, labeled_embeddings)
    everything = np.ones(len(embeddings), dtype=bool)
    rows, distance = index.top(n_select, everything)
    return _top_of(rows, distance, len(embeddings), n_select)


def hybrid_acquisition(
    predictions: np.ndarray,
    embeddings: np.ndarray,
    labeled_embeddings: np.ndarray,
    n_select: int = 50,
    uncertainty_weight: float = 0.6,
) -> np.ndarray:
    """Weighted sum of normalised entropy and normalised distance to the labeled set."""
    index = ReferenceIndex(embeddings, labeled_embeddings)
    rows, combined = hybrid_top(
        index, normalised_entropy(predictions), n_select, uncertainty_weight, None
    )
    return _top_of(rows, combined, len(embeddings), n_select)


def hybrid_scores(
    uncertainty: np.ndarray,
    min_distances: np.ndarray,
    max_distance: np.floating,
    uncertainty_weight: float = 0.6,
) -> np.ndarray:
    """The seed's combined score: w·H(p)/log(C) + (1 - w)·d_min / max(d_min)."""
    diversity = min_distances / max(max_distance, 1e-10)
    return uncertainty_weight * uncertainty + (1 - uncertainty_weight) * diversity


def hybrid_top(
    index: ReferenceIndex,
    uncertainty: np.ndarray,
    n: int,
    uncertainty_weight: float,
    labeled_mask: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (unlabeled, when a mask is given) including the `n` best hybrid scores, and scores.

    The distance is normalised by the largest one over the pool; the combined score grows
    with the distance whenever 0 ≤ weight ≤ 1, which lets the index skip most rows.
    """
    eligible = np.ones(len(uncertainty), dtype=bool) if labeled_mask is None else ~labeled_mask
    farthest = index.farthest(eligible)

    def score(rows: np.ndarray, distance: np.ndarray) -> np.ndarray:
        return hybrid_scores(uncertainty[rows], distance, farthest, uncertainty_weight)

    if 0.0 <= uncertainty_weight <= 1.0:
        rows, distance = index.top(n, eligible, score)
    else:
        rows = np.flatnonzero(eligible)
        distance = index.exact(rows)
    return rows, score(rows, distance)


def _top_of(rows: np.ndarray, scores: np.ndarray, n_rows: int, n_select: int) -> np.ndarray:
    """`argsort(scores)[-n_select:]` over the whole pool, rows left out scoring lowest."""
    full = np.full(n_rows, -np.inf, dtype=scores.dtype)
    full[rows] = scores
    return np.argsort(full)[-n_select:]
