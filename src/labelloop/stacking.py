"""Combining several predictors' per-label probabilities into one: a weighted log-linear pool.

A full multinomial logistic regression over every component's log-probabilities has
K x (M x K) weights; with a few hundred trusted labels it overfits and can end up below its best
input. The pool has one non-negative weight per component and one bias per label:

    log p(k | x) = sum_m w_m * log p_m(k | x) + b_k - log Z(x)

so it can reproduce any single component exactly (that weight 1, the others 0) and only moves
away from it when the data say so. A component with no answer for an item (a NaN row) is treated
as uniform, which adds nothing to any label.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

__all__ = ["LogLinearPool"]

EPS = 1e-6


def _centered_log_probs(probs: np.ndarray) -> np.ndarray:
    """Log-probabilities centred over labels, zero where a component has no answer.

    ``probs`` has shape (n, M, K): item, component, label."""
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 3:
        raise ValueError(
            f"expected probabilities of shape (n, components, labels), got {probs.shape}"
        )
    missing = np.isnan(probs).any(axis=2, keepdims=True)
    logs = np.log(np.clip(np.where(missing, 1.0, probs), EPS, 1.0))
    logs -= logs.mean(axis=2, keepdims=True)
    return np.where(missing, 0.0, logs)


class LogLinearPool(BaseEstimator):
    """Weighted geometric pooling of component distributions, fitted by penalised log loss.

    Parameters
    ----------
    alpha : L2 penalty on weights and biases (per item), keeping the fit finite when one
        component separates the training labels perfectly.

    Attributes
    ----------
    weights_ : (M,) non-negative weight per component.
    bias_ : (K,) bias per label.
    n_labels_ : K.
    """

    def __init__(self, alpha: float = 1e-3) -> None:
        self.alpha = alpha

    def fit(self, probs: np.ndarray, y: np.ndarray) -> LogLinearPool:
        logs = _centered_log_probs(probs)
        y = np.asarray(y, dtype=int)
        n, m, k = logs.shape
        if n == 0:
            raise ValueError("no training rows")
        onehot = np.zeros((n, k))
        onehot[np.arange(n), y] = 1.0

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:m], theta[m:]
            scores = np.einsum("imk,m->ik", logs, w) + b
            log_p = log_softmax(scores, axis=1)
            loss = -np.sum(log_p * onehot) / n + self.alpha * theta @ theta
            residual = (np.exp(log_p) - onehot) / n
            grad_w = np.einsum("ik,imk->m", residual, logs)
            grad = np.concatenate([grad_w, residual.sum(axis=0)]) + 2 * self.alpha * theta
            return float(loss), grad

        start = np.concatenate([np.full(m, 1.0 / m), np.zeros(k)])
        bounds = [(0.0, None)] * m + [(None, None)] * k
        result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds)
        self.weights_, self.bias_ = result.x[:m], result.x[m:]
        self.n_labels_ = k
        return self

    def predict_log_proba(self, probs: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        logs = _centered_log_probs(probs)
        return log_softmax(np.einsum("imk,m->ik", logs, self.weights_) + self.bias_, axis=1)

    def predict_proba(self, probs: np.ndarray) -> np.ndarray:
        return np.exp(self.predict_log_proba(probs))

    def influence(self, probs: np.ndarray) -> np.ndarray:
        """Share of the pooled log-odds each component carries on these items (sums to 1)."""
        check_is_fitted(self)
        spread = np.abs(_centered_log_probs(probs)).mean(axis=(0, 2))
        weight = self.weights_ * spread
        total = weight.sum()
        return weight / total if total > 0 else np.full(len(weight), 1.0 / len(weight))
