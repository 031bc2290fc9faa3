"""Calibrators: map a model's reported confidence to the accuracy it actually reaches.

Every calibrator is a scikit-learn estimator: its constructor takes hyper-parameters only
(stored unchanged, so `clone`, `get_params` and `set_params` work), `fit` learns the
trailing-underscore attributes and returns the calibrator, and using it before `fit` raises
`NotFittedError` instead of quietly passing confidences through. The contract:

- `fit(scores, target)`: `scores` is either a 1-D vector of top confidences with `target` the
  0/1 correctness of each prediction, or a 2-D (items x labels) probability matrix with `target`
  the column index of each true label (-1 when the true label is outside the label set). With a
  matrix the labeler's predicted label is its argmax.
- `predict(scores)`: for a matrix, the label the calibrated distribution puts first. That is the
  labeler's own label except for calibrators that model every label (`relabels`): vector
  scaling's per-label biases undo a labeler's habit of favouring one label, and where they do,
  the label moves with them.
- `transform(scores)`: the calibrated confidence of the label `predict` gives (1-D).
- `predict_proba(scores)`: for a matrix, the calibrated matrix; for a vector, the sklearn-style
  (n, 2) matrix of [P(wrong), P(right)].
- `to_dict()` / `calibrator_from_dict()`: a plain JSON-able dict, so a fitted calibrator can be
  stored per (model, prompt version) and applied when routing.

Two families share that contract. A `ScalarCalibrator` (Platt, isotonic, histogram) maps the top
label's confidence alone, so it works without per-label probabilities. A `MatrixCalibrator`
(temperature, vector scaling) maps the whole log-probability vector and needs the matrix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax, logit
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import check_is_fitted

from ._validation import EPS, as_confidences, as_correct, as_label_index, as_proba

#: The stored form: {"method", "format_version", "n_fit", "params"}, where `params` holds the
#: hyper-parameters and the learned values (each without its trailing underscore). It has not
#: changed since the first release, so every stored project still routes; a record written
#: before a hyper-parameter existed reads with that hyper-parameter's default.
FORMAT_VERSION = 1


def _clipped_logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    return logit(np.clip(p, 1e-6, 1.0 - 1e-6))


def _to_json(value: Any) -> float | list[float]:
    return [float(v) for v in value] if isinstance(value, np.ndarray) else float(value)


def _from_json(value: Any) -> float | NDArray[np.float64]:
    return np.asarray(value, dtype=np.float64) if isinstance(value, list) else float(value)


class Calibrator(BaseEstimator, ABC):
    """Base class: the contract both families keep, and the stored form.

    Subclasses list what `fit` learns in `fitted_attributes`; `to_dict` and `from_dict` store
    and restore exactly those, so the stored form needs no code per method.
    """

    method: ClassVar[str]
    needs_proba: ClassVar[bool] = False
    #: Whether `predict` may differ from the labeler's argmax. A scalar map speaks only about the
    #: top label's chance of being right, so it never moves the label.
    relabels: ClassVar[bool] = False
    #: Learned attributes (trailing underscore), stored under their names without it.
    fitted_attributes: ClassVar[tuple[str, ...]] = ()

    #: How many gold items the calibrator was fitted on (set by `fit`).
    n_fit_: int

    @abstractmethod
    def fit(self, scores: ArrayLike, target: ArrayLike) -> Self:
        """Fit on gold items; see the module docstring for the two input forms."""

    @abstractmethod
    def transform(self, scores: ArrayLike) -> NDArray[np.float64]:
        """Calibrated confidence of each predicted label."""

    @abstractmethod
    def predict_proba(self, scores: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities (see the module docstring)."""

    @abstractmethod
    def predict(self, scores: ArrayLike) -> NDArray[np.intp]:
        """Predicted label index for a matrix; predicted correctness (0/1) for a vector."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description that `calibrator_from_dict` turns back into this calibrator."""
        check_is_fitted(self)
        learned = {
            name.removesuffix("_"): _to_json(getattr(self, name)) for name in self.fitted_attributes
        }
        return {
            "method": self.method,
            "format_version": FORMAT_VERSION,
            "n_fit": self.n_fit_,
            "params": {**self.get_params(), **learned},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The fitted calibrator a `to_dict` output describes."""
        if data.get("method") != cls.method:
            raise ValueError(f"expected method {cls.method!r}, got {data.get('method')!r}")
        stored = dict(data["params"])
        obj = cls()
        # Records written before a hyper-parameter existed keep its default.
        obj.set_params(**{name: stored[name] for name in obj.get_params() if name in stored})
        for name in cls.fitted_attributes:
            key = name.removesuffix("_")
            if key not in stored:
                raise ValueError(f"stored {cls.method} calibrator lacks its {key!r} value")
            setattr(obj, name, _from_json(stored[key]))
        obj.n_fit_ = int(data.get("n_fit", 0))
        return obj


class ScalarCalibrator(Calibrator):
    """A map from the top label's reported confidence to its calibrated confidence.

    It needs only a scalar confidence; given a matrix it reads the top probability and, in
    `predict_proba`, rescales the row around it. Subclasses supply `_fit_map` and `_map`.
    """

    @abstractmethod
    def _fit_map(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None:
        """Learn the map from confidences and the 0/1 correctness of their predictions."""

    @abstractmethod
    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]:
        """The fitted map applied to validated confidences."""

    def fit(self, scores: ArrayLike, target: ArrayLike) -> Self:
        conf, correct = _confidence_and_correctness(scores, target)
        if conf.size == 0:
            raise ValueError("cannot fit a calibrator on zero items")
        self._fit_map(conf, correct)
        self.n_fit_ = int(conf.size)
        return self

    def transform(self, scores: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self)
        arr = np.asarray(scores, dtype=np.float64)
        conf = as_proba(arr).max(axis=1) if arr.ndim == 2 else as_confidences(arr)
        return np.clip(self._map(conf), 0.0, 1.0)

    def predict_proba(self, scores: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities: a matrix stays a matrix (top label rescaled to its calibrated
        confidence, the others sharing the rest in their old proportions, so a low calibrated
        confidence can leave another column larger); a vector gives [P(wrong), P(right)]."""
        arr = np.asarray(scores, dtype=np.float64)
        if arr.ndim != 2:
            p = self.transform(arr)
            return np.column_stack([1.0 - p, p])
        proba = as_proba(arr)
        rows = np.arange(proba.shape[0])
        top = proba.argmax(axis=1)
        old_top = proba[rows, top]
        new_top = self.transform(proba)
        rest = 1.0 - old_top
        scale = np.divide(1.0 - new_top, rest, out=np.zeros_like(rest), where=rest > EPS)
        out = proba * scale[:, None]
        # A one-hot row has nothing to share the remainder with: spread it evenly.
        flat = rest <= EPS
        if proba.shape[1] > 1 and np.any(flat):
            out[flat] = ((1.0 - new_top[flat]) / (proba.shape[1] - 1))[:, None]
        out[rows, top] = new_top
        return out

    def predict(self, scores: ArrayLike) -> NDArray[np.intp]:
        """The labeler's label for a matrix; predicted correctness (0/1) for a vector."""
        check_is_fitted(self)
        arr = np.asarray(scores, dtype=np.float64)
        if arr.ndim == 2:
            return as_proba(arr).argmax(axis=1)
        return (self.transform(arr) >= 0.5).astype(np.intp)


class MatrixCalibrator(Calibrator):
    """A map from per-label log-probabilities to calibrated logits, fitted by the NLL of the
    true label; it needs the (items x labels) matrix. Subclasses supply `_fit_logits` and
    `_logits`."""

    needs_proba = True

    @abstractmethod
    def _fit_logits(
        self, log_proba: NDArray[np.float64], columns: NDArray[np.intp], n_labels: int
    ) -> None:
        """Learn from the gold rows' log-probabilities and their true labels' columns (possibly
        none, when no true label is in the label set)."""

    @abstractmethod
    def _logits(self, log_proba: NDArray[np.float64]) -> NDArray[np.float64]:
        """Calibrated logits (before softmax) of these log-probabilities."""

    def fit(self, scores: ArrayLike, target: ArrayLike) -> Self:
        proba, log_proba, columns = _gold_log_proba(scores, target, self.method)
        self._fit_logits(log_proba, columns, proba.shape[1])
        self.n_fit_ = int(proba.shape[0])
        return self

    def predict_proba(self, scores: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self)
        _, log_proba = _log_proba(scores, self.method)
        return np.exp(log_softmax(self._logits(log_proba), axis=1))

    def transform(self, scores: ArrayLike) -> NDArray[np.float64]:
        return self.predict_proba(scores).max(axis=1)

    def predict(self, scores: ArrayLike) -> NDArray[np.intp]:
        """The calibrated argmax when this calibrator `relabels`, the labeler's otherwise."""
        if self.relabels:
            return self.predict_proba(scores).argmax(axis=1)
        check_is_fitted(self)
        proba, _ = _log_proba(scores, self.method)
        return proba.argmax(axis=1)


def _confidence_and_correctness(
    scores: ArrayLike, target: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 2:
        proba = as_proba(arr)
        y = as_label_index(target, proba.shape[0], proba.shape[1])
        return proba.max(axis=1), (proba.argmax(axis=1) == y).astype(np.float64)
    conf = as_confidences(arr)
    return conf, as_correct(target, conf.size)


def _log_proba(scores: ArrayLike, method: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The probability matrix that temperature and vector scaling need, and its logarithm."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(
            f"{method} scaling needs a per-label probability matrix; with only a scalar "
            "confidence use 'platt', 'isotonic' or 'histogram'"
        )
    proba = as_proba(arr)
    return proba, np.log(np.clip(proba, EPS, 1.0))


def _gold_log_proba(
    scores: ArrayLike, target: ArrayLike, method: str
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp]]:
    """The probability matrix, the log-probabilities of the gold items whose true label is in
    the label set, and those labels' column indices."""
    proba, logp = _log_proba(scores, method)
    y = as_label_index(target, proba.shape[0], proba.shape[1])
    if proba.shape[0] == 0:
        raise ValueError("cannot fit a calibrator on zero items")
    known = y >= 0
    return proba, logp[known], y[known]


class IdentityCalibrator(ScalarCalibrator):
    """No calibration: the reported confidence is kept (the 'before' of every comparison)."""

    method = "none"

    def _fit_map(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None:
        return None

    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]:
        return conf


class TemperatureScaling(MatrixCalibrator):
    """Divide log-probabilities by one temperature T fitted by the NLL of the true label.

    One parameter cannot overfit a small gold set, and it never changes which label wins.
    `T > 1` softens an over-confident model. T is searched in [0.05, 20]; with no gold item whose
    true label is in the label set, T stays 1.

    Attributes: `temperature_` (T), `n_fit_`.
    """

    method = "temperature"
    fitted_attributes = ("temperature_",)
    T_BOUNDS = (0.05, 20.0)

    temperature_: float

    def _fit_logits(
        self, log_proba: NDArray[np.float64], columns: NDArray[np.intp], n_labels: int
    ) -> None:
        if columns.size == 0:
            self.temperature_ = 1.0
            return

        def nll(log_t: float) -> float:
            logq = log_softmax(log_proba / np.exp(log_t), axis=1)
            return float(-logq[np.arange(columns.size), columns].mean())

        lo, hi = np.log(self.T_BOUNDS[0]), np.log(self.T_BOUNDS[1])
        res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
        self.temperature_ = float(np.exp(res.x))

    def _logits(self, log_proba: NDArray[np.float64]) -> NDArray[np.float64]:
        return log_proba / self.temperature_


class VectorScaling(MatrixCalibrator):
    """Temperature scaling plus one bias per label: softmax(log p / T + b), fitted by NLL.

    A labeler that favours one label (a prompt's or a small model's habit) is over-confident on
    that label and under-confident on the others; one temperature cannot fix both, a bias per
    label can. Where the biases put another label first, that label is the prediction: a
    labeler that says "positive" for three reviews in four of a balanced corpus is wrong on
    most of its weak "positive" answers, and the calibrated distribution knows which.

    Parameters: `penalty`, the L2 penalty on the biases, so a label rare in the gold set keeps a
    finite bias. Attributes: `temperature_`, `bias_` (one per label), `n_fit_`.
    """

    method = "vector"
    relabels = True
    fitted_attributes = ("temperature_", "bias_")

    temperature_: float
    bias_: NDArray[np.float64]

    def __init__(self, penalty: float = 1e-3) -> None:
        self.penalty = penalty

    def _fit_logits(
        self, log_proba: NDArray[np.float64], columns: NDArray[np.intp], n_labels: int
    ) -> None:
        if self.penalty < 0:
            raise ValueError(f"penalty must be non-negative, got {self.penalty}")
        if columns.size == 0:
            self.temperature_, self.bias_ = 1.0, np.zeros(n_labels)
            return
        onehot = np.eye(n_labels)[columns]

        def nll(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
            inv_t, bias = np.exp(-theta[0]), theta[1:]
            logq = log_softmax(log_proba * inv_t + bias, axis=1)
            residual = (np.exp(logq) - onehot) / columns.size
            loss = -float((logq * onehot).sum() / columns.size) + float(self.penalty * bias @ bias)
            grad_t = -inv_t * float((residual * log_proba).sum())
            return loss, np.r_[grad_t, residual.sum(axis=0) + 2 * self.penalty * bias]

        bounds = [(np.log(TemperatureScaling.T_BOUNDS[0]), np.log(TemperatureScaling.T_BOUNDS[1]))]
        res = minimize(
            nll,
            np.zeros(n_labels + 1),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds + [(None, None)] * n_labels,
        )
        self.temperature_, self.bias_ = float(np.exp(res.x[0])), res.x[1:]

    def _logits(self, log_proba: NDArray[np.float64]) -> NDArray[np.float64]:
        if log_proba.shape[1] != self.bias_.size:
            raise ValueError(
                f"this calibrator was fitted on {self.bias_.size} labels, got {log_proba.shape[1]}"
            )
        return log_proba / self.temperature_ + self.bias_


class PlattScaling(ScalarCalibrator):
    """Logistic regression of correctness on logit(confidence): p = sigmoid(a * logit(c) + b).

    Uses Platt's smoothed targets ((N+ + 1)/(N+ + 2) and 1/(N- + 2)) so that a gold set where
    every prediction is right still gives a finite, honest confidence instead of 1.0.

    Attributes: `a_` (slope), `b_` (intercept), `n_fit_`.
    """

    method = "platt"
    fitted_attributes = ("a_", "b_")

    a_: float
    b_: float

    def _fit_map(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None:
        x = _clipped_logit(conf)
        n_pos = correct.sum()
        n_neg = correct.size - n_pos
        t = np.where(correct == 1.0, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

        def loss_grad(w: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
            z = w[0] * x + w[1]
            # log(1 + e^z) - t z, stable for large |z|.
            loss = float(np.mean(np.logaddexp(0.0, z) - t * z))
            r = expit(z) - t
            return loss, np.array([np.mean(r * x), np.mean(r)])

        b0 = float(logit((n_pos + 1.0) / (correct.size + 2.0)))
        res = minimize(loss_grad, np.array([0.0, b0]), jac=True, method="L-BFGS-B")
        self.a_, self.b_ = float(res.x[0]), float(res.x[1])

    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]:
        return expit(self.a_ * _clipped_logit(conf) + self.b_)


class IsotonicCalibrator(ScalarCalibrator):
    """Isotonic regression of correctness on confidence, made strictly increasing.

    Plain isotonic regression returns flat steps, so items with different confidences tie and
    thresholds lose resolution. Here each step is replaced by one knot at its mean confidence and
    the knots are joined linearly (centred isotonic regression), which is strictly increasing
    between the outer knots. Inputs outside the fitted range are clipped to the end values, and
    outputs are kept within [1/(n+2), (n+1)/(n+2)] so a small gold set never claims certainty.

    Attributes: `x_` and `y_` (the knots' confidences and calibrated values), `n_fit_`.
    """

    method = "isotonic"
    fitted_attributes = ("x_", "y_")

    x_: NDArray[np.float64]
    y_: NDArray[np.float64]

    def _fit_map(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        fitted = iso.fit_transform(conf, correct)
        order = np.argsort(conf, kind="stable")
        xs, ys = conf[order], fitted[order]
        starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
        sizes = np.diff(np.r_[starts, xs.size])
        margin = 1.0 / (conf.size + 2.0)
        self.x_ = np.add.reduceat(xs, starts) / sizes
        self.y_ = np.clip(ys[starts], margin, 1.0 - margin)

    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.interp(conf, self.x_, self.y_)


class HistogramBinning(ScalarCalibrator):
    """Equal-mass bins of confidence, each mapped to its smoothed accuracy.

    A bin's value is the posterior mean under a Beta prior centred on the overall accuracy with
    `prior_strength` pseudo-items, so a bin of three right answers says about 0.9, not 1.0.
    `n_bins=None` picks about one bin per 20 items (2 to 15 bins).

    Attributes: `edges_` (inner bin edges), `values_` (one per bin), `n_fit_`.
    """

    method = "histogram"
    fitted_attributes = ("edges_", "values_")

    edges_: NDArray[np.float64]
    values_: NDArray[np.float64]

    def __init__(self, n_bins: int | None = None, prior_strength: float = 2.0) -> None:
        self.n_bins = n_bins
        self.prior_strength = prior_strength

    def _fit_map(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None:
        if self.n_bins is not None and self.n_bins < 1:
            raise ValueError(f"n_bins must be at least 1 (or None), got {self.n_bins}")
        if self.prior_strength <= 0:
            raise ValueError(f"prior_strength must be positive, got {self.prior_strength}")
        n_bins = self.n_bins or int(np.clip(conf.size // 20, 2, 15))
        inner = np.quantile(conf, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
        self.edges_ = np.unique(inner)
        bin_id = np.searchsorted(self.edges_, conf, side="right")
        m = self.edges_.size + 1
        count = np.bincount(bin_id, minlength=m)
        hits = np.bincount(bin_id, weights=correct, minlength=m)
        prior = (correct.sum() + 1.0) / (correct.size + 2.0)
        self.values_ = (hits + self.prior_strength * prior) / (count + self.prior_strength)

    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.values_[np.searchsorted(self.edges_, conf, side="right")]


CALIBRATORS: dict[str, type[Calibrator]] = {
    cls.method: cls
    for cls in (
        IdentityCalibrator,
        TemperatureScaling,
        VectorScaling,
        PlattScaling,
        IsotonicCalibrator,
        HistogramBinning,
    )
}


def make_calibrator(method: str) -> Calibrator:
    """A fresh, unfitted calibrator by method name."""
    try:
        return CALIBRATORS[method]()
    except KeyError:
        raise ValueError(
            f"unknown calibration method {method!r}; choose one of {sorted(CALIBRATORS)} or 'auto'"
        ) from None


def calibrator_from_dict(data: dict[str, Any]) -> Calibrator:
    """Rebuild a fitted calibrator from `Calibrator.to_dict()` output."""
    if not isinstance(data, dict) or "method" not in data:
        raise ValueError("a stored calibrator must be a dict with a 'method' key")
    version = int(data.get("format_version", FORMAT_VERSION))
    if version > FORMAT_VERSION:
        raise ValueError(f"stored calibrator format {version} is newer than this labelloop")
    return type(make_calibrator(data["method"])).from_dict(data)
