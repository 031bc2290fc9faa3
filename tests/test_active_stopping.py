"""Stopping rules decide on evidence, not on luck."""

import numpy as np

from labelloop.active import StabilizingPredictions, label_budget, target_accuracy


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
