"""Input checks shared by the calibration modules: one clear error instead of a silent NaN."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Probabilities are clipped to [EPS, 1 - EPS] before logs, so one confident mistake costs a
#: large but finite amount instead of an infinite log loss.
EPS = 1e-12


def as_confidences(confidences: ArrayLike, name: str = "confidences") -> NDArray[np.float64]:
    """A 1-D float array of finite values in [0, 1]."""
    arr = np.asarray(confidences, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got range [{arr.min()}, {arr.max()}]")
    return arr


def as_correct(correct: ArrayLike, n: int, name: str = "correct") -> NDArray[np.float64]:
    """A 1-D 0/1 float array of length `n` (booleans or 0/1 numbers)."""
    arr = np.asarray(correct)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be one-dimensional of length {n}, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all((arr == 0.0) | (arr == 1.0)):
        raise ValueError(f"{name} must hold only booleans or 0/1")
    return arr


def as_proba(proba: ArrayLike, name: str = "proba") -> NDArray[np.float64]:
    """A 2-D (items x labels) array of finite non-negative rows, renormalised to sum to one."""
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D (items x labels) matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or (arr.size and arr.min() < 0.0):
        raise ValueError(f"{name} must hold finite non-negative probabilities")
    sums = arr.sum(axis=1, keepdims=True)
    if np.any(sums <= 0.0):
        raise ValueError(f"{name} has a row that sums to zero")
    return arr / sums


def as_label_index(y: ArrayLike, n: int, n_labels: int, name: str = "y") -> NDArray[np.intp]:
    """Column indices of the true labels; -1 marks a true label outside the label set."""
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be one-dimensional of length {n}, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer column indices of the probability matrix")
    if arr.size and (arr.max() >= n_labels or arr.min() < -1):
        raise ValueError(f"{name} holds an index outside [-1, {n_labels - 1}]")
    return arr.astype(np.intp)


def split_scores(scores: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """(top confidence, probability matrix or None) from a 1-D or 2-D score array."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 2:
        proba = as_proba(arr)
        return proba.max(axis=1), proba
    return as_confidences(arr), None


def labels_equal(a: Any, b: Any) -> NDArray[np.bool_]:
    """Element-wise equality of two label sequences (strings, ints or objects)."""
    left, right = np.asarray(a), np.asarray(b)
    if left.shape != right.shape or left.ndim != 1:
        raise ValueError(f"label sequences differ in shape: {left.shape} vs {right.shape}")
    if (
        left.dtype.kind in "USifb"
        and right.dtype.kind in "USifb"
        and ((left.dtype.kind in "US") == (right.dtype.kind in "US"))
    ):
        return np.asarray(left == right, dtype=bool)
    return np.fromiter((x == y for x, y in zip(a, b, strict=True)), dtype=bool, count=len(left))
