"""Bootstrap percentile intervals over items, vectorised.

Every coefficient is a function of sums over items of a per-item quantity that depends only on
the item's ratings. Items with the same ratings are therefore interchangeable: resampling N items
with replacement is the same as drawing how many times each distinct rating pattern appears,
Multinomial(N, pattern frequencies). A resample costs O(patterns), not O(items), and all
resamples of a chunk are one matrix product.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labelloop.agreement._encode import Codes, compress_rows, count_table
from labelloop.agreement.metrics import (
    Level,
    TableSums,
    Weights,
    _category_values,
    ac1_from_sums,
    alpha_from_sums,
    fleiss_from_sums,
    kappa_from_confusion,
    percent_from_sums,
    reliability_codes,
    table_sums,
)

_CHUNK_CELLS = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval (a bootstrap percentile interval here; a Jeffreys
    interval for the annotator accuracies of `consensus`)."""

    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def resample_weights(
    counts: NDArray[np.integer],
    inverse: NDArray[np.intp],
    n_boot: int,
    rng: np.random.Generator,
) -> Iterator[NDArray[np.int64]]:
    """Chunks of (b, P) pattern multiplicities, one row per bootstrap resample of the items."""
    n_items, n_patterns = int(counts.sum()), counts.size
    if n_patterns * 8 <= n_items:  # few patterns: multinomial draws, O(P) per resample
        per_chunk = max(1, _CHUNK_CELLS // n_patterns)
        pvals = counts / n_items
        for start in range(0, n_boot, per_chunk):
            yield rng.multinomial(n_items, pvals, size=min(per_chunk, n_boot - start))
        return
    per_chunk = max(1, _CHUNK_CELLS // max(n_items, n_patterns))
    for start in range(0, n_boot, per_chunk):
        b = min(per_chunk, n_boot - start)
        picked = inverse[rng.integers(0, n_items, size=(b, n_items))]
        picked += np.arange(b)[:, None] * n_patterns
        yield np.bincount(picked.ravel(), minlength=b * n_patterns).reshape(b, n_patterns)


def _interval(estimate: float, draws: NDArray[np.floating], confidence: float) -> Interval:
    tail = (1.0 - confidence) / 2.0 * 100.0
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return Interval(float(estimate), float("nan"), float("nan"))
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return Interval(float(estimate), float(low), float(high))


def _check(n_boot: int, confidence: float) -> None:
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie strictly between 0 and 1")


def table_intervals(
    codes: Codes,
    categories: Sequence[Any],
    level_of_measurement: Level = "nominal",
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> dict[str, Interval]:
    """Percent agreement, Fleiss' kappa, Krippendorff's alpha and Gwet's AC1 with intervals,
    from raters × items codes; all four share the same resamples."""
    _check(n_boot, confidence)
    rng = np.random.default_rng(random_state)
    values = _category_values(categories, level_of_measurement)
    rows, counts, inverse = compress_rows(count_table(codes, len(categories)))
    metrics: dict[str, Callable[[TableSums], NDArray[np.float64]]] = {
        "percent_agreement": percent_from_sums,
        "fleiss_kappa": fleiss_from_sums,
        "krippendorff_alpha": lambda s: alpha_from_sums(s, level_of_measurement, values),
        "gwet_ac1": ac1_from_sums,
    }
    point = table_sums(rows, counts[None, :])
    if point.n_pairable[0] == 0:
        raise ValueError("no item has two ratings to compare (one rater, or all missing?)")
    draws: dict[str, list[NDArray[np.float64]]] = {name: [] for name in metrics}
    for weights in resample_weights(counts, inverse, n_boot, rng):
        sums = table_sums(rows, weights)
        for name, fn in metrics.items():
            draws[name].append(fn(sums))
    return {
        name: _interval(fn(point)[0], np.concatenate(draws[name]), confidence)
        for name, fn in metrics.items()
    }


def confusion_interval(
    a: Codes,
    b: Codes,
    n_categories: int,
    weights: Weights = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> Interval:
    """Cohen's kappa between two code vectors (-1 missing) with its bootstrap interval."""
    _check(n_boot, confidence)
    rng = np.random.default_rng(random_state)
    side = n_categories + 1
    pattern = (a + 1) * side + (b + 1)
    counts = np.bincount(pattern, minlength=side * side)
    if counts.reshape(side, side)[1:, 1:].sum() == 0:
        raise ValueError("no item rated by both raters")
    point = kappa_from_confusion(counts.reshape(side, side)[1:, 1:], weights)
    draws = [
        kappa_from_confusion(w.reshape(-1, side, side)[:, 1:, 1:], weights)
        for w in resample_weights(counts, pattern, n_boot, rng)
    ]
    return _interval(float(point), np.concatenate(draws), confidence)


def bootstrap_agreement(
    reliability_data: Any,
    labels: Sequence[Any] | None = None,
    *,
    level_of_measurement: Level = "nominal",
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> dict[str, Interval]:
    """Multi-rater coefficients of raters × items data with bootstrap intervals over items."""
    codes, categories = reliability_codes(reliability_data, labels)
    return table_intervals(
        codes, categories, level_of_measurement, n_boot, confidence, random_state
    )


def bootstrap_cohens_kappa(
    labels_a: Any,
    labels_b: Any,
    weights: Weights = None,
    *,
    labels: Sequence[Any] | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> Interval:
    """Cohen's kappa of two raters with a bootstrap interval over items."""
    codes, categories = reliability_codes([list(labels_a), list(labels_b)], labels)
    return confusion_interval(
        codes[0], codes[1], len(categories), weights, n_boot, confidence, random_state
    )
