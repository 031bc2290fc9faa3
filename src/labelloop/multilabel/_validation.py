"""Input checks for multi-label arrays: one clear error instead of a silent broadcast."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labelloop.calibration._validation import as_confidences


def as_indicator(y: ArrayLike, name: str = "y") -> NDArray[np.bool_]:
    """A 2-D (items x labels) boolean matrix from booleans or 0/1 numbers."""
    arr = np.asarray(y)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (items x labels) indicator matrix, got {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "iuf" or not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must hold only booleans or 0/1")
    return arr.astype(bool)


def as_label_proba(proba: ArrayLike, name: str = "proba") -> NDArray[np.float64]:
    """A 2-D (items x labels) matrix of per-label probabilities, each in [0, 1] on its own.

    Rows are not distributions: a label's probability says whether that label applies.
    """
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (items x labels) matrix, got shape {arr.shape}")
    as_confidences(arr.ravel(), name)  # finite and within [0, 1], or a clear error
    return arr


def same_shape(a: NDArray, b: NDArray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in shape: {a.shape} vs {b.shape}")


def check_level(confidence_level: float) -> float:
    level = float(confidence_level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence_level must lie in (0, 1), got {confidence_level}")
    return level
