"""Calibrators: map a model's reported confidence to the accuracy it actually reaches.

Every calibrator follows one contract, scikit-learn style:

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

Temperature and vector scaling need per-label probabilities; the others need only a scalar
confidence.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax, logit
from sklearn.isotonic import IsotonicRegression

from ._validation import EPS, as_confidences, as_correct, as_label_index, as_proba

FORMAT_VERSION = 1


def _clipped_logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    return logit(np.clip(p, 1e-6, 1.0 - 1e-6))


class Calibrator(ABC):
    """Base class: input handling, the probability-matrix view and serialisation."""

    method: ClassVar[str]
    needs_proba: ClassVar[bool] = False
    #: Whether `predict` may differ from the labeler's argmax. A scalar map speaks only about the
    #: top label's chance of being right, so it never moves the label.
    relabels: ClassVar[bool] = False

    def __init__(self) -> None:
        self.n_fit_: int = 0

    # -- the part each method supplies -------------------------------------------------------
    @abstractmethod
    def _fit_scalar(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None: ...

    @abstractmethod
    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]: ...

    @abstractmethod
    def _params(self) -> dict[str, Any]: ...

    @abstractmethod
    def _set_params(self, params: dict[str, Any]) -> None: ...

    # -- the shared contract -----------------------------------------------------------------
    def fit(self, scores: ArrayLike, target: ArrayLike) -> Calibrator:
        """Fit on gold items; see the module docstring for the two input forms."""
        conf, correct = _confidence_and_correctness(scores, target)
        if conf.size == 0:
            raise ValueError("cannot fit a calibrator on zero items")
        self._fit_scalar(conf, correct)
        self.n_fit_ = int(conf.size)
        return self

    def transform(self, scores: ArrayLike) -> NDArray[np.float64]:
        """Calibrated confidence of each predicted label."""
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
        """Predicted label index for a matrix (the labeler's, unless this calibrator `relabels`);
        predicted correctness (0/1) for a vector."""
        arr = np.asarray(scores, dtype=np.float64)
        if arr.ndim == 2:
            return as_proba(arr).argmax(axis=1)
        return (self.transform(arr) >= 0.5).astype(np.intp)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description that `calibrator_from_dict` turns back into this calibrator."""
        return {
            "method": self.method,
            "format_version": FORMAT_VERSION,
            "n_fit": self.n_fit_,
            "params": self._params(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        if data.get("method") != cls.method:
            raise ValueError(f"expected method {cls.method!r}, got {data.get('method')!r}")
        obj = cls()
        obj._set_params(dict(data["params"]))
        obj.n_fit_ = int(data.get("n_fit", 0))
        return obj

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params()})"


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


class IdentityCalibrator(Calibrator):
    """No calibration: the reported confidence is kept (the 'before' of every comparison)."""

    method = "none"

    def _fit_scalar(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None:
        return None

    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]:
        return conf

    def _params(self) -> dict[str, Any]:
        return {}

    def _set_params(self, params: dict[str, Any]) -> None:
        return None


class TemperatureScaling(Calibrator):
    """Divide log-probabilities by one temperature T fitted by the NLL of the true label.

    One parameter cannot overfit a small gold set, and it never changes which label wins.
    `T > 1` softens an over-confident model. T is searched in [0.05, 20].
    """

    method = "temperature"
    needs_proba = True
    T_BOUNDS = (0.05, 20.0)

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = float(temperature)

    def fit(self, scores: ArrayLike, target: ArrayLike) -> TemperatureScaling:
        proba, x, cols = _gold_log_proba(scores, target, self.method)
        if cols.size == 0:
            self.temperature = 1.0
        else:

            def nll(log_t: float) -> float:
                logq = log_softmax(x / np.exp(log_t), axis=1)
                return float(-logq[np.arange(cols.size), cols].mean())

            lo, hi = np.log(self.T_BOUNDS[0]), np.log(self.T_BOUNDS[1])
            res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
            self.temperature = float(np.exp(res.x))
        self.n_fit_ = int(proba.shape[0])
        return self

    def predict_proba(self, scores: ArrayLike) -> NDArray[np.float64]:
        _, logp = _log_proba(scores, self.method)
        return np.exp(log_softmax(logp / self.temperature, axis=1))

    def transform(self, scores: ArrayLike) -> NDArray[np.float64]:
        return self.predict_proba(scores).max(axis=1)

    def _fit_scalar(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None:
        raise NotImplementedError  # fit() is overridden: temperature needs the whole matrix

    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError  # transform() is overridden

    def _params(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def _set_params(self, params: dict[str, Any]) -> None:
        self.temperature = float(params["temperature"])


class VectorScaling(Calibrator):
    """Temperature scaling plus one bias per label: softmax(log p / T + b), fitted by NLL.

    A labeler that favours one label (a prompt's or a small model's habit) is over-confident on
    that label and under-confident on the others; one temperature cannot fix both, a bias per
    label can. Where the biases put another label first, that label is the prediction: a
    labeler that says "positive" for three reviews in four of a balanced corpus is wrong on
    most of its weak "positive" answers, and the calibrated distribution knows which.
    The biases carry a small L2 penalty so a label rare in the gold set keeps a finite bias.
    """

    method = "vector"
    needs_proba = True
    relabels = True
    PENALTY = 1e-3

    def __init__(self, temperature: float = 1.0, bias: list[float] | None = None) -> None:
        super().__init__()
        self.temperature = float(temperature)
        self.bias = np.asarray(bias if bias is not None else [], dtype=np.float64)

    def fit(self, scores: ArrayLike, target: ArrayLike) -> VectorScaling:
        proba, x, cols = _gold_log_proba(scores, target, self.method)
        k = proba.shape[1]
        if cols.size == 0:
            self.temperature, self.bias = 1.0, np.zeros(k)
        else:
            onehot = np.eye(k)[cols]

            def nll(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
                inv_t, bias = np.exp(-theta[0]), theta[1:]
                logq = log_softmax(x * inv_t + bias, axis=1)
                residual = (np.exp(logq) - onehot) / cols.size
                loss = -float((logq * onehot).sum() / cols.size) + self.PENALTY * bias @ bias
                grad_t = -inv_t * float((residual * x).sum())
                return loss, np.r_[grad_t, residual.sum(axis=0) + 2 * self.PENALTY * bias]

            bounds = [
                (np.log(TemperatureScaling.T_BOUNDS[0]), np.log(TemperatureScaling.T_BOUNDS[1]))
            ]
            res = minimize(
                nll,
                np.zeros(k + 1),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds + [(None, None)] * k,
            )
            self.temperature, self.bias = float(np.exp(res.x[0])), res.x[1:]
        self.n_fit_ = int(proba.shape[0])
        return self

    def predict_proba(self, scores: ArrayLike) -> NDArray[np.float64]:
        proba, logp = _log_proba(scores, self.method)
        if proba.shape[1] != self.bias.size:
            raise ValueError(
                f"this calibrator was fitted on {self.bias.size} labels, got {proba.shape[1]}"
            )
        return np.exp(log_softmax(logp / self.temperature + self.bias, axis=1))

    def transform(self, scores: ArrayLike) -> NDArray[np.float64]:
        return self.predict_proba(scores).max(axis=1)

    def predict(self, scores: ArrayLike) -> NDArray[np.intp]:
        return self.predict_proba(scores).argmax(axis=1)

    def _fit_scalar(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None:
        raise NotImplementedError  # fit() is overridden: the biases need the whole matrix

    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError  # transform() is overridden

    def _params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "bias": [float(b) for b in self.bias]}

    def _set_params(self, params: dict[str, Any]) -> None:
        self.temperature = float(params["temperature"])
        self.bias = np.asarray(params["bias"], dtype=np.float64)


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


class PlattScaling(Calibrator):
    """Logistic regression of correctness on logit(confidence): p = sigmoid(a * logit(c) + b).

    Uses Platt's smoothed targets ((N+ + 1)/(N+ + 2) and 1/(N- + 2)) so that a gold set where
    every prediction is right still gives a finite, honest confidence instead of 1.0.
    """

    method = "platt"

    def __init__(self, a: float = 1.0, b: float = 0.0) -> None:
        super().__init__()
        self.a, self.b = float(a), float(b)

    def _fit_scalar(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None:
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
        self.a, self.b = float(res.x[0]), float(res.x[1])

    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]:
        return expit(self.a * _clipped_logit(conf) + self.b)

    def _params(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b}

    def _set_params(self, params: dict[str, Any]) -> None:
        self.a, self.b = float(params["a"]), float(params["b"])


class IsotonicCalibrator(Calibrator):
    """Isotonic regression of correctness on confidence, made strictly increasing.

    Plain isotonic regression returns flat steps, so items with different confidences tie and
    thresholds lose resolution. Here each step is replaced by one knot at its mean confidence and
    the knots are joined linearly (centred isotonic regression), which is strictly increasing
    between the outer knots. Inputs outside the fitted range are clipped to the end values, and
    outputs are kept within [1/(n+2), (n+1)/(n+2)] so a small gold set never claims certainty.
    """

    method = "isotonic"

    def __init__(self) -> None:
        super().__init__()
        self.x_: list[float] = [0.0, 1.0]
        self.y_: list[float] = [0.0, 1.0]

    def _fit_scalar(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        fitted = iso.fit_transform(conf, correct)
        order = np.argsort(conf, kind="stable")
        xs, ys = conf[order], fitted[order]
        starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
        sizes = np.diff(np.r_[starts, xs.size])
        knots_x = np.add.reduceat(xs, starts) / sizes
        knots_y = ys[starts]
        margin = 1.0 / (conf.size + 2.0)
        self.x_ = knots_x.tolist()
        self.y_ = np.clip(knots_y, margin, 1.0 - margin).tolist()

    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.interp(conf, self.x_, self.y_)

    def _params(self) -> dict[str, Any]:
        return {"x": list(self.x_), "y": list(self.y_)}

    def _set_params(self, params: dict[str, Any]) -> None:
        self.x_, self.y_ = [float(v) for v in params["x"]], [float(v) for v in params["y"]]


class HistogramBinning(Calibrator):
    """Equal-mass bins of confidence, each mapped to its smoothed accuracy.

    A bin's value is the posterior mean under a Beta prior centred on the overall accuracy with
    `prior_strength` pseudo-items, so a bin of three right answers says about 0.9, not 1.0.
    `n_bins=None` picks about one bin per 20 items (2 to 15 bins).
    """

    method = "histogram"

    def __init__(self, n_bins: int | None = None, prior_strength: float = 2.0) -> None:
        super().__init__()
        self.n_bins = n_bins
        self.prior_strength = float(prior_strength)
        self.edges_: list[float] = []
        self.values_: list[float] = [0.5]

    def _fit_scalar(self, conf: NDArray[np.float64], correct: NDArray[np.float64]) -> None:
        n_bins = self.n_bins or int(np.clip(conf.size // 20, 2, 15))
        inner = np.quantile(conf, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
        self.edges_ = np.unique(inner).tolist()
        bin_id = np.searchsorted(self.edges_, conf, side="right")
        m = len(self.edges_) + 1
        count = np.bincount(bin_id, minlength=m)
        hits = np.bincount(bin_id, weights=correct, minlength=m)
        prior = (correct.sum() + 1.0) / (correct.size + 2.0)
        values = (hits + self.prior_strength * prior) / (count + self.prior_strength)
        self.values_ = values.tolist()

    def _map(self, conf: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(self.values_)[np.searchsorted(self.edges_, conf, side="right")]

    def _params(self) -> dict[str, Any]:
        return {
            "n_bins": self.n_bins,
            "prior_strength": self.prior_strength,
            "edges": list(self.edges_),
            "values": list(self.values_),
        }

    def _set_params(self, params: dict[str, Any]) -> None:
        self.n_bins = params.get("n_bins")
        self.prior_strength = float(params.get("prior_strength", 2.0))
        self.edges_ = [float(v) for v in params["edges"]]
        self.values_ = [float(v) for v in params["values"]]


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
