import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from labelloop.stacking import LogLinearPool


def noisy_view(
    y: np.ndarray, n_labels: int, accuracy: float, rng: np.random.Generator
) -> np.ndarray:
    """Probabilities of a predictor that is right with the given accuracy, confident either way."""
    wrong = rng.random(len(y)) > accuracy
    guess = np.where(wrong, (y + rng.integers(1, n_labels, len(y))) % n_labels, y)
    probs = np.full((len(y), n_labels), 0.2 / (n_labels - 1))
    probs[np.arange(len(y)), guess] = 0.8
    return probs


def log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(probs[np.arange(len(y)), y])))


@pytest.fixture
def views():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    good, weak, noise = (noisy_view(y, 4, a, rng) for a in (0.9, 0.7, 0.25))
    return y, good, weak, noise


def test_two_independent_views_beat_either_alone(views):
    y, good, weak, _ = views
    inputs = np.stack([good, weak], axis=1)
    train, test = slice(0, 1000), slice(1000, None)
    pooled = LogLinearPool().fit(inputs[train], y[train]).predict_proba(inputs[test])
    assert log_loss(pooled, y[test]) < min(
        log_loss(good[test], y[test]), log_loss(weak[test], y[test])
    )
    assert (pooled.argmax(1) == y[test]).mean() >= (good[test].argmax(1) == y[test]).mean()


def test_an_uninformative_component_gets_almost_no_weight(views):
    y, good, _, noise = views
    model = LogLinearPool().fit(np.stack([good, noise], axis=1), y)
    assert model.weights_[1] < 0.1 * model.weights_[0]
    assert (model.weights_ >= 0).all()
    shares = model.influence(np.stack([good, noise], axis=1))
    assert shares.sum() == pytest.approx(1.0)
    assert shares[0] > 0.9


def test_a_missing_answer_counts_as_uniform(views):
    y, good, weak, _ = views
    inputs = np.stack([good, weak], axis=1)
    model = LogLinearPool().fit(inputs, y)
    gap = inputs[:5].copy()
    gap[:, 1] = np.nan
    alone = inputs[:5].copy()
    alone[:, 1] = 0.25  # a uniform answer
    np.testing.assert_allclose(model.predict_proba(gap), model.predict_proba(alone))
    assert np.isfinite(model.predict_proba(gap)).all()


def test_output_is_a_distribution_even_for_a_class_absent_from_training():
    y = np.array([0, 1, 0, 1, 0, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]] * 3)[:, None, :]
    out = LogLinearPool().fit(probs, y).predict_proba(probs)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert (out.argmax(1) == y).all()


def test_rejects_a_flat_feature_matrix():
    with pytest.raises(ValueError, match="components"):
        LogLinearPool().fit(np.ones((3, 2)), np.array([0, 1, 0]))


def test_an_unfitted_pool_says_so_and_a_clone_forgets_its_fit(views):
    y, good, weak, _ = views
    inputs = np.stack([good, weak], axis=1)
    with pytest.raises(NotFittedError):
        LogLinearPool().predict_proba(inputs)
    with pytest.raises(NotFittedError):
        LogLinearPool().influence(inputs)
    model = LogLinearPool(alpha=0.1).fit(inputs, y)
    again = clone(model)
    assert again.get_params() == {"alpha": 0.1} and not hasattr(again, "weights_")
    np.testing.assert_array_equal(again.fit(inputs, y).weights_, model.weights_)
