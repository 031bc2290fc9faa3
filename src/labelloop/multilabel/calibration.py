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
from scipy.special import expit
from sklearn.model_selection import KFold

from labelloop.calibration import Calibrator, calibrator_from_dict, make_calibrator
from labelloop.calibration import select_calibrator as select_binary_calibrator
from labelloop.multilabel._validation import as_indicator, as_label_proba, same_shape
from labelloop.multilabel.metrics import per_label_log_loss

#: Methods that map one binary probability; "auto" picks among them by cross-validated log loss.
BINARY_METHODS = ("none", "platt", "isotonic", "histogram")
FORMAT_VERSION = 1
EPS = 1e-6
#: Penalties (in items' worth of evidence) on each label's departure from the shared slope and
#: intercept that `SharedPlattCalibrator` chooses among; inf: every label uses the shared map.
PENALTIES = (0.0, 1.0, 4.0, 16.0, 64.0, float("inf"))
#: A small ridge on every parameter, so that a label without positives keeps finite offsets.
RIDGE = 1e-2


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


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    q = np.clip(p, EPS, 1.0 - EPS)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=np.float64)


def _mean_log_loss(q: NDArray[np.float64], t: NDArray[np.bool_]) -> float:
    """Binary log loss over every (item, label) cell."""
    return float(per_label_log_loss(q, t, EPS).mean())


def _fit_shared_platt(
    z: NDArray[np.float64], t: NDArray[np.bool_], slope_penalty: float, offset_penalty: float
) -> tuple[float, float, NDArray[np.float64], NDArray[np.float64]]:
    """Shared slope `a`, intercept `b` and per-label departures `u`, `v` minimising the summed
    log loss of expit((a + u_l) z + b + v_l) plus the penalties on `u` and `v` (inf: fixed 0).

    Newton's method with step halving: the parameters number 2 + 2L and the Hessian has an
    arrow shape built from three sums per label, so each step costs a few passes over `z`."""
    n_labels = z.shape[1]
    y = t.astype(np.float64)
    keep = np.concatenate(
        [
            [True, True],
            np.full(n_labels, bool(np.isfinite(slope_penalty))),
            np.full(n_labels, bool(np.isfinite(offset_penalty))),
        ]
    )
    ridge = np.concatenate(
        [
            [RIDGE, RIDGE],
            np.full(n_labels, (slope_penalty if np.isfinite(slope_penalty) else 0.0) + RIDGE),
            np.full(n_labels, (offset_penalty if np.isfinite(offset_penalty) else 0.0) + RIDGE),
        ]
    )
    theta: NDArray[np.float64] = np.zeros(2 + 2 * n_labels)
    theta[0] = 1.0

    def scores(th: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray((th[0] + th[2 : 2 + n_labels]) * z + th[1] + th[2 + n_labels :])

    def objective(th: NDArray[np.float64]) -> float:
        s = scores(th)
        return float((np.logaddexp(0.0, s) - y * s).sum() + 0.5 * (ridge * th * th).sum())

    current = objective(theta)
    for _ in range(100):
        s = scores(theta)
        q = expit(s)
        r, w = q - y, q * (1.0 - q)
        by_slope, by_offset = (r * z).sum(axis=0), r.sum(axis=0)
        grad = np.concatenate([[by_slope.sum(), by_offset.sum()], by_slope, by_offset])
        grad += ridge * theta
        szz, sz, s1 = (w * z * z).sum(axis=0), (w * z).sum(axis=0), w.sum(axis=0)
        hess = np.zeros((2 + 2 * n_labels, 2 + 2 * n_labels))
        hess[:2, :2] = [[szz.sum(), sz.sum()], [sz.sum(), s1.sum()]]
        u_idx, v_idx = np.arange(2, 2 + n_labels), np.arange(2 + n_labels, 2 + 2 * n_labels)
        for rows, values in ((0, (szz, sz)), (1, (sz, s1))):
            hess[rows, u_idx], hess[rows, v_idx] = values
            hess[u_idx, rows], hess[v_idx, rows] = values
        hess[u_idx, u_idx], hess[v_idx, v_idx] = szz, s1
        hess[u_idx, v_idx] = hess[v_idx, u_idx] = sz
        hess += np.diag(ridge)
        step = np.zeros_like(theta)
        step[keep] = np.linalg.solve(hess[np.ix_(keep, keep)], grad[keep])
        size = 1.0
        while size > 1e-6:
            trial = theta - size * step
            value = objective(trial)
            if value <= current:
                break
            size /= 2.0
        else:
            break
        theta, previous, current = trial, current, value
        if previous - current < 1e-10 * max(1.0, abs(current)):
            break
    return (
        float(theta[0]),
        float(theta[1]),
        np.array(theta[2 : 2 + n_labels]),
        np.array(theta[2 + n_labels :]),
    )


class SharedPlattCalibrator:
    """Per-label Platt scaling that shares strength across labels: one fit for all labels plus
    per-label departures shrunk toward it.

    Each label's calibrated probability is expit((a + u_l) * logit(p) + b + v_l): a shared
    slope `a` and intercept `b` fitted on every (item, label) pair, and each label's departures
    `u_l`, `v_l` under quadratic penalties. With 200 gold items a label with a handful of
    positives cannot support its own Platt fit (one positive more or less moves its intercept
    by a lot), while a shared map is wrong for a label the labeler treats differently; the
    penalties, chosen from `PENALTIES` for the slope and the intercept separately by
    cross-validated log loss on the gold (item folds shared by every label), go from every
    label on its own (0) to the shared map only (inf). Leaving the probabilities as reported
    ("none") competes too and wins when no map beats them out of fold.

    Parameters
    ----------
    penalties : the candidate penalties, in items' worth of evidence.
    n_splits, random_state : the item folds the candidates are compared on.
    """

    kind = "shared_platt"

    def __init__(
        self,
        penalties: tuple[float, ...] = PENALTIES,
        n_splits: int = 5,
        random_state: int = 0,
    ) -> None:
        if not penalties or any(not (x >= 0.0) for x in penalties):
            raise ValueError("penalties must be a non-empty sequence of numbers >= 0 (or inf)")
        self.penalties = tuple(float(x) for x in penalties)
        self.n_splits = n_splits
        self.random_state = random_state

    def fit(self, proba: ArrayLike, y: ArrayLike) -> SharedPlattCalibrator:
        """`proba` (n, L) reported probabilities and `y` (n, L) whether each label applies."""
        p, t = _inputs(proba, y)
        z = _logit(p)
        candidates = [(s, o) for s in self.penalties for o in self.penalties]
        self.cv_log_loss_: dict[str, float] = {}
        if p.shape[0] >= 2 * self.n_splits:
            folds = item_folds(p.shape[0], self.n_splits, self.random_state)
            self.cv_log_loss_["none"] = _mean_log_loss(p, t)
            for slope, offset in candidates:
                oof = np.empty_like(p)
                for train, test in folds:
                    a, b, u, v = _fit_shared_platt(z[train], t[train], slope, offset)
                    oof[test] = expit((a + u) * z[test] + b + v)
                self.cv_log_loss_[f"{slope:g}/{offset:g}"] = _mean_log_loss(oof, t)
            best = min(self.cv_log_loss_, key=self.cv_log_loss_.__getitem__)
        else:  # too few items to compare: the shared map with the strongest pull
            best = f"{max(self.penalties):g}/{max(self.penalties):g}"
        self.choice_ = best
        self.n_labels_ = p.shape[1]
        self.slope_: NDArray[np.float64] = np.ones(self.n_labels_)
        self.offset_: NDArray[np.float64] = np.zeros(self.n_labels_)
        if best != "none":
            slope, offset = (float(x) for x in best.split("/"))
            a, b, u, v = _fit_shared_platt(z, t, slope, offset)
            self.slope_, self.offset_ = a + u, b + v
        return self

    @property
    def methods_(self) -> list[str]:
        """The method each label's map is, for reports."""
        name = "none" if self.choice_ == "none" else f"shared platt ({self.choice_})"
        return [name] * self.n_labels_

    def predict_proba(self, proba: ArrayLike) -> NDArray[np.float64]:
        """Calibrated (n, L) probabilities that each label applies."""
        p = as_label_proba(proba)
        if p.shape[1] != self.n_labels_:
            raise ValueError(f"fitted on {self.n_labels_} labels, got {p.shape[1]}")
        if self.choice_ == "none":
            return p.copy()
        return np.asarray(expit(self.slope_ * _logit(p) + self.offset_), dtype=np.float64)

    transform = predict_proba

    def fit_transform(self, proba: ArrayLike, y: ArrayLike) -> NDArray[np.float64]:
        return self.fit(proba, y).transform(proba)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; `label_calibrator_from_dict` rebuilds it."""
        return {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "choice": self.choice_,
            "slope": self.slope_.tolist(),
            "offset": self.offset_.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SharedPlattCalibrator:
        if not isinstance(data, dict) or data.get("kind") != cls.kind:
            raise ValueError("not a stored shared Platt calibrator")
        if int(data.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
            raise ValueError("stored shared Platt calibrator is newer than this labelloop")
        obj = cls()
        obj.choice_ = str(data["choice"])
        obj.slope_ = np.asarray(data["slope"], dtype=np.float64)
        obj.offset_ = np.asarray(data["offset"], dtype=np.float64)
        if obj.slope_.shape != obj.offset_.shape or obj.slope_.ndim != 1:
            raise ValueError("stored shared Platt calibrator has mismatched slopes and offsets")
        obj.cv_log_loss_ = {}
        obj.n_labels_ = len(obj.slope_)
        return obj


LabelCalibrator = PerLabelCalibrator | SharedPlattCalibrator
#: The kinds of stored per-label calibration, as `to_dict` writes them.
LABEL_CALIBRATOR_KINDS = ("per_label", SharedPlattCalibrator.kind)


def label_calibrator_from_dict(data: dict[str, Any]) -> LabelCalibrator:
    """The per-label calibrator a `to_dict` of either kind stored."""
    if isinstance(data, dict) and data.get("kind") == SharedPlattCalibrator.kind:
        return SharedPlattCalibrator.from_dict(data)
    return PerLabelCalibrator.from_dict(data)


def make_label_calibrator(
    method: str = "auto", n_splits: int = 5, random_state: int = 0
) -> LabelCalibrator:
    """`SharedPlattCalibrator` for "auto" or "shared"; a binary method: that method per label."""
    if method in ("auto", "shared"):
        return SharedPlattCalibrator(n_splits=n_splits, random_state=random_state)
    return PerLabelCalibrator(method, n_splits, random_state)


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
    without it (`make_label_calibrator(method)`). Calibration error and thresholds must be
    measured on these, never in-sample."""
    p, t = _inputs(proba, y)
    out = np.empty_like(p)
    for train, test in item_folds(p.shape[0], n_splits, random_state):
        fitted = make_label_calibrator(method, n_splits, random_state).fit(p[train], t[train])
        out[test] = fitted.transform(p[test])
    return out
