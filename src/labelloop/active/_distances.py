"""Blocked cosine computations: nearest-neighbour distances without an N×M matrix in memory.

A pool of a million embeddings against ten thousand labeled ones would need a 40 GB distance
matrix; instead rows are processed in blocks and only a running minimum per row is kept.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray
from sklearn.preprocessing import normalize

#: Float rows of any precision: embeddings, unit vectors, distances, probabilities.
FloatArray = NDArray[np.floating]

#: Number of pool cells (rows × columns) computed at once; bounds the scratch memory (~64 MB).
BLOCK_CELLS = 1 << 24


def row_blocks(n_rows: int, n_cols: int, block_cells: int = BLOCK_CELLS) -> Iterator[slice]:
    """Slices over `n_rows` so that one block of an (rows × `n_cols`) product fits the budget."""
    step = max(1, block_cells // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def common_dtype(*arrays: FloatArray) -> type[np.floating]:
    """float32 when every input is float32 (as scikit-learn does), float64 otherwise."""
    return np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64


def unit_rows(x: FloatArray, dtype: type[np.floating] = np.float32) -> FloatArray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as `cosine_distances` does."""
    return normalize(np.asarray(x, dtype=dtype), copy=True)


def min_cosine_distance(
    x: FloatArray,
    reference: FloatArray,
    *,
    dtype: type[np.floating] | None = None,
    block_cells: int = BLOCK_CELLS,
) -> FloatArray:
    """Cosine distance from each row of `x` to its nearest row of `reference`.

    Equals `cosine_distances(x, reference).min(axis=1)` (same normalisation, same clipping to
    [0, 2]) but uses O(block) memory. Computed in float32 when both inputs are float32.
    """
    dtype = dtype or common_dtype(x, reference)
    out = np.empty(len(x), dtype=dtype)
    if len(reference) == 0:
        out.fill(np.inf)
        return out
    ref = unit_rows(reference, dtype)
    for rows in row_blocks(len(x), len(ref), block_cells):
        sims = unit_rows(x[rows], dtype) @ ref.T
        # 1 - s is monotone in s, so 1 - max(s) is bitwise equal to min(1 - s).
        out[rows] = 1.0 - sims.max(axis=1)
    np.clip(out, 0.0, 2.0, out=out)
    return out


def inverse_norms(x: FloatArray) -> NDArray[np.float32]:
    """1 / L2 norm of each row (0 for zero rows), computed blockwise in float32."""
    out = np.empty(len(x), dtype=np.float32)
    for rows in row_blocks(len(x), x.shape[1]):
        block = np.asarray(x[rows], dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        out[rows] = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return out


def max_cosine_to(
    x: FloatArray, inv_norms: NDArray[np.float32], centers: FloatArray
) -> NDArray[np.float32]:
    """Largest cosine similarity of each row of `x` to the unit rows of `centers`, blockwise."""
    centers = np.atleast_2d(np.asarray(centers, dtype=np.float32))
    out = np.empty(len(x), dtype=np.float32)
    for rows in row_blocks(len(x), max(len(centers), x.shape[1])):
        sims = np.asarray(x[rows], dtype=np.float32) @ centers.T
        out[rows] = sims.max(axis=1) * inv_norms[rows]
    return out


def greedy_k_center(
    x: FloatArray,
    k: int,
    min_distance: FloatArray,
    *,
    flush_every: int = 64,
    stop_at: float = -np.inf,
) -> NDArray[np.intp]:
    """Greedy k-center (core-set): repeatedly pick the row farthest from every chosen center.

    `min_distance` holds each row's current distance to the nearest center (the labeled set;
    `inf` for none, `-inf` for rows that must never be picked). Exact, but lazy: a new center
    is applied to the whole pool only every `flush_every` picks. In between, a heap of the
    rows with the largest (upper-bound) distances is refreshed one row at a time, which is
    enough because distances only shrink as centers are added. Picking stops early, before
    `k`, once the farthest row is no farther than `stop_at`.
    """
    m = np.array(min_distance, dtype=np.float32, copy=True)
    inv = inverse_norms(x)
    n_free = int(np.count_nonzero(m > -np.inf))
    k = min(k, n_free)
    picked: list[int] = []
    while len(picked) < k:
        before = len(picked)
        n_picks = min(flush_every, k - len(picked))
        pending = _lazy_round(x, inv, m, picked, n_picks, stop_at)
        if len(picked) - before < n_picks and float(m.max()) <= stop_at:
            break
        if len(pending):
            max_sim = max_cosine_to(x, inv, pending)
            np.minimum(m, np.float32(1.0) - max_sim, out=m)
            m[picked] = -np.inf
    return np.asarray(picked, dtype=np.intp)


def _lazy_round(
    x: FloatArray,
    inv: NDArray[np.float32],
    m: NDArray[np.float32],
    picked: list[int],
    n_picks: int,
    stop_at: float = -np.inf,
) -> FloatArray:
    """Pick up to `n_picks` centers exactly; return their unit vectors (not yet applied)."""
    n_free = int(np.count_nonzero(m > -np.inf))
    size = min(n_free, max(4096, 8 * n_picks))
    top = np.argpartition(-m, size - 1)[:size] if size < len(m) else np.arange(len(m))
    outside = np.ones(len(m), dtype=bool)
    outside[top] = False
    floor = float(m[outside].max()) if outside.any() else -np.inf
    heap = [(-float(m[i]), int(i), 0) for i in top if m[i] > -np.inf]
    heapq.heapify(heap)
    pending: list[FloatArray] = []
    while len(pending) < n_picks and heap:
        neg, i, seen = heapq.heappop(heap)
        if seen < len(pending):
            sim = float(np.max(np.stack(pending[seen:]) @ x[i].astype(np.float32)) * inv[i])
            heapq.heappush(heap, (-min(-neg, 1.0 - sim), i, len(pending)))
            continue
        if -neg < floor or -neg <= stop_at:  # refresh everything (or stop)
            break
        picked.append(i)
        m[i] = -np.inf
        pending.append(x[i].astype(np.float32) * inv[i])
    return np.stack(pending) if pending else np.zeros((0, x.shape[1]), dtype=np.float32)
