"""Turn label arrays of any type into integer codes once, so every metric counts with NumPy.

Code ``-1`` means "missing": ``None``, a float NaN or ``pandas.NA``. Categories keep the order of
the label set when one is given (it matters for weighted kappa and ordinal alpha); otherwise they
are the sorted distinct values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

MISSING = -1


#: Integer codes of ratings: 0..K-1 index the categories, -1 marks a missing rating.
Codes = NDArray[np.int64]


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN of any float type
    except (TypeError, ValueError):  # pandas.NA and friends refuse to be truth-tested
        return True


def _sorted_categories(values: set[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # mixed types: a stable, deterministic order
        return sorted(values, key=lambda v: (type(v).__name__, repr(v)))


def _small_offsets(values: NDArray[Any]) -> tuple[int, Codes] | None:
    """(min, values - min) when the values are whole numbers spanning fewer than 65,536 (ratings
    usually are): codes then come from a lookup table, several times faster than sorting."""
    if values.size == 0 or values.dtype.kind == "b":
        return None
    lo, hi = values.min().item(), values.max().item()
    if not (hi - lo < 1 << 16 and lo > -(1 << 62) and hi < 1 << 62):
        return None
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        return None
    return int(lo), values.astype(np.int64) - int(lo)


def _numeric_codes(
    present: NDArray[Any], labels: Sequence[Any] | None
) -> tuple[Codes, NDArray[Any]]:
    """Codes of the present values and the sorted categories (or the given label order)."""
    small = _small_offsets(present)
    if small is not None:
        lo, offsets = small
        lookup = np.full(int(offsets.max()) + 1, MISSING, dtype=np.int64)
        if labels is None:
            seen = np.flatnonzero(np.bincount(offsets))
            lookup[seen] = np.arange(seen.size)
            cats = (seen + lo).astype(present.dtype)
        else:
            cats = np.asarray(labels)
            spot = cats - lo
            fits = (spot >= 0) & (spot < lookup.size) & (spot == np.round(spot))
            lookup[spot[fits].astype(np.int64)] = np.flatnonzero(fits)
        return lookup[offsets], cats
    if labels is None:
        cats = np.unique(present)
        order = np.arange(cats.size)
    else:
        order = np.argsort(np.asarray(labels), kind="stable")
        cats = np.asarray(labels)[order]
    if cats.size == 0:
        return np.full(present.shape, MISSING, dtype=np.int64), cats
    pos = np.searchsorted(cats, present).clip(0, cats.size - 1)
    return np.where(cats[pos] == present, order[pos], MISSING), cats


def _encode_numeric(arr: NDArray[Any], labels: Sequence[Any] | None) -> tuple[Codes, list[Any]]:
    if labels is not None and np.asarray(labels).dtype.kind not in "iufb":
        raise ValueError("numeric ratings need a numeric label set")
    missing = np.isnan(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, dtype=bool)
    present = arr[~missing]
    found, cats = _numeric_codes(present, labels)
    if np.any(found == MISSING):
        raise ValueError(f"rating {present[found == MISSING][0]!r} is not in the label set")
    codes = np.full(arr.shape, MISSING, dtype=np.int64)
    codes[~missing] = found
    return codes, (list(labels) if labels is not None else cats.tolist())


def _encode_objects(arr: NDArray[Any], labels: Sequence[Any] | None) -> tuple[Codes, list[Any]]:
    flat = arr.ravel()
    if labels is None:
        categories = _sorted_categories({v for v in set(flat.tolist()) if not _is_missing(v)})
    else:
        categories = list(labels)
    lookup = {value: code for code, value in enumerate(categories)}
    if len(lookup) != len(categories):
        raise ValueError("the label set has duplicates")
    codes = np.fromiter((lookup.get(v, MISSING) for v in flat.tolist()), np.int64, flat.size)
    for i in np.flatnonzero(codes == MISSING):
        if not _is_missing(flat[i]):
            raise ValueError(f"rating {flat[i]!r} is not in the label set")
    return codes.reshape(arr.shape), categories


def as_array(data: Any) -> NDArray[Any]:
    """`data` as an array, keeping Python lists of mixed text and NaN/None as objects.

    (NumPy would turn ``["a", float("nan")]`` into the string ``"nan"``.)
    """
    if isinstance(data, np.ndarray):
        return data
    arr = np.asarray(data)
    return np.asarray(data, dtype=object) if arr.dtype.kind in "US" else arr


def encode_labels(data: Any, labels: Sequence[Any] | None = None) -> tuple[Codes, list[Any]]:
    """Integer codes (``-1`` for missing) of the same shape as `data`, and the categories.

    Raises ValueError when a rating is not in the given label set.
    """
    arr = as_array(data)
    if arr.dtype.kind in "iufb":
        return _encode_numeric(arr, labels)
    if arr.dtype.kind in "US":
        arr = arr.astype(object)
    return _encode_objects(arr, labels)


def as_codes(codes: ArrayLike, n_categories: int) -> Codes:
    """Validate an integer code array (``-1`` = missing) coming from the caller."""
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu":
        raise ValueError("codes must be integers")
    if arr.size and (arr.min() < MISSING or arr.max() >= n_categories):
        raise ValueError(f"codes must lie in -1..{n_categories - 1}")
    return arr.astype(np.int64, copy=False)


def count_table(codes: NDArray[np.integer], n_categories: int) -> NDArray[np.integer]:
    """Items × categories counts from raters × items codes (missing ratings not counted).

    The result is a transposed view of a categories × items array, so that per-category passes
    over all items (see ``raters.plurality``) run on contiguous memory.
    """
    n_items = codes.shape[1]
    # code -1 (missing) lands in a leading block of bins that is dropped: no masking pass
    flat = (codes + 1) * n_items + np.arange(n_items)
    counts = np.bincount(flat.ravel(), minlength=(n_categories + 1) * n_items)[n_items:]
    table = counts.astype(np.int16) if codes.shape[0] < 2**15 else counts.astype(np.int64)
    return table.reshape(n_categories, n_items).T


@overload
def compress_rows(
    table: NDArray[np.integer], with_inverse: Literal[True] = True
) -> tuple[NDArray[np.integer], NDArray[np.int64], NDArray[np.intp]]: ...
@overload
def compress_rows(
    table: NDArray[np.integer], with_inverse: Literal[False]
) -> tuple[NDArray[np.integer], NDArray[np.int64], None]: ...
def compress_rows(
    table: NDArray[np.integer], with_inverse: bool = True
) -> tuple[NDArray[np.integer], NDArray[np.int64], NDArray[np.intp] | None]:
    """Distinct rows of a small-integer table, how often each occurs, and each row's index
    (None unless `with_inverse`).

    Every statistic here is a sum over items of a function of the item's row, so it can be
    computed once per distinct row and weighted; bootstrap resamples become multinomial counts.
    """
    n_rows, width = table.shape
    if n_rows == 0:
        return table[:0], np.zeros(0, np.int64), np.zeros(0, np.intp) if with_inverse else None
    lo = int(table.min())
    base = int(table.max()) - lo + 1
    if width * np.log2(max(base, 2)) >= 62:
        rows, row_of, counts = np.unique(table, axis=0, return_inverse=True, return_counts=True)
        return rows, counts, row_of.ravel() if with_inverse else None
    keys = np.zeros(n_rows, dtype=np.int64)
    for column in table.T:  # Horner's rule, one contiguous pass per column
        keys *= base
        keys += column
        keys -= lo
    inverse: NDArray[np.intp] | None = None
    if with_inverse:
        distinct, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    else:
        distinct, counts = np.unique(keys, return_counts=True)
    rows = np.empty((distinct.size, width), dtype=table.dtype)
    for j in range(width - 1, -1, -1):  # undo Horner's rule on the few distinct keys
        distinct, digit = np.divmod(distinct, base)
        rows[:, j] = digit + lo
    return rows, counts, None if inverse is None else inverse.ravel()
