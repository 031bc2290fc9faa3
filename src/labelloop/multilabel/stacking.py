"""Combining several predictors' per-label probabilities: a log-linear pool per label.

The multi-label analogue of `labelloop.stacking.LogLinearPool`. Each label is a yes/no question,
and the log-linear pool of binary distributions is a weighted sum of log-odds:

    logit p(l | x) = sum_m w_lm * logit p_m(l | x) + b_l,    w_lm >= 0,

which is exactly `LogLinearPool` fitted on the two-column [1 - p, p] view of each label (its
centred log-probabilities are +-logit/2 and its two biases collapse to one). It can reproduce any
single component (weight 1, others 0) and only moves away from it when the gold says so. A
component with no answer for an item (NaN) counts as p = 1/2, which adds nothing. With few gold
items per label, `shared_weights=True` fits one weight per component for all labels (keeping a
bias per label), which a rare label cannot overfit.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import expit

from labelloop.multilabel._validation import as_indicator

__all__ = ["PerLabelPool"]

EPS = 1e-6


def _log_odds(probs: ArrayLike) -> NDArray[np.float64]:
    """(n, M, L) log-odds, 0 where a component has no answer; clipped as `LogLinearPool` does."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"expected probabilities of shape (n, components, labels), got {p.shape}")
    missing = np.isnan(p)
    filled = np.where(missing, 0.5, p)
    if filled.size and (filled.min() < 0.0 or filled.max() > 1.0):
        raise ValueError("probabilities must lie in [0, 1] (NaN for a missing answer)")
    x = np.log(np.clip(filled, EPS, 1.0)) - np.log(np.clip(1.0 - filled, EPS, 1.0))
    return np.where(missing, 0.0, x)


class PerLabelPool:
    """Weighted log-odds pooling per label, fitted by penalised binary log loss.

    Parameters
    ----------
    alpha : L2 penalty (per item) on weights and biases, so a label that one component separates
        perfectly on the gold keeps finite weights.
    shared_weights : one weight per component for every label instead of one per label.
    """

    def __init__(self, alpha: float = 1e-3, shared_weights: bool = False) -> None:
        self.alpha = alpha
        self.shared_weights = shared_weights

    def fit(self, probs: ArrayLike, y: ArrayLike) -> PerLabelPool:
        """`probs` (n, M, L) per-label probabilities of M components; `y` (n, L) the truth."""
        x = _log_odds(probs)
        t = as_indicator(y, "y").astype(np.float64)
        n, m, n_labels = x.shape
        if t.shape != (n, n_labels):
            raise ValueError(f"y must have shape {(n, n_labels)}, got {t.shape}")
        if n == 0:
            raise ValueError("no training rows")
        n_w = m if self.shared_weights else m * n_labels
        alpha = self.alpha

        def split(theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
            w = theta[:n_w]
            w = np.broadcast_to(w[:, None], (m, n_labels)) if self.shared_weights else w
            return w.reshape(m, n_labels), theta[n_w:]

        def objective(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
            w, b = split(theta)
            z = np.einsum("iml,ml->il", x, w) + b
            loss = float((np.logaddexp(0.0, z) - t * z).sum() / n)
            residual = (expit(z) - t) / n
            grad_w = np.einsum("il,iml->ml", residual, x)
            if self.shared_weights:
                grad_w = grad_w.sum(axis=1)
            weights = theta[:n_w]
            loss += alpha * float(weights @ weights + b @ b / 2.0)
            grad = np.concatenate(
                [grad_w.ravel() + 2 * alpha * weights, residual.sum(0) + alpha * b]
            )
            return loss, grad

        start = np.concatenate([np.full(n_w, 1.0 / m), np.zeros(n_labels)])
        bounds = [(0.0, None)] * n_w + [(None, None)] * n_labels
        result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds)
        w, b = split(result.x)
        self.weights_ = np.array(w.T)  # (L, M): each label's weight on each component
        self.bias_ = np.array(b)
        self.n_components_, self.n_labels_ = m, n_labels
        return self

    def decision_function(self, probs: ArrayLike) -> NDArray[np.float64]:
        """Pooled log-odds (n, L)."""
        x = _log_odds(probs)
        if x.shape[1:] != (self.n_components_, self.n_labels_):
            raise ValueError(
                f"fitted on {self.n_components_} components x {self.n_labels_} labels, "
                f"got {x.shape[1:]}"
            )
        return np.einsum("iml,lm->il", x, self.weights_) + self.bias_

    def predict_proba(self, probs: ArrayLike) -> NDArray[np.float64]:
        """Pooled per-label probabilities (n, L)."""
        return expit(self.decision_function(probs))

    def influence(self, probs: ArrayLike) -> NDArray[np.float64]:
        """Share of the pooled log-odds each component carries on these items, over all labels
        (sums to 1): each label's weight on a component times that component's mean |log-odds|
        there."""
        spread = np.abs(_log_odds(probs)).mean(axis=0)  # (M, L)
        weight = (self.weights_.T * spread).sum(axis=1)
        total = weight.sum()
        if total > 0:
            return np.asarray(weight / total, dtype=np.float64)
        return np.full(len(weight), 1.0 / len(weight))
