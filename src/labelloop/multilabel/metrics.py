"""Multi-label metrics on indicator matrices, each with an interval.

Inputs are (items x labels) boolean indicator matrices (`y_true`, `y_pred`) and per-label
probability matrices (`proba`, each entry the probability that the label applies).

Intervals: a proportion of independent items (subset accuracy, one label's accuracy) gets the
exact Clopper–Pearson interval. Everything else gets a percentile bootstrap over *items*: the
label decisions of one item are not independent (an ambiguous text is hard on every label), so
treating the n x L decisions of Hamming accuracy as independent trials would give intervals far
too narrow. Resamples are drawn with an explicit `random_state`, so reports are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy.stats import beta

from labelloop.agreement.bootstrap import Interval, resample_weights
from labelloop.calibration.metrics import ReliabilityBins, reliability_bins
from labelloop.multilabel._validation import (
    as_indicator,
    as_label_proba,
    check_level,
    same_shape,
)

RandomState = int | np.random.Generator | None


class _Bootstrap(TypedDict):
    """How the bootstrap intervals of a report are drawn; every metric shares them."""

    confidence_level: float
    n_boot: int
    random_state: RandomState


__all__ = [
    "clopper_pearson",
    "hamming_accuracy",
    "macro_f1",
    "micro_f1",
    "multilabel_summary",
    "per_label_accuracy",
    "per_label_ece",
    "per_label_f1",
    "per_label_reliability",
    "subset_accuracy",
]


def clopper_pearson(
    k: ArrayLike, n: ArrayLike, confidence_level: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Two-sided exact (Clopper–Pearson, 1934) interval of a proportion k/n, element-wise.

    NaN bounds where n is 0."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    tail = (1.0 - check_level(confidence_level)) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, beta.ppf(tail, k, n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(1.0 - tail, k + 1, np.maximum(n - k, 1e-300)), 1.0)
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    t, p = as_indicator(y_true, "y_true"), as_indicator(y_pred, "y_pred")
    same_shape(t, p, ("y_true", "y_pred"))
    if t.shape[0] == 0:
        raise ValueError("metrics need at least one item")
    return t, p


def _proportion(k: int, n: int, confidence_level: float) -> Interval:
    low, high = clopper_pearson(k, n, confidence_level)
    return Interval(k / n, float(low), float(high))


def subset_accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, *, confidence_level: float = 0.95
) -> Interval:
    """Share of items whose predicted label set is exactly the true one (exact match), with its
    Clopper–Pearson interval: the strictest item-level measure, what a reviewer would not touch."""
    t, p = _pair(y_true, y_pred)
    return _proportion(int(np.all(t == p, axis=1).sum()), t.shape[0], confidence_level)


def per_label_accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, *, confidence_level: float = 0.95
) -> list[Interval]:
    """Each label's share of right yes/no decisions, with its Clopper–Pearson interval."""
    t, p = _pair(y_true, y_pred)
    right = (t == p).sum(axis=0)
    low, high = clopper_pearson(right, t.shape[0], confidence_level)
    n = t.shape[0]
    return [
        Interval(r / n, float(lo), float(hi)) for r, lo, hi in zip(right, low, high, strict=True)
    ]


# -- bootstrap over items ------------------------------------------------------------------------


def _percentile(estimate: float, draws: NDArray[np.float64], level: float) -> Interval:
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return Interval(float(estimate), float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return Interval(float(estimate), float(low), float(high))


def _resampled_sums(
    stats: NDArray[np.float64], n_boot: int, random_state: RandomState
) -> Iterator[NDArray[np.float64]]:
    """Sums of per-item `stats` rows over bootstrap resamples of the items, in chunks of (b, k).

    Items with equal rows are interchangeable, so resampling draws multiplicities of the
    distinct rows (see `agreement.bootstrap.resample_weights`)."""
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    rows, inverse, counts = np.unique(stats, axis=0, return_inverse=True, return_counts=True)
    rng = np.random.default_rng(random_state)
    for weights in resample_weights(counts, inverse.ravel(), n_boot, rng):
        yield weights @ rows


def _bootstrapped(
    stats: NDArray[np.float64],
    statistic: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    confidence_level: float,
    n_boot: int,
    random_state: RandomState,
) -> Interval:
    """`statistic` of the column sums of `stats`, and its percentile bootstrap interval."""
    level = check_level(confidence_level)
    estimate = float(statistic(stats.sum(axis=0)[None, :])[0])
    draws = np.concatenate(
        [statistic(sums) for sums in _resampled_sums(stats, n_boot, random_state)]
    )
    return _percentile(estimate, draws, level)


def hamming_accuracy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    confidence_level: float = 0.95,
    n_boot: int = 1000,
    random_state: RandomState = 0,
) -> Interval:
    """Share of right label decisions over all items and labels (1 - Hamming loss), with a
    bootstrap interval over items."""
    t, p = _pair(y_true, y_pred)
    n_labels = t.shape[1]
    if n_labels == 0:
        raise ValueError("hamming accuracy needs at least one label")
    stats = np.column_stack([(t == p).sum(axis=1), np.full(t.shape[0], n_labels)])
    return _bootstrapped(
        stats.astype(np.float64),
        lambda s: s[:, 0] / s[:, 1],
        confidence_level,
        n_boot,
        random_state,
    )


def _counts(t: NDArray[np.bool_], p: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Per item and label: true positive, false positive, false negative, shape (n, 3, L)."""
    return np.stack([t & p, ~t & p, t & ~p], axis=1).astype(np.float64)


def _f1(tp: NDArray, fp: NDArray, fn: NDArray) -> NDArray[np.float64]:
    """2TP / (2TP + FP + FN); NaN where there is no positive at all (0/0)."""
    denominator = 2.0 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2.0 * tp / denominator, np.nan)


def micro_f1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    confidence_level: float = 0.95,
    n_boot: int = 1000,
    random_state: RandomState = 0,
) -> Interval:
    """F1 of all label decisions pooled (frequent labels weigh more), with a bootstrap interval
    over items. NaN when neither truth nor prediction has a single positive."""
    t, p = _pair(y_true, y_pred)
    stats = _counts(t, p).sum(axis=2)
    return _bootstrapped(
        stats, lambda s: _f1(s[:, 0], s[:, 1], s[:, 2]), confidence_level, n_boot, random_state
    )


def per_label_f1(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.float64]:
    """Each label's F1 (L,); NaN for a label with no true and no predicted positive."""
    t, p = _pair(y_true, y_pred)
    tp, fp, fn = _counts(t, p).sum(axis=0)
    return _f1(tp, fp, fn)


def _macro(sums: NDArray[np.float64], n_labels: int) -> NDArray[np.float64]:
    tp, fp, fn = (sums[:, k * n_labels : (k + 1) * n_labels] for k in range(3))
    f1 = _f1(tp, fp, fn)
    defined = np.isfinite(f1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined > 0, np.nansum(f1, axis=1) / defined, np.nan)


def macro_f1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    confidence_level: float = 0.95,
    n_boot: int = 1000,
    random_state: RandomState = 0,
) -> Interval:
    """Unweighted mean of the per-label F1 (rare labels count as much as frequent ones), with a
    bootstrap interval over items.

    A label with no true and no predicted positive has no F1 (0/0) and is left out of the mean,
    as scikit-learn does with `zero_division=np.nan`: a small gold set that happens to hold no
    item of a rare label says nothing about it, neither 0 nor 1."""
    t, p = _pair(y_true, y_pred)
    n_labels = t.shape[1]
    stats = _counts(t, p).reshape(t.shape[0], 3 * n_labels)
    return _bootstrapped(
        stats, lambda s: _macro(s, n_labels), confidence_level, n_boot, random_state
    )


# -- calibration per label -----------------------------------------------------------------------


def _check_calibration_input(
    y_true: ArrayLike, proba: ArrayLike, n_bins: int
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    t, p = as_indicator(y_true, "y_true"), as_label_proba(proba)
    same_shape(t, p, ("y_true", "proba"))
    if t.shape[0] == 0:
        raise ValueError("calibration metrics need at least one item")
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    return t, p


def per_label_log_loss(
    proba: ArrayLike, y_true: ArrayLike, eps: float = 1e-6
) -> NDArray[np.float64]:
    """Each label's mean binary log loss, probabilities clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(proba, dtype=np.float64), eps, 1.0 - eps)
    t = np.asarray(y_true, dtype=bool)
    return np.asarray(-np.where(t, np.log(p), np.log1p(-p)).mean(axis=0), dtype=np.float64)


def per_label_reliability(
    y_true: ArrayLike, proba: ArrayLike, n_bins: int = 15
) -> list[ReliabilityBins]:
    """Reliability diagram data of each label: per bin of the label's probability, the mean
    probability, the share of items the label really applies to, and the count."""
    t, p = _check_calibration_input(y_true, proba, n_bins)
    return [reliability_bins(p[:, j], t[:, j], n_bins, "uniform") for j in range(t.shape[1])]


def per_label_ece(
    y_true: ArrayLike,
    proba: ArrayLike,
    *,
    n_bins: int = 15,
    confidence_level: float = 0.95,
    n_boot: int = 1000,
    random_state: RandomState = 0,
) -> list[Interval]:
    """Each label's expected calibration error, with a bootstrap interval over items.

    The ECE of a label is that of its probability against whether it applies (uniform bins on
    [0, 1], as `calibration.metrics.expected_calibration_error`): the item-weighted mean over
    bins of |share that applies - mean probability|. That is also the ECE of the yes/no decision's
    confidence max(p, 1 - p) when the bins are symmetric about 1/2. The ECE estimator is biased
    upwards on small samples, and so is its bootstrap interval: read it as an upper bound.
    """
    level = check_level(confidence_level)
    t, p = _check_calibration_input(y_true, proba, n_bins)
    n, n_labels = t.shape
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    column = bins + n_bins * np.arange(n_labels)[None, :]
    # Each item adds (applies - probability) to one bin per label; ECE = sum |bin totals| / n.
    gaps = sparse.csr_matrix(
        ((t - p).ravel(), (np.repeat(np.arange(n), n_labels), column.ravel())),
        shape=(n, n_labels * n_bins),
    )

    def ece(weights: NDArray[np.integer] | NDArray[np.floating]) -> NDArray[np.float64]:
        totals = np.asarray((gaps.T @ weights.T).T).reshape(len(weights), n_labels, n_bins)
        return np.abs(totals).sum(axis=2) / weights.sum(axis=1, keepdims=True)

    estimate = ece(np.ones((1, n)))[0]
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    rng = np.random.default_rng(random_state)
    draws = np.concatenate(
        [ece(w) for w in resample_weights(np.ones(n, np.int64), np.arange(n), n_boot, rng)]
    )
    return [_percentile(estimate[j], draws[:, j], level) for j in range(n_labels)]


# -- everything at once --------------------------------------------------------------------------


def multilabel_summary(
    y_true: ArrayLike,
    y_pred: ArrayLike | None = None,
    proba: ArrayLike | None = None,
    *,
    labels: Sequence[Any] | None = None,
    n_bins: int = 15,
    confidence_level: float = 0.95,
    n_boot: int = 1000,
    random_state: RandomState = 0,
) -> dict[str, Any]:
    """Every metric of this module as a JSON-able dict; `y_pred` defaults to proba >= 1/2.

    Intervals are dicts {estimate, low, high}; `per_label` is keyed by label name (or index)."""
    t = as_indicator(y_true, "y_true")
    if y_pred is None:
        if proba is None:
            raise ValueError("give y_pred, proba or both")
        y_pred = as_label_proba(proba) >= 0.5
    names = [str(x) for x in labels] if labels is not None else [str(j) for j in range(t.shape[1])]
    if len(names) != t.shape[1]:
        raise ValueError(f"labels names {len(names)} labels, the matrices have {t.shape[1]}")
    boot = _Bootstrap(confidence_level=confidence_level, n_boot=n_boot, random_state=random_state)
    per_label: dict[str, dict[str, Any]] = {name: {} for name in names}
    label_acc = per_label_accuracy(t, y_pred, confidence_level=confidence_level)
    label_f1 = per_label_f1(t, y_pred)
    support = t.sum(axis=0)
    for j, name in enumerate(names):
        per_label[name].update(
            accuracy=label_acc[j].to_dict(),
            f1=None if np.isnan(label_f1[j]) else float(label_f1[j]),
            support=int(support[j]),
        )
    out: dict[str, Any] = {
        "n": int(t.shape[0]),
        "n_labels": int(t.shape[1]),
        "confidence_level": confidence_level,
        "subset_accuracy": subset_accuracy(t, y_pred, confidence_level=confidence_level).to_dict(),
        "hamming_accuracy": hamming_accuracy(t, y_pred, **boot).to_dict(),
        "micro_f1": micro_f1(t, y_pred, **boot).to_dict(),
        "macro_f1": macro_f1(t, y_pred, **boot).to_dict(),
        "per_label": per_label,
    }
    if proba is not None:
        eces = per_label_ece(t, proba, n_bins=n_bins, **boot)
        for name, interval in zip(names, eces, strict=True):
            per_label[name]["ece"] = interval.to_dict()
        out["max_label_ece"] = max(e.estimate for e in eces)
    return out
