"""Metrics against hand-computed values and independent definitions."""

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from labelloop.calibration import metrics


def test_ece_by_hand() -> None:
    # Two equal-width bins of 2 items: conf 0.2 (1 right of 2) and 0.9 (2 right of 2).
    conf = np.array([0.2, 0.2, 0.9, 0.9])
    correct = np.array([1, 0, 1, 1])
    # |0.5 - 0.2| * 2/4 + |1.0 - 0.9| * 2/4 = 0.15 + 0.05
    assert metrics.expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.2)
    assert metrics.maximum_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.3)


def test_equal_mass_bins_hold_equal_counts_and_keep_ties_together() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=1000)
    bins = metrics.reliability_bins(conf, rng.random(1000) < conf, 10, "quantile")
    assert bins.count.tolist() == [100] * 10
    tied = metrics.reliability_bins(np.array([0.5] * 6 + [0.9] * 2), np.ones(8), 4, "quantile")
    assert tied.count.tolist() == [6, 2]


def test_perfectly_calibrated_sample_has_small_ece() -> None:
    rng = np.random.default_rng(1)
    conf = rng.uniform(size=200_000)
    correct = rng.random(conf.size) < conf
    assert metrics.expected_calibration_error(conf, correct) < 0.01
    assert metrics.expected_calibration_error(conf, correct, strategy="quantile") < 0.01


def test_brier_and_log_loss_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.05, 0.95, 300)
    correct = (rng.random(300) < conf).astype(int)
    assert metrics.brier_score(conf, correct) == pytest.approx(brier_score_loss(correct, conf))
    assert metrics.log_loss(conf, correct) == pytest.approx(sk_log_loss(correct, conf))
    proba = rng.dirichlet(np.ones(4), 300)
    y = rng.integers(0, 4, 300)
    assert metrics.log_loss(proba, y) == pytest.approx(sk_log_loss(y, proba, labels=range(4)))
    onehot = np.eye(4)[y]
    assert metrics.brier_score(proba, y) == pytest.approx(np.mean(((proba - onehot) ** 2).sum(1)))


def test_auroc_undefined_when_all_right() -> None:
    assert np.isnan(metrics.auroc([0.2, 0.9], [1, 1]))
    assert metrics.auroc([0.2, 0.9], [0, 1]) == 1.0


def test_accuracy_coverage_with_ties_is_the_random_tiebreak_expectation() -> None:
    # Top item right; then a tie of two (one right, one wrong).
    coverage, acc = metrics.accuracy_coverage_curve([0.9, 0.5, 0.5], [1, 1, 0])
    assert coverage.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert acc.tolist() == pytest.approx([1.0, 0.75, 2 / 3])
    # Perfect ranking beats the base rate; reversed ranking falls below it.
    correct = np.array([1, 1, 0, 0])
    good = metrics.area_under_accuracy_coverage([0.9, 0.8, 0.2, 0.1], correct)
    bad = metrics.area_under_accuracy_coverage([0.1, 0.2, 0.8, 0.9], correct)
    assert good > 0.5 > bad


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="NaN"):
        metrics.expected_calibration_error([0.5, np.nan], [1, 0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.expected_calibration_error([1.5], [1])
    with pytest.raises(ValueError, match="0/1"):
        metrics.brier_score([0.5], [2])
