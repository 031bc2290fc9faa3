"""One calibrator per label: the probability that each label applies, fitted on gold items.

A multi-label labeler answers L yes/no questions per item, and its habits differ per label (it
may say "anger" too readily and "pride" too rarely), so each label gets its own map from the
reported probability to the share of items it really applies to. Each map is one of labelloop's
binary calibrators (`calibration.make_calibrator`), fitted on the 1-D form: the reported
probability as the confidence, whether the label applies as the target. Temperature and vector
scaling need a probability matrix over exclusive labels and do not apply; temperature scaling of
one binary probability is Platt scaling without its intercept, so 'platt' covers it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.model_selection import KFold

from labelloop.calibration import Calibrator, calibrator_from_dict, make_calibrator
from labelloop.calibration import select_calibrator as select_binary_calibrator
from labelloop.multilabel._validation import as_indicator, as_label_proba, same_shape

#: Methods that map one binary probability; "auto" picks among them by cross-validated log loss.
BINARY_METHODS = ("none", "platt", "isotonic", "histogram")
FORMAT_VERSION = 1


def _inputs(proba: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    p, t = as_label_proba(proba), as_indicator(y, "y")
    same_shape(p, t, ("proba", "y"))
    if p.shape[0] == 0:
        raise ValueError("cannot fit a calibrator on zero items")
    return p, t


class PerLabelCalibrator:
    """Fits one binary calibrator per label column; scikit-learn style fit / transform.

    Parameters
    ----------
    method : "auto" (per label, the method with the lowest cross-validated log loss, with the
        safe fallbacks of `calibration.select_calibrator` for small or one-sided gold) or one of
        "none", "platt", "isotonic", "histogram" for every label.
    n_splits, random_state : the folds "auto" compares methods on.
    """

    def __init__(self, method: str = "auto", n_splits: int = 5, random_state: int = 0) -> None:
        if method != "auto" and method not in BINARY_METHODS:
            raise ValueError(
                f"per-label calibration takes 'auto' or one of {BINARY_METHODS}, not {method!r}"
                " (temperature scaling of a binary probability is 'platt' without intercept)"
            )
        self.method = method
        self.n_splits = n_splits
        self.random_state = random_state

    def fit(self, proba: ArrayLike, y: ArrayLike) -> PerLabelCalibrator:
        """`proba` (n, L) reported probabilities and `y` (n, L) whether each label applies."""
        p, t = _inputs(proba, y)
        self.calibrators_: list[Calibrator] = []
        self.notes_: list[str | None] = []
        for j in range(p.shape[1]):
            if self.method == "auto":
                chosen = select_binary_calibrator(
                    p[:, j], t[:, j], "auto", self.n_splits, self.random_state
                )
                self.calibrators_.append(chosen.calibrator)
                self.notes_.append(chosen.fallback)
            else:
                self.calibrators_.append(make_calibrator(self.method).fit(p[:, j], t[:, j]))
                self.notes_.append(None)
        self.n_labels_ = p.shape[1]
        return self

    @property
    def methods_(self) -> list[str]:
        """The method each label's calibrator uses."""
        return [c.method for c in self.calibrators_]

    def transform(self, proba: ArrayLike) -> NDArray[np.float64]:
        """Calibrated (n, L) probabilities that each label applies."""
        p = as_label_proba(proba)
        if p.shape[1] != self.n_labels_:
            raise ValueError(f"fitted on {self.n_labels_} labels, got {p.shape[1]}")
        out = np.empty_like(p)
        for j, calibrator in enumerate(self.calibrators_):
            out[:, j] = calibrator.transform(p[:, j])
        return np.clip(out, 0.0, 1.0)

    def fit_transform(self, proba: ArrayLike, y: ArrayLike) -> NDArray[np.float64]:
        return self.fit(proba, y).transform(proba)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; `from_dict` rebuilds the fitted calibrator (store it per model/prompt)."""
        return {
            "kind": "per_label",
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "calibrators": [c.to_dict() for c in self.calibrators_],
            "notes": list(self.notes_),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerLabelCalibrator:
        if not isinstance(data, dict) or data.get("kind") != "per_label":
            raise ValueError("not a stored per-label calibrator")
        if int(data.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
            raise ValueError("stored per-label calibrator is newer than this labelloop")
        obj = cls(method=data.get("method", "auto"))
        obj.calibrators_ = [calibrator_from_dict(c) for c in data["calibrators"]]
        obj.notes_ = list(data.get("notes", [None] * len(obj.calibrators_)))
        obj.n_labels_ = len(obj.calibrators_)
        return obj


def item_folds(
    n: int, n_splits: int = 5, random_state: int = 0
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Shuffled (train, test) item folds shared by every label, so item-level metrics of
    cross-fitted probabilities (subset accuracy, routing) stay honest."""
    if n < 2:
        raise ValueError("cross-fitting needs at least 2 items")
    splitter = KFold(n_splits=min(n_splits, n), shuffle=True, random_state=random_state)
    return list(splitter.split(np.zeros(n)))


def cross_fit_per_label(
    proba: ArrayLike,
    y: ArrayLike,
    method: str = "auto",
    n_splits: int = 5,
    random_state: int = 0,
) -> NDArray[np.float64]:
    """Out-of-fold calibrated (n, L) probabilities: each item is calibrated by calibrators fitted
    without it. Calibration error and thresholds must be measured on these, never in-sample."""
    p, t = _inputs(proba, y)
    out = np.empty_like(p)
    for train, test in item_folds(p.shape[0], n_splits, random_state):
        fitted = PerLabelCalibrator(method, n_splits, random_state).fit(p[train], t[train])
        out[test] = fitted.transform(p[test])
    return out
