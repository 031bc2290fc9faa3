"""Accuracy of a finished dataset against human effort: curves, intervals, effort to a target.

A run of the loop yields points (effort, accuracy): effort is the share of the items people
labeled (gold included), accuracy that of the dataset one would export at that moment. These
functions put runs on a common effort grid and summarise repeats; they take arrays and know
nothing of projects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


def curve_on_grid(effort: ArrayLike, accuracy: ArrayLike, grid: np.ndarray) -> np.ndarray:
    """One run's accuracy at each grid effort, linear between its points.

    NaN before the run's first point (less effort than the gold set alone is not a state the
    run was in); after its last point the accuracy stays: a run that finished early (nothing
    left to review) has the same dataset whatever more effort one offers.
    """
    e, a = np.asarray(effort, dtype=float), np.asarray(accuracy, dtype=float)
    if e.ndim != 1 or e.shape != a.shape or e.size == 0:
        raise ValueError("effort and accuracy must be non-empty 1-D arrays of one length")
    if np.any(np.diff(e) < 0):
        raise ValueError("effort must not decrease along a run")
    grid = np.asarray(grid, dtype=float)
    out = np.interp(grid, e, a)
    out[grid < e[0] - 1e-12] = np.nan
    return out


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float | None
    high: float | None


def t_interval(values: ArrayLike, level: float = 0.9) -> Interval:
    """Mean of the repeats and Student's t interval for it (None bounds with one repeat)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return Interval(float("nan"), None, None)
    mean = float(v.mean())
    if v.size < 2:
        return Interval(mean, None, None)
    half = float(stats.t.ppf((1 + level) / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return Interval(mean, mean - half, mean + half)


def summarise_curves(
    curves: np.ndarray, level: float = 0.9, bounds: tuple[float, float] = (0.0, 1.0)
) -> list[Interval]:
    """Mean and t interval over repeats (rows) at each grid point (columns), the interval cut
    to `bounds` (an accuracy cannot leave [0, 1] whatever the normal approximation says)."""
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    out = []
    for j in range(curves.shape[1]):
        i = t_interval(curves[:, j], level)
        out.append(
            Interval(
                i.mean,
                None if i.low is None else max(bounds[0], i.low),
                None if i.high is None else min(bounds[1], i.high),
            )
        )
    return out


def effort_to_target(effort: ArrayLike, accuracy: ArrayLike, target: float) -> float:
    """The least effort at which one run's accuracy reaches `target` (linear between points);
    inf if it never does."""
    e, a = np.asarray(effort, dtype=float), np.asarray(accuracy, dtype=float)
    reached = np.flatnonzero(a >= target)
    if reached.size == 0:
        return float("inf")
    j = int(reached[0])
    if j == 0 or a[j] == a[j - 1]:
        return float(e[j])
    share = (target - a[j - 1]) / (a[j] - a[j - 1])
    return float(e[j - 1] + share * (e[j] - e[j - 1]))


def effort_interval(efforts: ArrayLike, level: float = 0.9) -> dict[str, float | int | None]:
    """Mean effort to target over the repeats that reached it, its t interval, and how many
    repeats reached it (an interval over the others alone would flatter the setting)."""
    e = np.asarray(efforts, dtype=float)
    finite = e[np.isfinite(e)]
    if finite.size < e.size:  # some repeats never reached the target: the mean is unbounded
        summary = t_interval(finite, level) if finite.size else Interval(float("nan"), None, None)
        return {
            "mean": None,
            "low": summary.low if finite.size else None,
            "high": None,
            "reached": int(finite.size),
            "repeats": int(e.size),
        }
    summary = t_interval(finite, level)
    return {
        "mean": summary.mean,
        "low": summary.low,
        "high": summary.high,
        "reached": int(finite.size),
        "repeats": int(e.size),
    }


def effort_ratio_interval(
    efforts: ArrayLike,
    baseline: ArrayLike,
    level: float = 0.9,
    n_boot: int = 2000,
    random_state: int = 0,
) -> tuple[float, float, float] | None:
    """Ratio of mean efforts to target (setting / baseline) and a paired bootstrap interval.

    Repeats are resampled in pairs (both settings saw the same gold set in a repeat). A repeat
    that never reached the target counts as needing unbounded effort, so a bound may be inf.
    None when neither setting ever reached the target.
    """
    a, b = np.asarray(efforts, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("give one effort per repeat for both settings")
    if not (np.isfinite(a).any() or np.isfinite(b).any()):
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = float(a.mean() / b.mean())
        rows = np.random.default_rng(random_state).integers(0, a.size, size=(n_boot, a.size))
        ratios = a[rows].mean(axis=1) / b[rows].mean(axis=1)
    ratios = ratios[~np.isnan(ratios)]
    if ratios.size == 0:
        return None
    low, high = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return (ratio if not np.isnan(ratio) else float("nan")), float(low), float(high)
