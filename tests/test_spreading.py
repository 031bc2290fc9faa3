"""Label spreading on the kNN graph: labels follow clusters, out-of-fold for trusted items."""

from __future__ import annotations

import numpy as np

from labelloop.active.spreading import SpreadingModel, cross_fit_spread, knn_graph, spread_labels


def two_moons_on_a_sphere(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two curved bands a linear boundary through the labeled points would cut wrongly."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    y = np.arange(n) % 2
    x = np.where(y == 0, np.cos(t), 1 - np.cos(t))
    z = np.where(y == 0, np.sin(t), 0.5 - np.sin(t))
    X = np.column_stack([x, z, np.full(n, 3.0)]) + rng.normal(0, 0.05, (n, 3))
    return X, y


def test_graph_is_symmetric_and_normalised():
    X, _ = two_moons_on_a_sphere(200)
    S = knn_graph(X, k=5)
    assert abs(S - S.T).max() < 1e-6
    assert S.diagonal().max() == 0


def test_spreading_labels_the_clusters_from_a_few_labels():
    X, y = two_moons_on_a_sphere(400)
    known = np.full(len(y), -1)
    known[:6] = y[:6]
    p = spread_labels(knn_graph(X, k=8), known, 2)
    assert np.allclose(p.sum(axis=1), 1)
    assert (p.argmax(axis=1) == y).mean() > 0.9


def test_out_of_fold_hides_each_trusted_label_while_it_is_predicted():
    X, y = two_moons_on_a_sphere(300)
    wrong = y.copy()
    wrong[0] = 1 - y[0]  # a trusted label its neighbours contradict
    trusted = np.zeros(len(y), dtype=bool)
    trusted[:60] = True
    model = SpreadingModel(X, trusted)
    p = cross_fit_spread(model, wrong, trusted, 2, n_splits=5, random_state=0)
    assert p[0].argmax() == y[0]  # its neighbours speak, not its own label
    assert (p[60:].argmax(axis=1) == y[60:]).mean() > 0.9


def test_large_pools_spread_through_a_sample_of_nodes():
    X, y = two_moons_on_a_sphere(600)
    trusted = np.zeros(len(y), dtype=bool)
    trusted[:40] = True
    model = SpreadingModel(X, trusted, max_nodes=200, random_state=1)
    assert len(model.nodes) == 200 and trusted[model.nodes].sum() == 40
    p = model.spread(np.where(trusted, y, -1), 2)
    assert (p.argmax(axis=1) == y).mean() > 0.85
