"""The query-strategy interface and what every strategy shares: batch de-duplication and
the cold start."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state

from labelloop.active._distances import FloatArray, inverse_norms

#: Two items with a cosine similarity above this are near-duplicates: one per batch.
DUPLICATE_SIMILARITY = 0.95
#: Largest sample the cold start clusters (k-means cost grows with it, quality barely).
COLD_START_SAMPLE = 20_000

#: What `check_random_state` accepts: a seed, a generator, or None for a fresh one.
Seed = int | np.random.RandomState | None


class StrategyNotReady(ValueError):
    """The strategy lacks inputs it needs for this round (a model's probabilities, a committee,
    an LLM's answers): a state of the project rather than a bug, so callers can say what to do."""

    def __init__(self, strategy: str, missing: Sequence[str]) -> None:
        super().__init__(f"strategy {strategy!r} needs {', '.join(missing)}")
        self.strategy = strategy
        self.missing = list(missing)


InputName = Literal["proba", "embeddings", "committee_probas", "llm_proba"]
INPUT_NAMES: tuple[InputName, ...] = get_args(InputName)


@dataclass(frozen=True)
class Pool:
    """What a strategy reads about the pool: the labeled rows and the optional model outputs.

    `QueryStrategy.select` checks that every given array has a row per pool item and that the
    strategy's `requires` are present, so strategies read them through `need`.
    """

    labeled_mask: NDArray[np.bool_]
    proba: FloatArray | None = None
    embeddings: FloatArray | None = None
    committee_probas: FloatArray | None = None
    llm_proba: FloatArray | None = None

    def given(self, name: InputName) -> FloatArray | None:
        """The input called `name`, None when it was not given."""
        return {
            "proba": self.proba,
            "embeddings": self.embeddings,
            "committee_probas": self.committee_probas,
            "llm_proba": self.llm_proba,
        }[name]

    def need(self, name: InputName) -> FloatArray:
        """The input called `name`; a strategy asks only for what its `requires` names."""
        value = self.given(name)
        if value is None:
            raise ValueError(f"the strategy needs {name}")
        return value

    @property
    def unlabeled(self) -> NDArray[np.intp]:
        """Indices of the pool rows nobody has labeled yet."""
        return np.flatnonzero(~self.labeled_mask)


class QueryStrategy(ABC):
    """Chooses which unlabeled pool items people should label next.

    `requires` names the inputs `select` needs (a subset of "proba", "embeddings",
    "committee_probas", "llm_proba"). Every strategy returns distinct indices into the pool,
    never labeled ones, and no two near-duplicates (cosine > 0.95) in one batch when
    embeddings are given. Strategies that need a model fall back to a cold start (k-means
    typicality on the embeddings) while nothing is labeled yet.
    """

    name: ClassVar[str]
    requires: ClassVar[frozenset[InputName]] = frozenset()

    def select(
        self,
        k: int,
        *,
        proba: FloatArray | None = None,
        embeddings: FloatArray | None = None,
        labeled_mask: ArrayLike,
        committee_probas: FloatArray | None = None,
        llm_proba: FloatArray | None = None,
        random_state: Seed = None,
    ) -> NDArray[np.intp]:
        pool = Pool(
            np.asarray(labeled_mask, dtype=bool), proba, embeddings, committee_probas, llm_proba
        )
        n_pool = len(pool.labeled_mask)
        for name in INPUT_NAMES:
            given = pool.given(name)
            rows = None if given is None else given.shape[1 if name == "committee_probas" else 0]
            if rows is not None and rows != n_pool:
                raise ValueError(f"{name} has {rows} rows, the pool has {n_pool}")
        k = min(int(k), len(pool.unlabeled))
        if k <= 0:
            return np.zeros(0, dtype=np.intp)
        if not pool.labeled_mask.any() and self.cold_starts and pool.embeddings is not None:
            return cold_start(k, pool.embeddings, pool.labeled_mask, random_state)
        missing = sorted(n for n in self.requires if pool.given(n) is None)
        if missing:
            raise StrategyNotReady(self.name, missing)
        return self._select(k, pool, random_state)

    #: Whether the strategy replaces its own rule by the cold start when nothing is labeled.
    cold_starts: ClassVar[bool] = True

    @abstractmethod
    def _select(self, k: int, pool: Pool, random_state: Seed) -> NDArray[np.intp]:
        """`k` (at least one, at most the unlabeled count) distinct unlabeled rows."""


class ScoreStrategy(QueryStrategy):
    """A strategy that scores every item and takes the best-scoring distinct ones."""

    @abstractmethod
    def scores(self, pool: Pool) -> FloatArray:
        """Higher is more useful to label. Ties are broken by `tie_break`, then by index."""

    def tie_break(self, pool: Pool) -> FloatArray | None:
        """A secondary key (higher first) for equal scores; None for index order only."""
        return None

    def candidates(self, n: int, pool: Pool) -> tuple[NDArray[np.intp], FloatArray]:
        """Unlabeled rows that include the `n` best-ranked ones, and their scores.

        Every unlabeled row left out must score strictly less (rounded to 10 decimals) than
        the `n`-th best returned. The default scores every row; strategies whose scores are
        expensive narrow the set down first.
        """
        rows = pool.unlabeled
        return rows, self.scores(pool)[rows]

    def _select(self, k: int, pool: Pool, random_state: Seed) -> NDArray[np.intp]:
        n_free = len(pool.unlabeled)
        secondary = self.tie_break(pool)
        n = min(n_free, k + k // 4 + 16)  # a little room for near-duplicates
        while True:
            rows, scores = self.candidates(n, pool)
            complete = len(rows) == n_free
            order = self._rank(rows, scores, secondary)
            picked = take_distinct(order if complete else order[:n], k, pool.embeddings)
            if len(picked) == k or complete:
                return picked
            n = min(n_free, 4 * n)

    @staticmethod
    def _rank(
        rows: NDArray[np.intp],
        scores: FloatArray,
        secondary: FloatArray | None,
    ) -> NDArray[np.intp]:
        """`rows` by score (higher first), then by `secondary`, then by index."""
        # Rounding makes float noise (0.6 - 0.4 vs 0.5 - 0.3) a tie that the keys below break.
        keys: list[NDArray[Any]] = [rows]  # np.lexsort sorts by the last key first
        if secondary is not None:
            keys.append(-secondary[rows])
        keys.append(-np.round(scores, 10))
        return rows[np.lexsort(keys)]


def take_distinct(
    order: NDArray[np.integer],
    k: int,
    embeddings: FloatArray | None,
    threshold: float = DUPLICATE_SIMILARITY,
    chunk: int = 1024,
) -> NDArray[np.intp]:
    """The first `k` items of `order` skipping near-duplicates of items already taken."""
    if embeddings is None:
        return np.asarray(order[:k], dtype=np.intp)
    taken: list[int] = []
    taken_vectors: NDArray[np.float32] = np.zeros((0, embeddings.shape[1]), dtype=np.float32)
    for start in range(0, len(order), chunk):
        block = order[start : start + chunk]
        vectors = _unit(embeddings[block])
        # the closest item already taken decides (-inf while none is)
        clash = np.max(vectors @ taken_vectors.T, axis=1, initial=-np.inf) > threshold
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
    embeddings: FloatArray,
    labeled_mask: NDArray[np.bool_],
    random_state: Seed = None,
) -> NDArray[np.intp]:
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


def _unit(x: FloatArray) -> NDArray[np.float32]:
    return np.asarray(x, dtype=np.float32) * inverse_norms(x)[:, None]
