"""Cross-fitted calibration: choose a method and measure it on items it was not fitted on.

Methods are compared by the binary log loss of the calibrated confidence against the correctness
of the label it vouches for, on held-out folds: that confidence is what routing thresholds, so it
is what must be right. Folds are stratified on correctness and shuffled with `random_state`, so
results are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.model_selection import KFold, StratifiedKFold

from ._validation import as_correct, as_label_index, split_scores
from .calibrators import Calibrator, make_calibrator
from .metrics import calibration_summary, log_loss

#: Below this many gold items `auto` does not cross-validate: it takes the one- or two-parameter
#: method (temperature with probabilities, else Platt) that cannot overfit badly.
MIN_GOLD_FOR_SELECTION = 20
SCALAR_METHODS = ("platt", "isotonic", "histogram")
#: Methods with many free values that a handful of items cannot support.
_FLEXIBLE = ("isotonic", "histogram")


@dataclass
class Selection:
    """The outcome of choosing a calibration method."""

    method: str
    calibrator: Calibrator
    cv_log_loss: dict[str, float] = field(default_factory=dict)
    fallback: str | None = None


def correctness(scores: ArrayLike, target: ArrayLike) -> NDArray[np.float64]:
    """0/1 correctness from either input form (see `calibrators`)."""
    conf, proba = split_scores(scores)
    if proba is None:
        return as_correct(target, conf.size)
    y = as_label_index(target, proba.shape[0], proba.shape[1])
    return (proba.argmax(axis=1) == y).astype(np.float64)


def calibrated_correctness(
    calibrator: Calibrator, scores: ArrayLike, target: ArrayLike
) -> NDArray[np.float64]:
    """0/1 correctness of the label the calibrator vouches for (`Calibrator.predict`): the
    labeler's, unless the calibrator moves it (see `Calibrator.relabels`)."""
    _, proba = split_scores(scores)
    if proba is None:
        return correctness(scores, target)
    y = as_label_index(target, proba.shape[0], proba.shape[1])
    return (calibrator.predict(proba) == y).astype(np.float64)


def folds(
    correct: NDArray[np.float64], n_splits: int = 5, random_state: int = 0
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Deterministic (train, test) index pairs; stratified on correctness when both classes have
    at least two items, plain shuffled K-fold otherwise. Empty when there are under two items."""
    n = correct.size
    if n < 2:
        return []
    minority = int(min(correct.sum(), n - correct.sum()))
    if minority >= 2:
        k = min(n_splits, minority)
        splitter: Any = StratifiedKFold(n_splits=k, shuffle=True, random_state=random_state)
        return list(splitter.split(np.zeros(n), correct))
    splitter = KFold(n_splits=min(n_splits, n), shuffle=True, random_state=random_state)
    return list(splitter.split(np.zeros(n)))


def candidate_methods(has_proba: bool) -> tuple[str, ...]:
    """Methods that apply to the input: temperature and vector only with per-label probabilities.
    Leaving the confidences as reported ("none") competes too: a labeler that is calibrated
    already is only made worse by a map fitted on a few hundred items."""
    methods = ("temperature", "vector", *SCALAR_METHODS) if has_proba else SCALAR_METHODS
    return ("none", *methods)


def _fallback(
    method: str,
    scores: ArrayLike,
    correct: NDArray[np.float64],
    min_gold: int = MIN_GOLD_FOR_SELECTION,
) -> tuple[str, str | None]:
    """The method actually used, and why it differs from the one asked for."""
    _, proba = split_scores(scores)
    n = correct.size
    if n == 0:
        return "none", "no gold items: confidences are left uncalibrated"
    if method in ("temperature", "vector") and proba is None:
        raise ValueError(
            f"{method} scaling needs per-label probabilities; only scalar confidences exist"
        )
    if correct.min() == correct.max():
        state = "right" if correct[0] else "wrong"
        return "platt", (
            f"all {n} gold predictions are {state}: Platt scaling with smoothed targets gives the "
            "cautious constant (k+1)/(n+2)"
        )
    safe = "temperature" if proba is not None else "platt"
    if n < min_gold and (method == "auto" or method in _FLEXIBLE):
        return safe, (
            f"only {n} gold items (< {min_gold}): using {safe} scaling, which has "
            "one or two parameters, instead of "
            + ("cross-validated selection" if method == "auto" else method)
        )
    return method, None


def cross_val_log_loss(
    scores: ArrayLike, target: ArrayLike, method: str, n_splits: int = 5, random_state: int = 0
) -> float:
    """Held-out binary log loss of `method`'s calibrated confidence in the label it vouches for."""
    oof = cross_fit(scores, target, method, n_splits, random_state)
    return log_loss(oof["confidence"], oof["correct"])


def select_calibrator(
    scores: ArrayLike,
    target: ArrayLike,
    method: str = "auto",
    n_splits: int = 5,
    random_state: int = 0,
) -> Selection:
    """Fit the requested method (or, for `auto`, the one with the lowest cross-validated log loss)
    on all items, falling back to a safe method on degenerate inputs and saying why. With no
    items there is nothing to fit: the calibrator ("none") comes back unfitted."""
    correct = correctness(scores, target)
    _, proba = split_scores(scores)
    used, reason = _fallback(method, scores, correct)
    cv: dict[str, float] = {}
    if correct.size >= MIN_GOLD_FOR_SELECTION and correct.min() != correct.max():
        names = candidate_methods(proba is not None)
        cv = {m: cross_val_log_loss(scores, target, m, n_splits, random_state) for m in names}
        if used == "auto":
            used = min(cv, key=cv.__getitem__)
    calibrator = make_calibrator(used)
    if correct.size:
        calibrator.fit(scores, target)
    return Selection(used, calibrator, cv, reason)


def _take(scores: ArrayLike, idx: NDArray[np.intp]) -> NDArray[np.float64]:
    return np.asarray(scores, dtype=np.float64)[idx]


def cross_fit(
    scores: ArrayLike, target: ArrayLike, method: str, n_splits: int = 5, random_state: int = 0
) -> dict[str, Any]:
    """Out-of-fold calibrated confidences (and probability matrix, for matrix input): each item is
    calibrated by a calibrator fitted without it. `auto` is selected anew inside every fold.

    Returns `confidence`, `correct` (of the label each item's calibrator vouches for), `proba`
    (or None) and `methods` (the method each fold used)."""
    _, proba = split_scores(scores)
    tgt = np.asarray(target)
    correct = correctness(scores, target)
    oof_correct = correct.copy()
    oof_conf = np.full(correct.size, np.nan)
    oof_proba = None if proba is None else np.full(proba.shape, np.nan)
    methods: list[str] = []
    for train, test in folds(correct, n_splits, random_state):
        if method == "auto":
            fitted = select_calibrator(
                _take(scores, train), tgt[train], "auto", n_splits, random_state
            ).calibrator
        else:
            # Inside folds only degenerate inputs change the method, so that cross-validated
            # scores compare the methods themselves.
            used, _ = _fallback(method, _take(scores, train), correct[train], min_gold=0)
            fitted = make_calibrator(used).fit(_take(scores, train), tgt[train])
        methods.append(fitted.method)
        oof_conf[test] = fitted.transform(_take(scores, test))
        oof_correct[test] = calibrated_correctness(fitted, _take(scores, test), tgt[test])
        if oof_proba is not None:
            oof_proba[test] = fitted.predict_proba(_take(scores, test))
    return {"confidence": oof_conf, "correct": oof_correct, "proba": oof_proba, "methods": methods}


def evaluate_calibration(
    scores: ArrayLike,
    target: ArrayLike,
    method: str = "auto",
    n_splits: int = 5,
    random_state: int = 0,
    n_bins: int = 15,
) -> dict[str, Any]:
    """Metrics before calibration and after it, the latter on out-of-fold calibrated values only.

    Returns `before`, `after` (dicts of `metrics.calibration_summary`), `oof_confidence` (array)
    and `fold_methods`."""
    conf, proba = split_scores(scores)
    correct = correctness(scores, target)
    y = None if proba is None else np.asarray(target)
    before = calibration_summary(conf, correct, proba, y, n_bins)
    fit = cross_fit(scores, target, method, n_splits, random_state)
    done = ~np.isnan(fit["confidence"])
    after_proba = None if fit["proba"] is None else fit["proba"][done]
    after = calibration_summary(
        fit["confidence"][done],
        fit["correct"][done],
        after_proba,
        None if y is None else y[done],
        n_bins,
    )
    return {
        "before": before,
        "after": after,
        "oof_confidence": fit["confidence"],
        "fold_methods": fit["methods"],
    }
