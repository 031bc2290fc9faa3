"""PNG plots for the calibration report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import ArrayLike

from .metrics import accuracy_coverage_curve, reliability_bins
from .thresholds import threshold_curve


def _save(fig: plt.Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out


def plot_reliability(
    correct: ArrayLike,
    before: ArrayLike,
    after: ArrayLike | None,
    path: str | Path,
    n_bins: int = 10,
    correct_after: ArrayLike | None = None,
) -> Path:
    """Reliability diagram: accuracy against confidence per bin, before and after calibration
    (marker area proportional to the bin's item count). `correct_after` is the correctness of
    the calibrated labels when the calibrator moved some (default: `correct`)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    series = [("before", before, correct, "tab:red")]
    if after is not None:
        series.append(
            ("after", after, correct if correct_after is None else correct_after, "tab:blue")
        )
    for name, conf, right, colour in series:
        bins = reliability_bins(conf, right, n_bins, "uniform")
        size = 20 + 200 * bins.count / max(int(bins.count.max(initial=1)), 1)
        ax.plot(bins.confidence, bins.accuracy, color=colour, label=name)
        ax.scatter(bins.confidence, bins.accuracy, s=size, color=colour, alpha=0.6)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence",
        ylabel="accuracy",
        title="Reliability diagram",
    )
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_accuracy_coverage(confidences: ArrayLike, correct: ArrayLike, path: str | Path) -> Path:
    """Accuracy of the auto-accepted items against the share auto-accepted."""
    coverage, acc = accuracy_coverage_curve(confidences, correct)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(coverage, acc, color="tab:blue")
    ax.axhline(
        float(np.mean(np.asarray(correct, dtype=float))),
        color="grey",
        linestyle="--",
        linewidth=1,
        label="accuracy of all",
    )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel="coverage (share auto-accepted)",
        ylabel="accuracy of auto-accepted",
        title="Accuracy–coverage",
    )
    ax.legend(loc="lower left")
    return _save(fig, path)


def plot_review_rate(
    confidences: ArrayLike,
    correct: ArrayLike,
    path: str | Path,
    threshold: float | None = None,
) -> Path:
    """Review rate and overall accuracy (reviewed items counted right) against the threshold."""
    curve = threshold_curve(confidences, correct)
    t = np.clip(curve.thresholds, 0.0, 1.0)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step(t, curve.n_review / curve.n, where="post", color="tab:orange", label="review rate")
    ax.step(
        t,
        curve.overall_correct / curve.n,
        where="post",
        color="tab:green",
        label="overall accuracy",
    )
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle=":", label=f"threshold {threshold:.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="threshold", title="Review rate against threshold")
    ax.legend(loc="lower right")
    return _save(fig, path)
