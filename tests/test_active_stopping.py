"""Stopping rules decide on evidence, not on luck."""

import numpy as np

from labelloop.active import (
    StabilizingLabelSets,
    StabilizingPredictions,
    label_budget,
    pool_uncertainty,
    target_accuracy,
)


def test_label_budget():
    assert not label_budget(99, 100).stop
    assert label_budget(100, 100).stop


def test_target_accuracy_needs_enough_gold():
    # 10/10 correct: the point estimate is 1.0, but the 95% lower bound is only ~0.74.
    few = target_accuracy(["a"] * 10, ["a"] * 10, target=0.9)
    assert not few.stop and few.value is not None and few.value < 0.8
    many = target_accuracy(["a"] * 400, ["a"] * 398 + ["b"] * 2, target=0.97)
    assert many.stop
    assert not target_accuracy([], [], target=0.5).stop


def test_stabilizing_predictions_stops_after_three_stable_rounds():
    rng = np.random.default_rng(0)
    rule = StabilizingPredictions(threshold=0.99, window=3)
    base = rng.integers(0, 3, 1000)
    changing = [rng.integers(0, 3, 1000) for _ in range(3)]
    decisions = [rule.update(p).stop for p in changing]
    assert decisions == [False, False, False]
    stable = [rule.update(base).stop for _ in range(4)]
    # First base round still differs from the last random one; then 3 agreeing rounds.
    assert stable == [False, False, False, True]


def test_one_changed_prediction_in_a_hundred_resets_stability():
    rule = StabilizingPredictions(threshold=0.99, window=2)
    a = np.array([0, 1] * 50)
    b = a.copy()
    b[0] = 1
    assert [rule.update(p).stop for p in (a, a, b, b, b)] == [False, False, False, False, True]


def test_stabilizing_label_sets_stops_once_every_label_has_settled():
    rng = np.random.default_rng(0)
    rule = StabilizingLabelSets(threshold=0.99, window=3, labels=["a", "b", "c"])
    changing = [rng.random((1000, 3)) < 0.3 for _ in range(3)]
    assert [rule.update(d).stop for d in changing] == [False, False, False]
    settled = rng.random((1000, 3)) < 0.3
    # The first settled round still differs from the last changing one; then 3 agreeing rounds.
    assert [rule.update(settled).stop for _ in range(4)] == [False, False, False, True]
    assert rule.per_label == [1.0, 1.0, 1.0]


def test_a_rare_label_that_still_flips_holds_the_label_sets_rule():
    rng = np.random.default_rng(1)
    steady = rng.random((1000, 2)) < 0.5
    rare = np.zeros((1000, 1), dtype=bool)
    rare[:10] = True  # ten items of a thousand take the label
    flipped = rare.copy()
    flipped[0] = False  # one of them flips: a tenth of the label's positives
    rounds = [np.hstack([steady, r]) for r in (rare, flipped, rare, flipped, rare)]
    rule = StabilizingLabelSets(threshold=0.99, window=2, labels=["x", "y", "rare"])
    decisions = [rule.update(d) for d in rounds]
    assert not any(d.stop for d in decisions)
    assert rule.per_label[:2] == [1.0, 1.0] and rule.per_label[2] < 0.99
    assert "'rare'" in decisions[-1].reason
    # Single-label stability on the same rounds, all labels pooled, would have stopped.
    pooled = StabilizingPredictions(threshold=0.99, window=2)
    assert pooled.update(np.ravel(rounds[0])).stop is False
    assert any(pooled.update(np.ravel(d)).stop for d in rounds[1:])


def test_pool_uncertainty_stops_when_every_label_is_decided_confidently():
    rng = np.random.default_rng(2)
    confident = np.where(rng.random((500, 3)) < 0.5, 0.02, 0.98)
    assert pool_uncertainty(confident, 0.05).stop
    unsure = confident.copy()
    unsure[:, 1] = rng.uniform(0.3, 0.7, 500)  # one label still undecided
    decision = pool_uncertainty(unsure, 0.05, ["a", "b", "c"])
    assert not decision.stop and "'b'" in decision.reason
    assert decision.value is not None and decision.value > 0.3
    assert pool_uncertainty(np.empty((0, 3)), 0.05).stop  # nothing left to label
