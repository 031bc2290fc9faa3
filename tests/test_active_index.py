"""The pruned nearest-reference index answers exactly what brute force answers."""

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_distances

from labelloop.active import _index, get_strategy
from labelloop.active._index import LabeledIndex, ReferenceIndex, spherical_kmeans
from labelloop.active.seed import hybrid_scores, normalised_entropy
from labelloop.active.strategies import take_distinct


def clustered(n, d=24, n_centers=12, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_centers, d)) * 2
    x = centers[rng.integers(0, n_centers, n)] + rng.normal(size=(n, d))
    return x.astype(np.float32)


@pytest.fixture()
def indexed(monkeypatch):
    """Every pool, however small, goes through the pruned index."""
    monkeypatch.setattr(_index, "EXACT_CELLS", 0)


def brute(x, reference):
    return cosine_distances(x, reference).min(axis=1)


def test_bounds_are_upper_bounds_and_top_is_exact():
    x = clustered(4000)
    ref = x[:300]
    index = ReferenceIndex(x, ref, exact_cells=0)
    assert index.indexed
    truth = brute(x, ref)
    assert np.all(index.upper >= truth - 1e-5)
    # The bound is tight for most rows, which is what makes the pruning pay.
    assert np.mean(index.upper <= truth + 2e-4) > 0.5
    eligible = np.ones(len(x), dtype=bool)
    eligible[:300] = False
    rows, distance = index.top(50, eligible)
    assert len(rows) < len(x) // 4  # most rows were never computed exactly
    np.testing.assert_allclose(distance, truth[rows], atol=1e-5)
    expected = np.flatnonzero(eligible)[np.argsort(-truth[eligible], kind="stable")[:50]]
    best = rows[np.argsort(-distance, kind="stable")[:50]]
    assert set(best.tolist()) == set(expected.tolist())
    assert index.farthest(eligible) == pytest.approx(truth[eligible].max(), abs=1e-5)


def test_small_pools_are_computed_exactly():
    x = clustered(300)
    index = ReferenceIndex(x, x[:20])
    assert not index.indexed
    np.testing.assert_allclose(index.upper, brute(x, x[:20]), atol=1e-6)


def test_adding_references_keeps_top_exact(indexed):
    x = clustered(3000, seed=1)
    rng = np.random.default_rng(2)
    mask = np.zeros(len(x), dtype=bool)
    mask[rng.choice(len(x), 100, replace=False)] = True
    cache = LabeledIndex()
    first = cache(x, mask)
    for _ in range(3):
        index = cache(x, mask)
        truth = brute(x, x[mask])
        assert np.all(index.upper >= truth - 1e-5)
        rows, distance = index.top(20, ~mask)
        np.testing.assert_allclose(distance, truth[rows], atol=1e-5)
        assert set(rows[np.argsort(-distance)[:20]]) == set(np.argsort(-truth)[:20])
        mask[rng.choice(np.flatnonzero(~mask), 60, replace=False)] = True
    assert cache(x, mask) is first  # grew in place rather than being rebuilt
    mask[np.flatnonzero(mask)[:5]] = False  # labels removed: rebuilt, still exact
    rebuilt = cache(x, mask)
    assert rebuilt is not first
    np.testing.assert_allclose(rebuilt.exact(np.arange(len(x))), brute(x, x[mask]), atol=1e-5)


def test_spherical_kmeans_finds_the_directions():
    x = clustered(2000, n_centers=4, seed=3)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    centroids = spherical_kmeans(unit, 4, seed=0)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-5)
    assert len(np.unique(np.argmax(unit @ centroids.T, axis=1))) == 4


@pytest.fixture()
def pool():
    x = clustered(3000, seed=4)
    rng = np.random.default_rng(5)
    labeled = np.zeros(len(x), dtype=bool)
    labeled[rng.choice(len(x), 150, replace=False)] = True
    return {
        "embeddings": x,
        "proba": rng.dirichlet(np.ones(3), size=len(x)),
        "labeled_mask": labeled,
    }


def _reference_order(scores, labeled, k):
    free = np.flatnonzero(~labeled)
    return free[np.lexsort([free, -np.round(scores[free], 10)])][:k]


@pytest.mark.parametrize("name", ["diversity", "hybrid"])
def test_pruned_strategies_select_what_brute_force_selects(name, pool, indexed):
    x, labeled = pool["embeddings"], pool["labeled_mask"]
    distance = brute(x, x[labeled]).astype(np.float32)
    if name == "hybrid":
        uncertainty = normalised_entropy(pool["proba"])
        scores = hybrid_scores(uncertainty, distance, distance[~labeled].max())
    else:
        scores = distance
    free = np.flatnonzero(~labeled)
    order = free[np.lexsort([free, -np.round(scores[free], 10)])]
    picked = get_strategy(name).select(40, **pool)
    np.testing.assert_array_equal(picked, take_distinct(order, 40, x))
