"""Contextual calibration (Zhao et al., 2021), made robust.

A small model's label scores carry a prior: asked about a content-free input ("N/A", "",
"[MASK]") it still prefers some labels. Dividing by that prior removes it. Divided as published,
a label the model almost never says (content-free probability 0.003) gets multiplied by ~300 and
wins everywhere; so the prior is shrunk toward uniform first, which bounds the correction: no
label's odds move by more than a factor ``(1 - shrink + shrink/K) / (shrink/K)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

__all__ = ["CONTENT_FREE_INPUTS", "contextual_calibrate", "robust_prior"]

CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")


def robust_prior(content_free_logprobs: np.ndarray, shrink: float = 0.5) -> np.ndarray:
    """The label prior: content-free distributions (rows, log space) averaged, shrunk to uniform."""
    rows = np.exp(log_softmax(np.atleast_2d(content_free_logprobs), axis=1))
    k = rows.shape[1]
    return (1.0 - shrink) * rows.mean(axis=0) + shrink / k


def contextual_calibrate(
    logprobs: np.ndarray, content_free_logprobs: np.ndarray | None, shrink: float = 0.5
) -> np.ndarray:
    """Calibrated label distributions, shape (n, K), from label log-scores (n, K).

    ``shrink=0`` is the published correction, ``shrink=1`` leaves the scores as they are;
    ``content_free_logprobs=None`` just normalises.
    """
    scores = log_softmax(np.atleast_2d(np.asarray(logprobs, dtype=float)), axis=1)
    if content_free_logprobs is not None and shrink < 1.0:
        scores = scores - np.log(robust_prior(content_free_logprobs, shrink))
    return np.exp(log_softmax(scores, axis=1))
