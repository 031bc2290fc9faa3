"""Chance-corrected agreement coefficients on integer-coded ratings.

Conventions (shared with the ``krippendorff`` package): multi-rater data is *raters × items*, a
missing rating is ``None`` or NaN. Labels are encoded to integer codes once and every coefficient
is a function of sums over items, computed with NumPy counting (no Python loop over items).

Degenerate input, documented once for every coefficient here:

* When chance agreement is 1 (every rating falls in one category), observed agreement is 1 too and
  the coefficient is 0/0. Like the seed's functions, we return ``1.0``: agreement is perfect, there
  is only no evidence that it beats chance.
* No item that two ratings can be compared on (empty input, one rater, all missing) raises
  ``ValueError``; so do ragged or mis-shaped inputs and labels outside a given label set.
* Per-category Fleiss kappa of a category nobody used is NaN, on purpose (nothing to measure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from labelloop.agreement._encode import as_array, compress_rows, count_table, encode_labels

Weights = Literal["linear", "quadratic"] | None
Level = Literal["nominal", "ordinal", "interval", "ratio"]
_BLOCK_CELLS = 1 << 22


def chance_corrected(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """(observed - expected) / (1 - expected), and 1.0 where expected is 1 (see module doc)."""
    degenerate = expected >= 1.0 - 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (observed - expected) / (1.0 - expected)
    return np.where(degenerate, 1.0, value)


def reliability_codes(
    reliability_data: Any, labels: Sequence[Any] | None = None
) -> tuple[np.ndarray, list[Any]]:
    """Raters × items integer codes (-1 missing) and the categories, with shape checks."""
    try:
        codes, categories = encode_labels(reliability_data, labels)
    except ValueError as exc:
        if "inhomogeneous" in str(exc):
            raise ValueError("every rater must rate the same items (use None for missing)") from exc
        raise
    if codes.ndim != 2:
        raise ValueError("reliability data must be 2-D: raters × items")
    if codes.shape[1] == 0:
        raise ValueError("no items to compare")
    return codes, categories


def ratings_table(
    reliability_data: Any, labels: Sequence[Any] | None = None
) -> tuple[np.ndarray, list[Any]]:
    """Items × categories counts (the input of :func:`fleiss_kappa`) from raters × items labels."""
    codes, categories = reliability_codes(reliability_data, labels)
    return count_table(codes, len(categories)), categories


# --------------------------------------------------------------------------- sums over items
@dataclass(frozen=True)
class TableSums:
    """Weighted sums over items that every multi-rater coefficient is a function of.

    Each field has a leading axis B: one row per weighting of the items (one for the estimate,
    one per bootstrap resample).
    """

    n_pairable: np.ndarray  # items with at least two ratings
    agreement: np.ndarray  # sum of each pairable item's share of agreeing rating pairs
    n_rated: np.ndarray  # items with at least one rating
    disagreement: np.ndarray  # (B, K) per-category share of disagreeing pairs
    shares: np.ndarray  # (B, K) sum of each rated item's category proportions
    coincidences: np.ndarray  # (B, K, K) Krippendorff's coincidence matrix


def _item_features(rows: np.ndarray) -> np.ndarray:
    rows = rows.astype(np.float64)
    n_items, k = rows.shape
    n = rows.sum(axis=1)
    pairable = n >= 2
    rated = n >= 1
    pairs = np.where(pairable, n * (n - 1), 1.0)
    agreement = np.where(pairable, ((rows * rows).sum(axis=1) - n) / pairs, 0.0)
    disagreement = rows * pairable[:, None] * (n[:, None] - rows) / pairs[:, None]
    shares = rows / np.where(rated, n, 1.0)[:, None]
    scale = np.where(pairable, 1.0 / np.where(pairable, n - 1, 1.0), 0.0)
    coinc = rows[:, :, None] * rows[:, None, :]
    coinc[:, np.arange(k), np.arange(k)] -= rows
    coinc *= scale[:, None, None]
    columns = [pairable[:, None], agreement[:, None], rated[:, None]]
    columns += [disagreement, shares, coinc.reshape(n_items, k * k)]
    return np.hstack(columns)


def table_sums(rows: np.ndarray, weights: np.ndarray) -> TableSums:
    """Sums over items of per-item features; `rows` are (distinct) count rows, `weights` (B, P)."""
    weights = np.atleast_2d(weights).astype(np.float64)
    n_rows, k = rows.shape
    width = 3 + 2 * k + k * k
    block = max(1, _BLOCK_CELLS // width)
    total = np.zeros((weights.shape[0], width))
    for start in range(0, n_rows, block):
        stop = start + block
        total += weights[:, start:stop] @ _item_features(rows[start:stop])
    cut = np.cumsum([1, 1, 1, k, k])
    parts = np.split(total, cut, axis=1)
    return TableSums(
        n_pairable=parts[0][:, 0],
        agreement=parts[1][:, 0],
        n_rated=parts[2][:, 0],
        disagreement=parts[3],
        shares=parts[4],
        coincidences=parts[5].reshape(-1, k, k),
    )


def sums_of_table(table: np.ndarray) -> TableSums:
    """Sums for an items × categories count table, computed once per distinct row."""
    rows, counts, _ = compress_rows(table, with_inverse=False)
    sums = table_sums(rows, counts[None, :])
    if sums.n_pairable[0] == 0:
        raise ValueError("no item has two ratings to compare (one rater, or all missing?)")
    return sums


# --------------------------------------------------------------------------- coefficients
def percent_from_sums(s: TableSums) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return s.agreement / s.n_pairable


def _category_prevalence(s: TableSums) -> np.ndarray:
    """Mean share of each category per rated item (the pooled share when no rating is missing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return s.shares / s.n_rated[:, None]


def fleiss_from_sums(s: TableSums) -> np.ndarray:
    p = _category_prevalence(s)
    return chance_corrected(percent_from_sums(s), (p * p).sum(axis=1))


def fleiss_by_category_from_sums(s: TableSums) -> np.ndarray:
    p = _category_prevalence(s)
    spread = p * (1.0 - p)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 1.0 - (s.disagreement / s.n_pairable[:, None]) / spread
    value = np.where(p >= 1.0 - 1e-12, 1.0, value)
    return np.where(p <= 0.0, np.nan, value)


def ac1_from_sums(s: TableSums) -> np.ndarray:
    k = s.shares.shape[1]
    if k < 2:
        return np.ones_like(s.agreement)
    pi = _category_prevalence(s)
    expected = (pi * (1.0 - pi)).sum(axis=1) / (k - 1)
    return chance_corrected(percent_from_sums(s), expected)


def _category_values(categories: Sequence[Any], level: Level) -> np.ndarray:
    try:
        return np.asarray(categories, dtype=np.float64)
    except (TypeError, ValueError):
        if level == "ratio":
            raise ValueError("ratio alpha needs numeric labels") from None
        return np.arange(len(categories), dtype=np.float64)


def _distances(level: Level, values: np.ndarray, marginals: np.ndarray) -> np.ndarray:
    """Squared difference function δ² of Krippendorff (2011), shape (B, K, K) or (K, K)."""
    if level == "nominal":
        return 1.0 - np.eye(values.size)
    if level == "ordinal":
        cum = np.cumsum(marginals, axis=-1)
        lo = np.minimum.outer(np.arange(values.size), np.arange(values.size))
        hi = np.maximum.outer(np.arange(values.size), np.arange(values.size))
        between = cum[..., hi] - cum[..., lo] + marginals[..., lo]
        return (between - (marginals[..., :, None] + marginals[..., None, :]) / 2.0) ** 2
    diff = np.subtract.outer(values, values)
    if level == "interval":
        return diff**2
    if level == "ratio":
        total = np.add.outer(values, values)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total == 0, 0.0, (diff / total) ** 2)
    raise ValueError(f"unknown level of measurement {level!r}")


def alpha_from_sums(s: TableSums, level: Level, values: np.ndarray) -> np.ndarray:
    o = s.coincidences
    n_c = o.sum(axis=2)
    n = n_c.sum(axis=1)
    delta = _distances(level, values, n_c)
    observed = (o * delta).sum(axis=(1, 2))
    expected = (n_c[:, :, None] * n_c[:, None, :] * delta).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 1.0 - (n - 1.0) * observed / expected
    return np.where(expected <= 0.0, 1.0, value)


# --------------------------------------------------------------------------- public functions
def _check_table(ratings_matrix: Any) -> np.ndarray:
    table = np.asarray(ratings_matrix)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] == 0:
        raise ValueError("ratings_matrix must be a non-empty items × categories count table")
    whole = table.dtype.kind in "iub" or (
        table.dtype.kind == "f" and np.all(np.isfinite(table) & (table == np.round(table)))
    )
    if not whole:
        raise ValueError("ratings_matrix must hold whole counts")
    if table.min() < 0:
        raise ValueError("ratings_matrix must hold non-negative counts")
    return table.astype(np.int64)


def fleiss_kappa(ratings_matrix: Any) -> float:
    """Fleiss' kappa from an items × categories table of how many raters chose each category.

    Items may have different numbers of ratings (missing ratings): observed agreement is averaged
    over items with two ratings or more and chance agreement uses each category's mean share per
    rated item, Gwet's (2014) generalisation as in irrCAC; with equal counts it is Fleiss (1971).
    """
    return float(fleiss_from_sums(sums_of_table(_check_table(ratings_matrix)))[0])


def fleiss_kappa_by_category(ratings_matrix: Any) -> np.ndarray:
    """Fleiss' kappa of each category (one-vs-rest), NaN for categories nobody used."""
    return fleiss_by_category_from_sums(sums_of_table(_check_table(ratings_matrix)))[0]


def percent_agreement(reliability_data: Any, labels: Sequence[Any] | None = None) -> float:
    """Share of agreeing rating pairs per item, averaged over items with two ratings or more.

    For two raters this is the share of items (both rated) on which they agree.
    """
    codes, categories = reliability_codes(reliability_data, labels)
    return float(percent_from_sums(sums_of_table(count_table(codes, len(categories))))[0])


def gwet_ac1(reliability_data: Any, labels: Sequence[Any] | None = None) -> float:
    """Gwet's AC1 (Gwet 2008) for any number of raters with missing ratings.

    Chance agreement depends on the number of categories: pass the full label set as `labels`
    when some labels were never used.
    """
    codes, categories = reliability_codes(reliability_data, labels)
    return float(ac1_from_sums(sums_of_table(count_table(codes, len(categories))))[0])


def krippendorff_alpha(
    reliability_data: Any = None,
    level_of_measurement: Level = "nominal",
    *,
    value_counts: Any = None,
    labels: Sequence[Any] | None = None,
) -> float:
    """Krippendorff's alpha from raters × units data (missing as None/NaN) or a units × values
    count table, for nominal, ordinal, interval or ratio data.

    Values are ordered as `labels` when given, else sorted. Interval and ratio distances use the
    numeric values of the labels (interval falls back to their positions for text labels).
    """
    if (reliability_data is None) == (value_counts is None):
        raise ValueError("give exactly one of reliability_data and value_counts")
    if value_counts is not None:
        table = _check_table(value_counts)
        categories = list(labels) if labels is not None else list(range(table.shape[1]))
        if len(categories) != table.shape[1]:
            raise ValueError("labels must name every column of value_counts")
    else:
        codes, categories = reliability_codes(reliability_data, labels)
        table = count_table(codes, len(categories))
    values = _category_values(categories, level_of_measurement)
    return float(alpha_from_sums(sums_of_table(table), level_of_measurement, values)[0])


# --------------------------------------------------------------------------- Cohen's kappa
def disagreement_weights(n_categories: int, weights: Weights) -> np.ndarray:
    """Cohen's disagreement weights over ordered categories (0 on the diagonal)."""
    pos = np.arange(n_categories, dtype=np.float64)
    if weights is None:
        return 1.0 - np.eye(n_categories)
    gap = np.abs(np.subtract.outer(pos, pos))
    if weights == "linear":
        return gap
    if weights == "quadratic":
        return gap**2
    raise ValueError(f"weights must be None, 'linear' or 'quadratic', not {weights!r}")


def pair_confusion(a: np.ndarray, b: np.ndarray, n_categories: int) -> np.ndarray:
    """K × K counts of (a, b) code pairs over items both rated."""
    both = (a >= 0) & (b >= 0)
    flat = a[both] * n_categories + b[both]
    return np.bincount(flat, minlength=n_categories * n_categories).reshape(
        n_categories, n_categories
    )


def kappa_from_confusion(confusion: np.ndarray, weights: Weights = None) -> np.ndarray:
    """Cohen's kappa for each (…, K, K) confusion matrix: 1 - Σ w·observed / Σ w·expected."""
    confusion = np.asarray(confusion, dtype=np.float64)
    w = disagreement_weights(confusion.shape[-1], weights)
    n = confusion.sum(axis=(-2, -1))
    rows, cols = confusion.sum(axis=-1), confusion.sum(axis=-2)
    observed = (confusion * w).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.einsum("...i,ij,...j->...", rows, w, cols) / n
        value = 1.0 - observed / expected
    return np.where(expected <= 1e-12 * np.maximum(n, 1), 1.0, value)


def cohens_kappa(
    labels_a: Any,
    labels_b: Any,
    weights: Weights = None,
    *,
    labels: Sequence[Any] | None = None,
) -> float:
    """Cohen's kappa between two raters, unweighted or with linear / quadratic weights.

    Items either rater left missing are skipped. Weighted kappa orders categories as `labels`
    (else sorted). Returns 1.0 when both raters used a single, identical category.
    """
    a, b = as_array(labels_a), as_array(labels_b)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError("labels_a and labels_b must be 1-D and of the same length")
    if a.dtype.kind in "iufb" and b.dtype.kind in "iufb":
        stacked = np.stack([a, b])
    else:
        stacked = np.empty((2, a.size), dtype=object)
        stacked[0], stacked[1] = a.astype(object), b.astype(object)
    codes, categories = encode_labels(stacked, labels)
    confusion = pair_confusion(codes[0], codes[1], len(categories))
    if confusion.sum() == 0:
        raise ValueError("no item rated by both raters")
    return float(kappa_from_confusion(confusion, weights))
