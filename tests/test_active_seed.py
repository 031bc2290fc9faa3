"""The seed-compatible functions select exactly what the seed's own code selects."""

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_distances

from labelloop.active import diversity_sampling, hybrid_acquisition, uncertainty_sampling
from labelloop.active._distances import min_cosine_distance


# The seed's code, verbatim in substance: the oracle the blockwise versions must match.
def seed_uncertainty(predictions, n_select=50):
    entropy = -np.sum(predictions * np.log(predictions + 1e-10), axis=1)
    return np.argsort(entropy)[-n_select:]


def seed_diversity(embeddings, labeled_embeddings, n_select=50):
    distances = cosine_distances(embeddings, labeled_embeddings)
    return np.argsort(distances.min(axis=1))[-n_select:]


def seed_hybrid(predictions, embeddings, labeled_embeddings, n_select=50, uncertainty_weight=0.6):
    entropy = -np.sum(predictions * np.log(predictions + 1e-10), axis=1)
    uncertainty_scores = entropy / np.log(predictions.shape[1])
    min_distances = cosine_distances(embeddings, labeled_embeddings).min(axis=1)
    diversity_scores = min_distances / max(min_distances.max(), 1e-10)
    combined = uncertainty_weight * uncertainty_scores + (1 - uncertainty_weight) * diversity_scores
    return np.argsort(combined)[-n_select:]


@pytest.fixture(scope="module")
def seed_inputs():
    np.random.seed(42)
    predictions = np.random.dirichlet(np.ones(4) * 2, 1000)
    embeddings = np.random.randn(1000, 128)
    labeled_embeddings = np.random.randn(100, 128)
    return predictions, embeddings, labeled_embeddings


def test_seed_example_selects_what_the_seed_code_selects(seed_inputs):
    predictions, embeddings, labeled = seed_inputs
    u = uncertainty_sampling(predictions, n_select=50)
    d = diversity_sampling(embeddings, labeled, n_select=50)
    h = hybrid_acquisition(predictions, embeddings, labeled, n_select=50)
    np.testing.assert_array_equal(u, seed_uncertainty(predictions))
    np.testing.assert_array_equal(d, seed_diversity(embeddings, labeled))
    np.testing.assert_array_equal(h, seed_hybrid(predictions, embeddings, labeled))
    # What the seed's code gives when run (its text prints 3/50 and 28/50 instead).
    assert len(set(u) & set(d)) == 6
    assert len(set(u) & set(h)) == 26


@pytest.mark.parametrize("n_select, weight", [(1, 0.0), (17, 0.3), (200, 1.0)])
def test_other_sizes_and_weights_match(seed_inputs, n_select, weight):
    predictions, embeddings, labeled = seed_inputs
    np.testing.assert_array_equal(
        hybrid_acquisition(predictions, embeddings, labeled, n_select, weight),
        seed_hybrid(predictions, embeddings, labeled, n_select, weight),
    )


def test_large_pool_path_selects_what_the_seed_code_selects(seed_inputs, monkeypatch):
    from labelloop.active import _index

    monkeypatch.setattr(_index, "EXACT_CELLS", 0)  # the pruned index, as on a large pool
    predictions, embeddings, labeled = seed_inputs
    for n_select, weight in [(1, 0.0), (50, 0.6), (17, 0.3)]:
        np.testing.assert_array_equal(
            hybrid_acquisition(predictions, embeddings, labeled, n_select, weight),
            seed_hybrid(predictions, embeddings, labeled, n_select, weight),
        )
    np.testing.assert_array_equal(
        diversity_sampling(embeddings, labeled, 50), seed_diversity(embeddings, labeled)
    )


def test_blocked_distances_equal_dense_distances():
    rng = np.random.default_rng(3)
    x, ref = rng.normal(size=(503, 40)), rng.normal(size=(77, 40))
    x[5] = 0.0  # a zero row: sklearn gives distance 1 to everything
    dense = cosine_distances(x, ref).min(axis=1)
    # One block: bitwise identical. Tiny blocks force many row blocks, whose products BLAS may
    # round differently in the last bit.
    np.testing.assert_array_equal(min_cosine_distance(x, ref), dense)
    np.testing.assert_allclose(min_cosine_distance(x, ref, block_cells=500), dense, atol=1e-14)
    x32, ref32 = x.astype(np.float32), ref.astype(np.float32)
    blocked32 = min_cosine_distance(x32, ref32, block_cells=500)
    assert blocked32.dtype == np.float32
    np.testing.assert_allclose(blocked32, cosine_distances(x32, ref32).min(axis=1), atol=1e-6)
