"""Bootstrap intervals: reproducible, equal to the naive item bootstrap, and they cover."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.agreement import (
    bootstrap_agreement,
    bootstrap_cohens_kappa,
    fleiss_kappa,
    ratings_table,
)


def _raters(rng: np.random.Generator, n_raters: int, n_items: int, accuracy: float) -> np.ndarray:
    """Each rater gives the true label (3 uniform classes) with prob. `accuracy`, else a uniform
    guess. Population Fleiss kappa: pairs agree with prob. a² + (1 - a²)/3, chance 1/3."""
    truth = rng.integers(0, 3, n_items)
    guess = rng.integers(0, 3, (n_raters, n_items))
    return np.where(rng.random((n_raters, n_items)) < accuracy, truth, guess)


def _population_kappa(accuracy: float) -> float:
    agree = accuracy**2 + (1 - accuracy**2) / 3
    return (agree - 1 / 3) / (1 - 1 / 3)


def test_same_random_state_same_interval() -> None:
    data = _raters(np.random.default_rng(0), 4, 200, 0.6)
    first = bootstrap_agreement(data, n_boot=200, random_state=7)
    again = bootstrap_agreement(data, n_boot=200, random_state=7)
    assert first == again
    for interval in first.values():
        assert interval.low <= interval.estimate <= interval.high


@pytest.mark.parametrize("n_raters", [4, 14])  # few patterns (multinomial) and many (indices)
def test_matches_a_naive_item_bootstrap(n_raters: int) -> None:
    rng = np.random.default_rng(1)
    data = _raters(rng, n_raters, 300, 0.5)
    fast = bootstrap_agreement(data, n_boot=2000, random_state=3)["fleiss_kappa"]
    naive = [
        fleiss_kappa(ratings_table(data[:, rng.integers(0, 300, 300)], labels=[0, 1, 2])[0])
        for _ in range(2000)
    ]
    low, high = np.percentile(naive, [2.5, 97.5])
    width = high - low
    assert fast.low == pytest.approx(low, abs=0.08 * width)
    assert fast.high == pytest.approx(high, abs=0.08 * width)


@pytest.mark.slow
def test_intervals_cover_the_population_value() -> None:
    rng = np.random.default_rng(2)
    accuracy, truth_value = 0.6, _population_kappa(0.6)
    hits = {"fleiss_kappa": 0, "krippendorff_alpha": 0, "cohen": 0}
    n_runs = 150
    for _ in range(n_runs):
        data = _raters(rng, 3, 150, accuracy)
        result = bootstrap_agreement(data, n_boot=300, random_state=rng)
        for name in ("fleiss_kappa", "krippendorff_alpha"):
            hits[name] += result[name].low <= truth_value <= result[name].high
        pair = bootstrap_cohens_kappa(data[0], data[1], n_boot=300, random_state=rng)
        hits["cohen"] += pair.low <= truth_value <= pair.high
    for name, count in hits.items():
        assert 0.88 <= count / n_runs <= 0.995, name


def test_wider_with_fewer_items() -> None:
    rng = np.random.default_rng(4)
    small = bootstrap_cohens_kappa(*_raters(rng, 2, 50, 0.6), n_boot=500, random_state=0)
    large = bootstrap_cohens_kappa(*_raters(rng, 2, 5000, 0.6), n_boot=500, random_state=0)
    assert (small.high - small.low) > 4 * (large.high - large.low)


@pytest.mark.parametrize("kwargs", [{"n_boot": 0}, {"confidence": 1.0}, {"confidence": 0.0}])
def test_bad_settings_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        bootstrap_agreement([[1, 2, 1], [1, 2, 2]], **kwargs)
