"""Dawid & Skene (1979): each rater's confusion matrix against a latent true label, by EM.

Used to say what a rater *would* answer if it worked independently of the others, given what
the others (weighted by their estimated reliability) say about each item. Computed once per
distinct rating pattern, so its cost does not grow with repeated items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from labelloop.agreement._encode import Codes, compress_rows, count_table


@dataclass(frozen=True)
class LatentClassFit:
    """Class prior (K,), confusions (R, K, K) rows = true class, and the posterior over the true
    class of each distinct rating pattern (P, K); item i has pattern ``inverse[i]``."""

    prior: NDArray[np.float64]
    confusions: NDArray[np.float64]
    pattern_posterior: NDArray[np.float64]
    inverse: NDArray[np.intp]

    @property
    def posterior(self) -> NDArray[np.float64]:
        """(N, K) posterior over each item's true class."""
        return self.pattern_posterior[self.inverse]


def _one_hot(patterns: NDArray[np.integer], n_categories: int) -> NDArray[np.float64]:
    """(R, P, K) indicator of each rater's answer per pattern (all zero when missing)."""
    n_raters, n_patterns = patterns.shape
    hot = np.zeros((n_raters, n_patterns, n_categories))
    r, p = np.nonzero(patterns >= 0)
    hot[r, p, patterns[r, p]] = 1.0
    return hot


def fit_dawid_skene(
    codes: Codes,
    n_categories: int,
    *,
    max_iter: int = 50,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> LatentClassFit:
    """EM from the soft majority vote; raters × items codes with -1 for missing."""
    if codes.ndim != 2 or codes.shape[0] == 0 or codes.shape[1] == 0:
        raise ValueError("need at least one rater and one item")
    columns, counts, inverse = compress_rows(codes.T)
    patterns = columns.T  # raters × distinct patterns
    hot = _one_hot(patterns, n_categories)
    posterior = count_table(patterns, n_categories).astype(np.float64) + smoothing
    posterior /= posterior.sum(axis=1, keepdims=True)
    for _ in range(max_iter):
        weighted = posterior * counts[:, None]
        prior = weighted.sum(axis=0) + smoothing
        prior /= prior.sum()
        confusions = np.einsum("pt,rpl->rtl", weighted, hot) + smoothing
        confusions /= confusions.sum(axis=2, keepdims=True)
        log_like = np.log(prior) + np.einsum("rpl,rtl->pt", hot, np.log(confusions))
        log_like -= log_like.max(axis=1, keepdims=True)
        updated = np.exp(log_like)
        updated /= updated.sum(axis=1, keepdims=True)
        change = np.abs(updated - posterior).max()
        posterior = updated
        if change < tol:
            break
    return LatentClassFit(prior, confusions, posterior, inverse)
