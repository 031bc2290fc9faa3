"""The query-strategy interface and what every strategy shares: batch de-duplication and
the cold start."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state

from labelloop.active._distances import inverse_norms

#: Two items with a cosine similarity above this are near-duplicates: one per batch.
DUPLICATE_SIMILARITY = 0.95
#: Largest sample the cold start clusters (k-means cost grows with it, quality barely).
COLD_START_SAMPLE = 20_000


class QueryStrategy(ABC):
    """Chooses which unlabeled pool items people should label next.

    `requires` names the inputs `select` needs (a subset of "proba", "embeddings",
    "committee_probas", "llm_proba"). Every strategy returns distinct indices into the pool,
    never labeled ones, and no two near-duplicates (cosine > 0.95) in one batch when
    embeddings are given. Strategies that need a model fall back to a cold start (k-means
    typicality on the embeddings) while nothing is labeled yet.
    """

    name: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset()

    def select(
        self,
        k: int,
        *,
        proba: np.ndarray | None = None,
        embeddings: np.ndarray | None = None,
        labeled_mask: np.ndarray,
        committee_probas: np.ndarray | None = None,
        llm_proba: np.ndarray | None = None,
        random_state: int | np.random.RandomState | None = None,
    ) -> np.ndarray:
        labeled_mask = np.asarray(labeled_mask, dtype=bool)
        inputs = {
            "proba": proba,
            "embeddings": embeddings,
            "committee_probas": committee_probas,
            "llm_proba": llm_proba,
        }
        for name, given in inputs.items():
            rows = (
                None if given is None else np.shape(given)[1 if name == "committee_probas" else 0]
            )
            if rows is not None and rows != len(labeled_mask):
                raise ValueError(f"{name} has {rows} rows, the pool has {len(labeled_mask)}")
        k = min(int(k), int(np.count_nonzero(~labeled_mask)))
        if k <= 0:
            return np.zeros(0, dtype=np.intp)
        if not labeled_mask.any() and self.cold_starts and embeddings is not None:
            return cold_start(k, embeddings, labeled_mask, random_state)
        missing = sorted(n for n in self.requires if inputs[n] is None)
        if missing:
            raise ValueError(f"strategy {self.name!r} needs {', '.join(missing)}")
        return self._select(k, labeled_mask=labeled_mask, random_state=random_state, **inputs)

    #: Whether the strategy replaces its own rule by the cold start when nothing is labeled.
    cold_starts: ClassVar[bool] = True

    @abstractmethod
    def _select(
        self,
        k: int,
        *,
        proba: np.ndarray | None,
        embeddings: np.ndarray | None,
        labeled_mask: np.ndarray,
        committee_probas: np.ndarray | None,
        llm_proba: np.ndarray | None,
        random_state: int | np.random.RandomState | None,
    ) -> np.ndarray: ...


class ScoreStrategy(QueryStrategy):
    """A strategy that scores every item and takes the best-scoring distinct ones."""

    @abstractmethod
    def scores(
        self,
        *,
        proba: np.ndarray | None,
        embeddings: np.ndarray | None,
        labeled_mask: np.ndarray,
        committee_probas: np.ndarray | None,
        llm_proba: np.ndarray | None,
    ) -> np.ndarray:
        """Higher is more useful to label. Ties are broken by `tie_break`, then by index."""

    def tie_break(self, **inputs: np.ndarray | None) -> np.ndarray | None:
        """A secondary key (higher first) for equal scores; None for index order only."""
        return None

    def candidates(self, n: int, **inputs: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Unlabeled rows that include the `n` best-ranked ones, and their scores.

        Every unlabeled row left out must score strictly less (rounded to 10 decimals) than
        the `n`-th best returned. The default scores every row; strategies whose scores are
        expensive narrow the set down first.
        """
        rows = np.flatnonzero(~inputs["labeled_mask"])
        return rows, self.scores(**inputs)[rows]

    def _select(self, k: int, *, random_state: object, **inputs: np.ndarray | None) -> np.ndarray:
        n_free = int(np.count_nonzero(~inputs["labeled_mask"]))
        secondary = self.tie_break(**inputs)
        n = min(n_free, k + k // 4 + 16)  # a little room for near-duplicates
        while True:
            rows, scores = self.candidates(n, **inputs)
            complete = len(rows) == n_free
            order = self._rank(rows, scores, secondary)
            picked = take_distinct(order if complete else order[:n], k, inputs["embeddings"])
            if len(picked) == k or complete:
                return picked
            n = min(n_free, 4 * n)

    @staticmethod
    def _rank(rows: np.ndarray, scores: np.ndarray, secondary: np.ndarray | None) -> np.ndarray:
        """`rows` by score (higher first), then by `secondary`, then by index."""
        # Rounding makes float noise (0.6 - 0.4 vs 0.5 - 0.3) a tie that the keys below break.
        keys = [rows]  # np.lexsort sorts by the last key first
        if secondary is not None:
            keys.append(-secondary[rows])
        keys.append(-np.round(scores, 10))
        return rows[np.lexsort(keys)]


def take_distinct(
    order: np.ndarray,
    k: int,
    embeddings: np.ndarray | None,
    threshold: float = DUPLICATE_SIMILARITY,
    chunk: int = 1024,
) -> np.ndarray:
    """The first `k` items of `order` skipping near-duplicates of items already taken."""
    if embeddings is None:
        return np.asarray(order[:k], dtype=np.intp)
    taken: list[int] = []
    taken_vectors = np.zeros((0, embeddings.shape[1]), dtype=np.float32)
    for start in range(0, len(order), chunk):
        block = order[start : start + chunk]
        vectors = _unit(embeddings[block])
        clash = (vectors @ taken_vectors.T > threshold).any(axis=1)
        within = vectors @ vectors.T
        kept_here: list[int] = []
        for j in range(len(block)):
            if clash[j] or any(within[j, i] > threshold for i in kept_here):
                continue
            kept_here.append(j)
            if len(taken) + len(kept_here) == k:
                break
        taken.extend(block[kept_here].tolist())
        taken_vectors = np.vstack([taken_vectors, vectors[kept_here]])
        if len(taken) >= k:
            break
    return np.asarray(taken, dtype=np.intp)


def cold_start(
    k: int,
    embeddings: np.ndarray,
    labeled_mask: np.ndarray,
    random_state: int | np.random.RandomState | None = None,
) -> np.ndarray:
    """Typical, varied items when no label exists: the item nearest each of k k-means centers.

    Clusters a random sample of at most 20,000 unlabeled items (cosine geometry), so the cost
    does not grow with the pool.
    """
    rng = check_random_state(random_state)
    candidates = np.flatnonzero(~labeled_mask)
    if len(candidates) > max(COLD_START_SAMPLE, 20 * k):
        candidates = np.sort(rng.choice(candidates, max(COLD_START_SAMPLE, 20 * k), False))
    vectors = _unit(embeddings[candidates])
    km = KMeans(n_clusters=k, n_init=1, random_state=rng.randint(2**31 - 1))
    labels = km.fit_predict(vectors)
    sims = vectors @ _unit(km.cluster_centers_).T
    chosen: list[int] = []
    for cluster in range(k):
        members = np.flatnonzero(labels == cluster)
        if len(members):
            chosen.append(int(candidates[members[np.argmax(sims[members, cluster])]]))
    order = np.concatenate([chosen, np.setdiff1d(candidates, chosen)])
    return take_distinct(order, k, embeddings)


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32) * inverse_norms(x)[:, None]
