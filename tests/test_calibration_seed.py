"""`find_optimal_threshold` reproduces the seed's code and improves on it."""

import numpy as np
import pytest

from labelloop.calibration import find_optimal_threshold

SEED_GRID = np.arange(0.5, 1.0, 0.05)


def seed_data():
    """The seed's simulated calibration data, generated exactly as in the seed."""
    np.random.seed(42)
    n = 200
    confidences = np.random.beta(5, 2, n).tolist()
    labels = ["positive", "negative", "neutral"]
    llm_labels = [np.random.choice(labels) for _ in range(n)]
    gold_labels = [
        lab if np.random.random() < c else np.random.choice(labels)
        for lab, c in zip(llm_labels, confidences, strict=True)
    ]
    return confidences, llm_labels, gold_labels


def seed_loop(confidences, llm_labels, gold_labels, budget_fraction, thresholds):
    """The seed's loop body, kept as the reference semantics."""
    results = []
    for thresh in thresholds:
        auto = [c >= thresh for c in confidences]
        auto_correct = sum(1 for i, m in enumerate(auto) if m and llm_labels[i] == gold_labels[i])
        auto_total = sum(auto)
        human_total = len(confidences) - auto_total
        results.append(
            {
                "threshold": round(thresh, 2),
                "auto_accuracy": round(auto_correct / max(auto_total, 1), 4),
                "human_fraction": round(human_total / len(confidences), 4),
                "overall_accuracy": round((auto_correct + human_total) / len(confidences), 4),
                "within_budget": human_total / len(confidences) <= budget_fraction,
            }
        )
    return results


def test_seed_grid_reproduces_what_the_seed_code_computes() -> None:
    res = find_optimal_threshold(*seed_data(), 0.3, thresholds=SEED_GRID)
    assert res["optimal_threshold"] == 0.6
    assert res["expected_accuracy"] == 0.87
    assert res["human_review_rate"] == 0.225
    assert res["all_thresholds"] == seed_loop(*seed_data(), 0.3, SEED_GRID)


def test_exact_search_does_at_least_as_well_within_the_budget() -> None:
    data = seed_data()
    grid = find_optimal_threshold(*data, 0.3, thresholds=SEED_GRID)
    exact = find_optimal_threshold(*data, 0.3)
    assert exact["human_review_rate"] <= 0.3
    assert exact["expected_accuracy"] >= grid["expected_accuracy"]
    # Applying the returned threshold gives the reported figures.
    conf = np.array(data[0])
    right = np.array(data[1]) == np.array(data[2])
    auto = conf >= exact["optimal_threshold"]
    assert (~auto).mean() == pytest.approx(exact["human_review_rate"])
    assert (right[auto].sum() + (~auto).sum()) / conf.size == pytest.approx(
        exact["expected_accuracy"]
    )
    assert set(exact["all_thresholds"][0]) == set(grid["all_thresholds"][0])


def test_random_grids_match_the_seed_loop() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(1, 60))
        conf = np.round(rng.uniform(size=n), 2).tolist()
        llm = rng.choice(["a", "b"], n).tolist()
        gold = rng.choice(["a", "b"], n).tolist()
        grid = np.sort(rng.uniform(size=int(rng.integers(1, 12))))
        expected = seed_loop(conf, llm, gold, 1.0, grid)
        assert (
            find_optimal_threshold(conf, llm, gold, 1.0, thresholds=grid)["all_thresholds"]
            == expected
        )


def test_infeasible_budget_names_the_smallest_review_rate() -> None:
    with pytest.raises(ValueError, match=r"smallest review rate it reaches is 0\.0750"):
        find_optimal_threshold(*seed_data(), 0.05, thresholds=SEED_GRID)
    # The exact search can always accept everything, so any budget >= 0 is feasible.
    res = find_optimal_threshold(*seed_data(), 0.0)
    assert res["human_review_rate"] == 0.0


def test_degenerate_inputs() -> None:
    with pytest.raises(ValueError, match="at least one"):
        find_optimal_threshold([], [], [])
    res = find_optimal_threshold([0.9, 0.9], ["a", "a"], ["a", "a"], 0.3)
    assert res["expected_accuracy"] == 1.0 and res["human_review_rate"] == 0.0
