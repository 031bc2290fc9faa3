"""Label spreading on the items' k-nearest-neighbour graph: the unlabeled pool in training.

A logistic student sees only the labeled items. Spreading (Zhou et al. 2004) lets labels flow
along the pool's own geometry: each item's label distribution is repeatedly replaced by a
mix of its neighbours' and its own starting label,

    F ← α · S F + (1 − α) · Y,   S = D^-1/2 W D^-1/2,

where W holds cosine similarities to each item's k nearest neighbours (symmetrised) and Y the
trusted labels one-hot (zero rows elsewhere). Clusters that the embedding separates get the
label of the labeled items inside them, even where a linear boundary would cut through them.

Large pools: the graph is built among at most `max_nodes` items (every labeled item first, then
a random sample); every other item takes the mean of its nearest nodes' spread labels. Exact
neighbours, float32 products in blocks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse

from ._distances import row_blocks, unit_rows
from .students import cross_fit_splits

__all__ = ["SpreadingModel", "cross_fit_spread", "knn_graph", "spread_labels"]

K_NEIGHBOURS = 10
ALPHA = 0.9
ITERATIONS = 30
MAX_NODES = 4_000


def nearest(
    queries: np.ndarray, points: np.ndarray, k: int, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of each query's `k` nearest points (unit rows in)."""
    k = min(k, len(points) - (1 if exclude_self else 0))
    idx = np.zeros((len(queries), k), dtype=np.intp)
    sim = np.zeros((len(queries), k), dtype=np.float32)
    for block in _blocks(len(queries), len(points)):
        s = queries[block] @ points.T
        if exclude_self:
            s[np.arange(s.shape[0]), np.arange(block.start, block.stop)] = -np.inf
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        idx[block] = top
        sim[block] = np.take_along_axis(s, top, axis=1)
    return idx, sim


def _blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    return row_blocks(n_rows, max(n_cols, 1))


def knn_graph(X: np.ndarray, k: int = K_NEIGHBOURS) -> sparse.csr_matrix:
    """Symmetric normalised affinity S = D^-1/2 W D^-1/2 of the cosine kNN graph of X's rows."""
    unit = unit_rows(np.asarray(X))
    n = len(unit)
    idx, sim = nearest(unit, unit, k, exclude_self=True)
    weights = np.clip(sim, 0.0, None).ravel()
    W = sparse.csr_matrix((weights, (np.repeat(np.arange(n), idx.shape[1]), idx.ravel())), (n, n))
    W = W.maximum(W.T)
    degree = np.asarray(W.sum(axis=1)).ravel()
    inv = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0)
    D = sparse.diags(inv)
    return (D @ W @ D).tocsr()


def spread_labels(
    graph: sparse.csr_matrix,
    y: np.ndarray,
    n_labels: int,
    alpha: float = ALPHA,
    iterations: int = ITERATIONS,
) -> np.ndarray:
    """Per-label probabilities of every node after spreading the labels `y` (−1: none).

    A node no label reaches gets the labeled items' label frequencies."""
    y = np.asarray(y)
    Y = np.zeros((len(y), n_labels))
    known = y >= 0
    Y[np.flatnonzero(known), y[known]] = 1.0
    F = Y.copy()
    for _ in range(iterations):
        F = alpha * (graph @ F) + (1 - alpha) * Y
    prior = (Y[known].sum(axis=0) + 1.0) / (known.sum() + n_labels)
    total = F.sum(axis=1, keepdims=True)
    # A little of the prior everywhere: spread mass is a vote share, never a certainty.
    mass = total / (total + 1e-3)
    shares = np.where(total > 0, F / np.maximum(total, 1e-12), prior)
    return np.asarray(mass * shares + (1 - mass) * prior)


class SpreadingModel:
    """The kNN graph of a pool (built once), spreading any labeling of it on demand."""

    def __init__(
        self,
        X: np.ndarray,
        trusted: np.ndarray,
        *,
        k: int = K_NEIGHBOURS,
        max_nodes: int = MAX_NODES,
        random_state: int = 0,
    ) -> None:
        unit = unit_rows(np.asarray(X))
        n = len(unit)
        if n <= max_nodes:
            nodes = np.arange(n)
        else:
            rest = np.flatnonzero(~trusted)
            rng = np.random.RandomState(random_state)
            extra = rng.choice(rest, size=max(0, max_nodes - int(trusted.sum())), replace=False)
            nodes = np.sort(np.concatenate([np.flatnonzero(trusted), extra]))
        self.n, self.nodes, self.k = n, nodes, k
        self.graph = knn_graph(unit[nodes], k)
        others = np.setdiff1d(np.arange(n), nodes)
        self.others = others
        if len(others):
            self.other_idx, _ = nearest(unit[others], unit[nodes], k, exclude_self=False)

    def spread(self, y: np.ndarray, n_labels: int) -> np.ndarray:
        """Probabilities for every item of the pool from the labels `y` (−1: none)."""
        out = np.zeros((self.n, n_labels))
        out[self.nodes] = spread_labels(self.graph, np.asarray(y)[self.nodes], n_labels)
        if len(self.others):
            out[self.others] = out[self.nodes][self.other_idx].mean(axis=1)
        return out


def cross_fit_spread(
    model: SpreadingModel,
    y: np.ndarray,
    trusted: np.ndarray,
    n_labels: int,
    n_splits: int = 5,
    random_state: int = 0,
) -> np.ndarray:
    """Spread probabilities for every item, out-of-fold for the trusted ones (their own label
    hidden while it is predicted), so calibration and the stack see honest confidences."""
    y = np.where(trusted, y, -1)
    out = model.spread(y, n_labels)
    rows = np.flatnonzero(trusted)
    for _, test in cross_fit_splits(y[rows], n_splits, random_state):
        hidden = y.copy()
        hidden[rows[test]] = -1
        out[rows[test]] = model.spread(hidden, n_labels)[rows[test]]
    return out
