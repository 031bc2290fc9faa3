import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, f1_score, hamming_loss

from labelloop.calibration import expected_calibration_error, reliability_bins
from labelloop.multilabel.metrics import (
    clopper_pearson,
    hamming_accuracy,
    macro_f1,
    micro_f1,
    multilabel_summary,
    per_label_accuracy,
    per_label_ece,
    per_label_f1,
    per_label_reliability,
    subset_accuracy,
)


def indicator_pairs(max_items: int = 40, max_labels: int = 6):
    # Two labels at least: scikit-learn reads a single column as a binary (not multi-label) task.
    shape = st.tuples(st.integers(1, max_items), st.integers(2, max_labels))
    return shape.flatmap(
        lambda s: st.tuples(arrays(np.bool_, s), arrays(np.bool_, s)),
    )


@settings(max_examples=60, deadline=None)
@given(indicator_pairs())
def test_point_estimates_agree_with_scikit_learn(pair):
    y, pred = pair
    assert subset_accuracy(y, pred).estimate == pytest.approx(accuracy_score(y, pred))
    assert hamming_accuracy(y, pred, n_boot=20).estimate == pytest.approx(1 - hamming_loss(y, pred))
    if (y | pred).any():
        assert micro_f1(y, pred, n_boot=20).estimate == pytest.approx(
            f1_score(y, pred, average="micro")
        )
        assert macro_f1(y, pred, n_boot=20).estimate == pytest.approx(
            f1_score(y, pred, average="macro", zero_division=np.nan)
        )
    else:
        assert np.isnan(micro_f1(y, pred, n_boot=20).estimate)


@settings(max_examples=40, deadline=None)
@given(indicator_pairs(), st.integers(0, 2**31 - 1))
def test_bootstrap_intervals_hold_the_estimate_and_repeat_with_the_same_seed(pair, seed):
    y, pred = pair
    for metric in (hamming_accuracy, micro_f1, macro_f1):
        first = metric(y, pred, n_boot=50, random_state=seed)
        again = metric(y, pred, n_boot=50, random_state=seed)
        assert first == again or (np.isnan(first.estimate) and np.isnan(again.estimate))
        if np.isfinite(first.low):
            assert 0.0 <= first.low <= first.high <= 1.0


def test_subset_accuracy_interval_is_clopper_pearson():
    rng = np.random.default_rng(1)
    y = rng.random((80, 5)) < 0.3
    pred = y.copy()
    pred[:30, 0] ^= True
    got = subset_accuracy(y, pred, confidence_level=0.9)
    ref = binomtest(50, 80).proportion_ci(confidence_level=0.9, method="exact")
    assert got.estimate == pytest.approx(50 / 80)
    assert (got.low, got.high) == pytest.approx((ref.low, ref.high))


def test_clopper_pearson_edges():
    low, high = clopper_pearson([0, 10, 3], [10, 10, 0])
    assert low[0] == 0.0 and 0 < high[0] < 0.4
    assert high[1] == 1.0 and 0.6 < low[1] < 1.0
    assert np.isnan(low[2]) and np.isnan(high[2])


def test_per_label_accuracy_counts_each_column():
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], dtype=bool)
    pred = np.array([[1, 1], [1, 1], [0, 1], [1, 1]], dtype=bool)
    accs = per_label_accuracy(y, pred)
    assert [a.estimate for a in accs] == [0.75, 0.5]
    assert all(a.low <= a.estimate <= a.high for a in accs)


def test_hamming_interval_is_wider_than_treating_label_decisions_as_independent():
    """Errors that come in whole items (a hard text is wrong on every label) make the n x L
    decisions far from independent: the item bootstrap must see that."""
    rng = np.random.default_rng(0)
    n, n_labels = 400, 10
    y = rng.random((n, n_labels)) < 0.3
    pred = y.copy()
    hard = rng.random(n) < 0.2
    pred[hard] = ~pred[hard]
    boot = hamming_accuracy(y, pred, n_boot=2000, random_state=0)
    wrong = int((pred != y).sum())
    naive_low, naive_high = clopper_pearson(n * n_labels - wrong, n * n_labels)
    assert boot.high - boot.low > 2.5 * (naive_high - naive_low)


def test_macro_f1_leaves_out_labels_with_nothing_to_score():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=bool)
    pred = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0]], dtype=bool)
    f1 = per_label_f1(y, pred)
    assert f1[0] == 1.0 and f1[1] == pytest.approx(2 / 3) and np.isnan(f1[2])
    assert macro_f1(y, pred, n_boot=10).estimate == pytest.approx((1 + 2 / 3) / 2)


def test_ece_matches_the_single_label_ece_and_its_reliability_bins():
    rng = np.random.default_rng(3)
    proba = rng.random((300, 4))
    y = rng.random((300, 4)) < proba**1.5  # over-confident on purpose
    eces = per_label_ece(y, proba, n_bins=10, n_boot=200, random_state=0)
    bins = per_label_reliability(y, proba, n_bins=10)
    for j in range(4):
        assert eces[j].estimate == pytest.approx(
            expected_calibration_error(proba[:, j], y[:, j], n_bins=10)
        )
        assert eces[j].low <= eces[j].high
        ref = reliability_bins(proba[:, j], y[:, j], 10)
        np.testing.assert_allclose(bins[j].accuracy, ref.accuracy)
        np.testing.assert_array_equal(bins[j].count, ref.count)


def test_ece_separates_calibrated_from_miscalibrated_labels():
    rng = np.random.default_rng(4)
    n = 4000
    proba = rng.random((n, 2))
    truth = rng.random((n, 2))
    y = np.column_stack([truth[:, 0] < proba[:, 0], truth[:, 1] < proba[:, 1] ** 3])
    calibrated, off = per_label_ece(y, proba, n_boot=300, random_state=0)
    assert calibrated.high < off.low
    assert calibrated.estimate < 0.03 < off.estimate


def test_summary_is_json_able_and_names_labels():
    import json

    rng = np.random.default_rng(5)
    proba = rng.random((60, 3))
    y = rng.random((60, 3)) < proba
    summary = multilabel_summary(y, proba=proba, labels=["a", "b", "c"], n_boot=50)
    json.dumps(summary)
    assert set(summary["per_label"]) == {"a", "b", "c"}
    assert summary["per_label"]["a"]["support"] == int(y[:, 0].sum())
    assert summary["subset_accuracy"]["estimate"] == pytest.approx(accuracy_score(y, proba >= 0.5))
    assert summary["max_label_ece"] == max(
        v["ece"]["estimate"] for v in summary["per_label"].values()
    )


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        subset_accuracy(np.zeros((3, 2), bool), np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="0/1"):
        subset_accuracy(np.full((2, 2), 2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        per_label_ece(np.zeros((2, 2), bool), np.full((2, 2), 1.5))
    with pytest.raises(ValueError, match="at least one item"):
        micro_f1(np.zeros((0, 2), bool), np.zeros((0, 2), bool))
