"""Curves of accuracy against effort, their intervals and the effort to reach a target."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelloop.active.effort import (
    curve_on_grid,
    effort_interval,
    effort_ratio_interval,
    effort_to_target,
    summarise_curves,
    t_interval,
)


def test_curve_is_linear_between_points_nan_before_and_flat_after():
    grid = np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.9])
    curve = curve_on_grid([0.1, 0.3, 0.5], [0.8, 0.9, 0.94], grid)
    assert math.isnan(curve[0])
    np.testing.assert_allclose(curve[1:], [0.8, 0.85, 0.9, 0.94, 0.94])


def test_curve_rejects_effort_that_goes_back():
    with pytest.raises(ValueError, match="decrease"):
        curve_on_grid([0.2, 0.1], [0.5, 0.6], np.linspace(0, 1, 5))
    with pytest.raises(ValueError):
        curve_on_grid([], [], np.linspace(0, 1, 5))


def test_effort_to_target_interpolates_the_crossing():
    assert effort_to_target([0.1, 0.3], [0.8, 0.9], 0.85) == pytest.approx(0.2)
    assert effort_to_target([0.1, 0.3], [0.96, 0.99], 0.95) == pytest.approx(0.1)
    assert effort_to_target([0.1, 0.3, 0.5], [0.8, 0.9, 0.9], 0.95) == math.inf


def test_all_human_curve_needs_exactly_the_target_as_effort():
    e = np.linspace(0.1, 1.0, 10)
    assert effort_to_target(e, e, 0.95) == pytest.approx(0.95)


def test_t_interval_matches_scipy_and_needs_two_repeats():
    values = [0.90, 0.92, 0.95, 0.91]
    i = t_interval(values, 0.9)
    from scipy import stats

    low, high = stats.t.interval(0.9, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (i.low, i.high) == pytest.approx((low, high))
    single = t_interval([0.9])
    assert single.mean == 0.9 and single.low is None and single.high is None


def test_curve_summary_keeps_accuracy_intervals_within_zero_and_one():
    curves = np.array([[0.5, 1.0], [0.7, 0.9], [0.6, 1.0]])
    summary = summarise_curves(curves, 0.9)
    assert summary[0].mean == pytest.approx(0.6)
    assert summary[0].low < 0.6 < summary[0].high
    assert summary[1].high == 1.0 and summary[1].low < summary[1].mean


def test_effort_interval_refuses_a_mean_when_a_repeat_never_got_there():
    done = effort_interval([0.2, 0.3, 0.25])
    assert done["mean"] == pytest.approx(0.25) and done["low"] < 0.25 < done["high"]
    assert done["reached"] == 3
    partial = effort_interval([0.2, math.inf, 0.25])
    assert partial["mean"] is None and partial["high"] is None and partial["reached"] == 2


def test_effort_ratio_is_paired_and_brackets_its_estimate():
    mine, theirs = np.array([0.2, 0.3, 0.25, 0.22]), np.array([0.5, 0.55, 0.6, 0.52])
    ratio, low, high = effort_ratio_interval(mine, theirs, n_boot=500)
    assert ratio == pytest.approx(mine.mean() / theirs.mean())
    assert low <= ratio <= high < 1
    never = effort_ratio_interval(np.array([math.inf, 0.3]), np.array([0.5, 0.5]), n_boot=200)
    assert never[0] == math.inf and never[2] == math.inf
    assert effort_ratio_interval(np.full(2, math.inf), np.full(2, math.inf)) is None
