"""Exact "farthest from the reference set" queries without a pass over every pool × reference pair.

Active-learning selections by distance only need the pool rows *farthest* from their nearest
reference (labeled) row, not every row's distance. `ReferenceIndex` keeps an upper bound of
that distance per pool row and tightens it lazily, only for the rows whose bound could still
make the cut, in decreasing order of bound. The answer is exact: bounds only decide what to
compute.

The bound is an inverted-file search. The reference rows are clustered (spherical k-means on
a sample) into about sqrt(n_probe·M) lists; each pool row probes its `n_probe` nearest lists,
and its distance to the nearest member of those lists bounds its true distance from above
(and usually equals it). A pool of 1,000,000 rows against 10,000 references costs about
N·2·sqrt(n_probe·M)·d multiply-adds (2% of the exact N·M·d), one contiguous block of the
pool at a time, then exact distances for the few thousand rows whose bound reaches the top.
Small pools skip the index and compute every distance exactly (`exact_cells`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labelloop.active._distances import (
    FloatArray,
    common_dtype,
    inverse_norms,
    min_cosine_distance,
    row_blocks,
    unit_rows,
)

#: Below this many pool × reference cells every distance is computed outright.
EXACT_CELLS = 1 << 27
#: Added to every bound: float32 products of the same pair differ slightly with BLAS blocking.
BOUND_SLACK = 1e-4
#: Pool rows whose exact distance is computed in one go (bounds the gathered copy, ~12 MB).
EXACT_CHUNK = 8192
#: Pool rows bounded at a time: large enough for efficient products per list (~100 MB).
BLOCK_ROWS = 1 << 18
#: Decimals scores are rounded to before they are compared (as `ScoreStrategy` ranks them).
DECIMALS = 10
#: Reference rows clustered into lists (a sample is enough: any lists give bounds).
KMEANS_SAMPLE = 20_000

#: Ranks candidate rows from their indices and distances; non-decreasing in the distance.
Score = Callable[[NDArray[np.intp], FloatArray], FloatArray]


def _distance_score(rows: NDArray[np.intp], distance: FloatArray) -> FloatArray:
    return distance


def spherical_kmeans(
    unit: FloatArray, n_clusters: int, *, n_iter: int = 8, seed: int = 0
) -> FloatArray:
    """Unit-norm centroids of `unit` rows (cosine k-means, Lloyd iterations, float32)."""
    rng = np.random.default_rng(seed)
    centroids = unit[rng.choice(len(unit), n_clusters, replace=False)].copy()
    for _ in range(n_iter):
        assign = np.argmax(unit @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, unit)
        empty = ~sums.any(axis=1)
        sums[empty] = centroids[empty]  # an empty cluster keeps its centroid
        centroids = unit_rows(sums)
    return centroids


class ReferenceIndex:
    """Nearest-reference cosine distances of the rows of `x`: bounds for all, exact on demand.

    `x` is read blockwise and never copied whole. Reference rows can be added (`add`), as
    labels accumulate: each joins its nearest list, and only the bounds of the pool rows
    probing that list are lowered (distances only shrink, so the others stay valid).
    """

    def __init__(
        self,
        x: FloatArray,
        reference: FloatArray,
        *,
        n_probe: int = 1,
        exact_cells: int | None = None,
        seed: int = 0,
    ) -> None:
        exact_cells = EXACT_CELLS if exact_cells is None else exact_cells
        self.x = x
        self.dtype = common_dtype(x, reference)
        self.reference = np.asarray(reference, dtype=self.dtype)
        self._exact = np.full(len(x), np.nan, dtype=self.dtype)
        self.indexed = len(x) * len(reference) > exact_cells and len(reference) > 3
        if not self.indexed:
            self._exact[:] = min_cosine_distance(x, self.reference, dtype=self.dtype)
            self.upper = self._exact.astype(np.float32)
            return
        self._inv = inverse_norms(x)
        unit_ref = unit_rows(self.reference)
        rng = np.random.default_rng(seed)
        sample = unit_ref[rng.permutation(len(unit_ref))[:KMEANS_SAMPLE]]
        n_lists = max(2, min(int(np.sqrt(n_probe * len(unit_ref))), len(unit_ref) // 4))
        self._centroids = spherical_kmeans(sample, n_lists, seed=seed)
        self._n_probe = min(n_probe, n_lists)
        self._lists: list[FloatArray] = [unit_ref[:0]] * n_lists
        self._extend_lists(unit_ref)
        #: Upper bound of each row's distance, slack included.
        self.upper = np.empty(len(x), dtype=np.float32)
        self._probes = np.empty((len(x), self._n_probe), dtype=np.int32)
        for rows in row_blocks(len(x), 1, BLOCK_ROWS):
            self._probe(rows)
            self._list_bounds(rows, self._lists)

    # -- bounds ---------------------------------------------------------------------------

    def _extend_lists(self, unit_new: FloatArray) -> list[FloatArray]:
        """File `unit_new` rows under their nearest centroids; returns them list by list."""
        lists = np.argmax(unit_new @ self._centroids.T, axis=1)
        added = [unit_new[:0]] * len(self._centroids)
        for c in np.unique(lists):
            added[c] = unit_new[lists == c]
            self._lists[c] = np.concatenate([self._lists[c], added[c]])
        return added

    def _probe(self, rows: slice) -> None:
        """The `n_probe` nearest lists of each row of a pool block; bounds start at infinity."""
        sims = np.asarray(self.x[rows], dtype=np.float32) @ self._centroids.T
        self.upper[rows] = np.inf
        for j in range(self._n_probe):
            nearest = np.argmax(sims, axis=1)
            self._probes[rows, j] = nearest
            sims[np.arange(len(sims)), nearest] = -np.inf

    def _list_bounds(self, rows: slice, lists: list[FloatArray]) -> None:
        """Lower the bounds of a pool block by its distance to the `lists` members it probes."""
        probing_rows = np.repeat(np.arange(rows.start, rows.stop), self._n_probe)
        probed_lists = self._probes[rows].ravel()
        by_list = np.argsort(probed_lists, kind="stable")
        flat_rows, flat_lists = probing_rows[by_list], probed_lists[by_list]
        cuts = np.flatnonzero(np.diff(flat_lists)) + 1
        for group in np.split(np.arange(len(flat_rows)), cuts):
            if not len(group):
                continue
            members = lists[flat_lists[group[0]]]
            if not len(members):
                continue
            r = flat_rows[group]  # distinct: a row probes a list once
            sims = np.asarray(self.x[r], dtype=np.float32) @ members.T
            bound = 1.0 - sims.max(axis=1) * self._inv[r] + BOUND_SLACK
            self.upper[r] = np.minimum(self.upper[r], bound)

    def add(self, reference: FloatArray) -> None:
        """More reference rows: bounds and known distances can only shrink."""
        new = np.asarray(reference, dtype=self.dtype)
        if not len(new):
            return
        self.reference = np.concatenate([self.reference, new])
        if not self.indexed:
            fresh = min_cosine_distance(self.x, new, dtype=self.dtype)
            np.minimum(self._exact, fresh, out=self._exact)
            self.upper = self._exact.astype(np.float32)
            return
        added = self._extend_lists(unit_rows(new))
        for rows in row_blocks(len(self.x), 1, BLOCK_ROWS):
            self._list_bounds(rows, added)
        self._exact.fill(np.nan)

    # -- exact queries --------------------------------------------------------------------

    def exact(self, rows: NDArray[np.integer]) -> FloatArray:
        """Exact distances of `rows` (computed once, then remembered until `add`)."""
        rows = np.asarray(rows, dtype=np.intp)
        unknown = rows[np.isnan(self._exact[rows])]
        for start in range(0, len(unknown), EXACT_CHUNK):
            chunk = unknown[start : start + EXACT_CHUNK]
            self._exact[chunk] = min_cosine_distance(
                self.x[chunk], self.reference, dtype=self.dtype
            )
        if self.indexed:
            self.upper[unknown] = np.minimum(
                self.upper[unknown], self._exact[unknown] + BOUND_SLACK
            )
        return self._exact[rows]

    def top(
        self, n: int, eligible: NDArray[np.bool_], score: Score = _distance_score
    ) -> tuple[NDArray[np.intp], FloatArray]:
        """Rows of `eligible` (a mask) holding the `n` highest scores, with exact distances.

        `score(rows, distance)` must be non-decreasing in `distance`. Returns a superset of the
        top `n` in no particular order: every eligible row left out scores strictly less
        (after rounding to 10 decimals) than the `n`-th best returned one, so ranking the
        returned rows gives exactly the first `n` of the full ranking.
        """
        candidates = np.flatnonzero(eligible)
        n = max(n, 1)
        if not self.indexed or n >= len(candidates):
            return candidates, self.exact(candidates)
        bound = np.round(score(candidates, self.upper[candidates]), DECIMALS)
        by_bound = np.argsort(-bound, kind="stable")
        order, bound = candidates[by_bound], bound[by_bound]
        done, step = 0, n + n // 4 + 64  # bounds are mostly exact: a little room is enough
        while True:
            done = min(done + step, len(order))
            head = order[:done]
            scores = np.round(score(head, self.exact(head)), DECIMALS)
            if done == len(order) or np.partition(scores, done - n)[done - n] > bound[done]:
                return head, self._exact[head]
            step = n if step < n else 2 * step

    def farthest(self, eligible: NDArray[np.bool_]) -> np.floating:
        """The largest exact distance among `eligible` rows (0 when there are none)."""
        rows, distance = self.top(1, eligible)
        return distance.max() if len(rows) else self.dtype(0.0)


class LabeledIndex:
    """A `ReferenceIndex` of the labeled rows of a pool, kept across rounds.

    Labels only accumulate in an active-learning loop, so after the first round only the newly
    labeled rows are added. Any other change of the labeled set (or of the pool) rebuilds it.
    """

    def __init__(self) -> None:
        self._mask: NDArray[np.bool_] | None = None
        self._index: ReferenceIndex | None = None
        self._pool_id: tuple[object, ...] | None = None

    def __call__(self, embeddings: FloatArray, labeled_mask: ArrayLike) -> ReferenceIndex:
        mask = np.asarray(labeled_mask, dtype=bool)
        pool_id = _fingerprint(embeddings)
        index, known = self._index, self._mask
        if (
            index is not None
            and known is not None
            and self._pool_id == pool_id
            and len(known) == len(mask)
            and not np.any(known & ~mask)
            # an exact index stays exact only while it is small
            and (index.indexed or len(mask) * np.count_nonzero(mask) <= EXACT_CELLS)
        ):
            index.add(embeddings[mask & ~known])
        else:
            index = ReferenceIndex(embeddings, embeddings[mask])
        self._index, self._mask, self._pool_id = index, mask.copy(), pool_id
        return index


def _fingerprint(x: FloatArray) -> tuple[object, ...]:
    """Identity, shape and a strided sample of the rows: changes when the pool does."""
    sample = np.asarray(x[:: max(1, len(x) // 64)], dtype=np.float32)
    return id(x), np.shape(x), hash(sample.tobytes())
