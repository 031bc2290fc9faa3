import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labelloop.multilabel import (
    choose_threshold,
    evaluate_threshold,
    route,
    routing_curve,
)


def direct(proba: np.ndarray, y: np.ndarray, t: float) -> dict[str, float]:
    """The finished dataset at cut t, computed the slow obvious way from `route`."""
    routing = route(proba, t)
    final = np.where(routing.uncertain, y, routing.suggestion)  # reviewers fix what they see
    tp = (final & y).sum()
    fp = (final & ~y).sum()
    fn = (~final & y).sum()
    auto = routing.auto
    return {
        "n_review_items": int(routing.review.sum()),
        "n_review_labels": int(routing.uncertain.sum()),
        "subset_accuracy": float(np.all(final == y, axis=1).mean()),
        "hamming_accuracy": float((final == y).mean()),
        "micro_f1": float(2 * tp / (2 * tp + fp + fn)) if 2 * tp + fp + fn else 1.0,
        "auto_subset_accuracy": (
            float(np.all(final[auto] == y[auto], axis=1).mean()) if auto.any() else None
        ),
    }


# Probabilities on a coarse grid make ties (between items, labels and the 1/2 boundary) common.
grid_proba = st.sampled_from([0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0])


@st.composite
def gold(draw):
    n = draw(st.integers(1, 12))
    n_labels = draw(st.integers(1, 4))
    proba = draw(
        st.one_of(
            arrays(np.float64, (n, n_labels), elements=grid_proba),
            arrays(np.float64, (n, n_labels), elements=st.floats(0, 1)),
        )
    )
    y = draw(arrays(np.bool_, (n, n_labels)))
    return proba, y


def every_cut(proba: np.ndarray) -> list[float]:
    c = np.unique(np.maximum(proba, 1 - proba))
    return [*c.tolist(), float(np.nextafter(c[-1], np.inf)), 0.5]


@settings(max_examples=150, deadline=None)
@given(gold())
def test_counts_at_every_cut_match_the_direct_computation(data):
    proba, y = data
    for unit in ("items", "labels"):
        curve = routing_curve(proba, y, unit)
        assert np.all(np.diff(curve.thresholds) < 0)
        for j, t in enumerate(curve.thresholds):
            want = direct(proba, y, t)
            assert curve.n_review_items[j] == want["n_review_items"]
            assert curve.n_review_labels[j] == want["n_review_labels"]
            assert curve.subset_accuracy[j] == pytest.approx(want["subset_accuracy"])
            assert curve.hamming_accuracy[j] == pytest.approx(want["hamming_accuracy"])
            assert curve.micro_f1[j] == pytest.approx(want["micro_f1"])
    for t in every_cut(proba):
        got = evaluate_threshold(proba, y, t)
        want = direct(proba, y, t)
        assert got.auto_subset_accuracy == pytest.approx(want.pop("auto_subset_accuracy"))
        assert {k: getattr(got, k) for k in want} == pytest.approx(want)


@settings(max_examples=150, deadline=None)
@given(
    gold(),
    st.floats(0, 1),
    st.sampled_from(["subset_accuracy", "hamming_accuracy", "micro_f1"]),
    st.sampled_from(["items", "labels"]),
)
def test_budget_choice_is_the_best_of_every_possible_cut(data, budget, metric, unit):
    proba, y = data
    n, n_labels = y.shape
    chosen = choose_threshold(proba, y, budget=budget, metric=metric, unit=unit)
    cost_key = "n_review_items" if unit == "items" else "n_review_labels"
    size = n if unit == "items" else n * n_labels
    allowed = math.floor(budget * size + 1e-9)
    feasible = [direct(proba, y, t) for t in every_cut(proba)]
    feasible = [f for f in feasible if f[cost_key] <= allowed]
    assert getattr(chosen, cost_key) <= allowed
    assert getattr(chosen, metric) == pytest.approx(max(f[metric] for f in feasible))
    assert direct(proba, y, chosen.threshold)[metric] == pytest.approx(getattr(chosen, metric))


@settings(max_examples=150, deadline=None)
@given(
    gold(),
    st.floats(0, 1),
    st.sampled_from(["subset_accuracy", "hamming_accuracy", "micro_f1"]),
    st.sampled_from(["items", "labels"]),
)
def test_target_choice_asks_least(data, target, metric, unit):
    proba, y = data
    chosen = choose_threshold(proba, y, target=target, metric=metric, unit=unit)
    cost_key = "n_review_items" if unit == "items" else "n_review_labels"
    reaching = [direct(proba, y, t) for t in every_cut(proba)]
    reaching = [f for f in reaching if f[metric] >= target - 1e-9]
    assert getattr(chosen, metric) >= target - 1e-9
    assert getattr(chosen, cost_key) == min(f[cost_key] for f in reaching)


@pytest.fixture
def staircase():
    """Ten items over three labels: one confident yes (0.99), one confident no (0.01) and one
    weak decision of confidence 0.55 + 0.04 i, wrong on items 0, 1, 2 and 5."""
    n = 10
    weak = 0.55 + 0.04 * np.arange(n)
    proba = np.column_stack([np.full(n, 0.99), np.full(n, 0.01), weak])
    y = np.column_stack([np.ones(n, bool), np.zeros(n, bool), np.ones(n, bool)])
    y[[0, 1, 2, 5], 2] = False
    return proba, y, weak


def test_staircase_budget(staircase):
    proba, y, weak = staircase
    result = choose_threshold(proba, y, budget=0.3)
    assert result.threshold == pytest.approx(weak[3])
    assert result.n_review_items == 3
    assert result.subset_accuracy == pytest.approx(0.9)  # item 5 stays wrong
    assert result.auto_subset_accuracy == pytest.approx(6 / 7)
    assert result.n_review_labels == 3
    assert route(proba, result.t_hi).uncertain_labels(["x", "y", "z"])[:4] == [
        ["z"],
        ["z"],
        ["z"],
        [],
    ]


def test_staircase_target(staircase):
    proba, y, weak = staircase
    result = choose_threshold(proba, y, target=1.0)
    assert result.threshold == pytest.approx(weak[6])
    assert result.n_review_items == 6
    assert result.subset_accuracy == 1.0
    nothing = choose_threshold(proba, y, budget=0.0)
    assert nothing.n_review_items == 0 and nothing.subset_accuracy == pytest.approx(0.6)


def test_a_confident_mistake_survives_review_of_its_item():
    """The reviewer is asked only about uncertain labels, so a confident wrong label on a
    reviewed item stays wrong; only a cut above it fixes the item."""
    proba = np.array([[0.95, 0.6]])
    y = np.array([[False, True]])
    assert evaluate_threshold(proba, y, 0.7).subset_accuracy == 0.0
    result = choose_threshold(proba, y, target=1.0)
    assert result.threshold > 0.95 and result.n_review_labels == 2


def test_calibrated_gold_threshold_holds_on_fresh_items():
    rng = np.random.default_rng(0)

    def sample(n):
        proba = rng.beta(0.3, 0.3, size=(n, 8))
        return proba, rng.random((n, 8)) < proba

    proba, y = sample(4000)
    chosen = choose_threshold(proba, y, target=0.9, metric="hamming_accuracy")
    fresh_proba, fresh_y = sample(4000)
    fresh = evaluate_threshold(fresh_proba, fresh_y, chosen.threshold)
    assert fresh.hamming_accuracy == pytest.approx(0.9, abs=0.01)
    assert fresh.review_rate == pytest.approx(chosen.review_rate, abs=0.03)


def test_route_rules_and_csr_view():
    proba = np.array([[0.97, 0.5, 0.02], [0.9, 0.1, 0.3], [0.99, 0.01, 0.99]])
    symmetric = route(proba, 0.95)
    np.testing.assert_array_equal(
        symmetric.uncertain, [[False, True, False], [True, True, True], [False, False, False]]
    )
    np.testing.assert_array_equal(symmetric.auto, [False, False, True])
    np.testing.assert_array_equal(symmetric.suggestion, proba >= 0.5)
    asymmetric = route(proba, t_hi=0.95, t_lo=0.35)  # "no" needs less evidence
    np.testing.assert_array_equal(
        asymmetric.uncertain, [[False, True, False], [True, False, False], [False, False, False]]
    )
    per_label = route(proba, t_hi=[0.8, 0.95, 0.95])
    assert per_label.uncertain_labels() == [[1], [1, 2], []]
    indptr, indices = per_label.uncertain_indices()
    assert indptr.tolist() == [0, 1, 3, 3] and indices.tolist() == [1, 1, 2]


def test_bad_arguments_are_refused():
    proba, y = np.full((2, 2), 0.7), np.ones((2, 2), bool)
    with pytest.raises(ValueError, match="exactly one"):
        choose_threshold(proba, y)
    with pytest.raises(ValueError, match="budget"):
        choose_threshold(proba, y, budget=1.5)
    with pytest.raises(ValueError, match="metric"):
        choose_threshold(proba, y, target=0.9, metric="f2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unit"):
        routing_curve(proba, y, "tokens")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="t_lo"):
        route(proba, 0.9, 0.6)
    with pytest.raises(ValueError, match="t_hi"):
        route(proba, 0.4)
