"""Multi-label query strategies, in the single-label strategies' interface.

Here `proba` is an (items x labels) matrix of per-label probabilities (each label's chance of
applying, as `OneVsRestStudent.predict_proba` gives), not a distribution over labels. They are
registered in `MULTILABEL_STRATEGIES`, apart from `STRATEGIES`, so a single-label project never
offers them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from labelloop.active.strategies.base import FloatArray, Pool, QueryStrategy, ScoreStrategy
from labelloop.multilabel._validation import as_indicator

#: A pool's (items x labels) label matrix: booleans or 0/1 numbers.
Indicator = NDArray[np.bool_ | np.integer]


def label_uncertainty(proba: FloatArray) -> NDArray[np.float64]:
    """1 - |2p - 1| per label: 1 at p = 1/2, 0 at certainty (twice the chance that the yes/no
    decision is wrong, for calibrated p)."""
    return 1.0 - np.abs(2.0 * np.asarray(proba, dtype=np.float64) - 1.0)


class MeanLabelUncertainty(ScoreStrategy):
    """Mean per-label uncertainty: the item whose labels are, on the whole, least settled.

    The "mean max loss" of Li, Wang & Sung (2004), Multilabel SVM active learning for image
    classification (ICIP), with probabilities for SVM margins. Ties go to the larger maximum.
    """

    name = "ml-mean-uncertainty"
    requires = frozenset({"proba"})

    def scores(self, pool: Pool) -> FloatArray:
        return label_uncertainty(pool.need("proba")).mean(axis=1)

    def tie_break(self, pool: Pool) -> FloatArray:
        return label_uncertainty(pool.need("proba")).max(axis=1)


class MaxLabelUncertainty(ScoreStrategy):
    """Largest per-label uncertainty: the item with the single least settled label ("max loss",
    Li et al. 2004). It finds the items that routing would send to review for one label. Ties go
    to the larger mean."""

    name = "ml-max-uncertainty"
    requires = frozenset({"proba"})

    def scores(self, pool: Pool) -> FloatArray:
        return label_uncertainty(pool.need("proba")).max(axis=1)

    def tie_break(self, pool: Pool) -> FloatArray:
        return label_uncertainty(pool.need("proba")).mean(axis=1)


def label_count_features(proba: FloatArray) -> NDArray[np.float64]:
    """Each row's probabilities sorted in decreasing order and normalised to sum to one: the
    input of MMC's label-count predictor."""
    ranked = -np.sort(-np.asarray(proba, dtype=np.float64), axis=1)
    total = ranked.sum(axis=1, keepdims=True)
    uniform = np.full_like(ranked, 1.0 / max(ranked.shape[1], 1))
    return np.divide(ranked, total, out=uniform, where=total > 0)


def predict_label_counts(
    proba: FloatArray, labeled_mask: NDArray[np.bool_], labels: Indicator | None
) -> NDArray[np.intp]:
    """How many labels each item has, learned from the labeled items (Yang et al. 2009).

    A logistic regression maps the sorted, normalised probabilities to the number of labels.
    Without labels, or while the labeled items all have the same count, the count is the
    number of labels with p >= 1/2 (resp. that common count)."""
    p = np.asarray(proba, dtype=np.float64)
    fallback = (p >= 0.5).sum(axis=1)
    if labels is None or not labeled_mask.any():
        return fallback.astype(np.intp)
    counts = as_indicator(labels, "labels")[labeled_mask].sum(axis=1)
    if np.unique(counts).size < 2:
        return np.full(len(p), counts[0], dtype=np.intp)
    features = label_count_features(p)
    model = LogisticRegression(max_iter=1000).fit(features[labeled_mask], counts)
    return model.predict(features).astype(np.intp)


def expected_loss_reduction(
    proba: FloatArray, label_counts: NDArray[np.integer]
) -> NDArray[np.float64]:
    """MMC's score: sum over labels of (1 - ŷ_l f_l) / 2 with f_l = 2p_l - 1 and ŷ the item's
    `label_counts` most probable labels set to +1, the rest to -1.

    It is the expected number of wrong labels in that predicted set; it exceeds plain
    uncertainty where the predicted count and the per-label probabilities disagree."""
    p = np.asarray(proba, dtype=np.float64)
    rank = np.argsort(np.argsort(-p, axis=1, kind="stable"), axis=1, kind="stable")
    predicted = rank < np.asarray(label_counts)[:, None]
    return np.where(predicted, 1.0 - p, p).sum(axis=1)


class MaxLossReduction(ScoreStrategy):
    """Maximum loss reduction with maximal confidence (MMC): Yang, Sun, Wang & Chen (2009),
    Effective multi-label active learning for text classification (KDD).

    `labels` is the pool's (n, L) indicator matrix (only labeled rows are read); it trains the
    label-count predictor. Without it MMC reduces to the sum of per-label error chances.
    """

    name = "mmc"
    requires = frozenset({"proba"})

    def __init__(self, labels: Indicator | None = None) -> None:
        self.labels = labels

    def scores(self, pool: Pool) -> FloatArray:
        proba = pool.need("proba")
        if self.labels is not None and len(self.labels) != len(proba):
            raise ValueError(f"labels has {len(self.labels)} rows, the pool has {len(proba)}")
        counts = predict_label_counts(proba, pool.labeled_mask, self.labels)
        return expected_loss_reduction(proba, counts)

    def tie_break(self, pool: Pool) -> FloatArray:
        return label_uncertainty(pool.need("proba")).mean(axis=1)


MULTILABEL_STRATEGIES: dict[str, type[QueryStrategy]] = {
    cls.name: cls for cls in (MeanLabelUncertainty, MaxLabelUncertainty, MaxLossReduction)
}


def get_multilabel_strategy(name: str, **params: object) -> QueryStrategy:
    """A multi-label strategy by name. (`random`, `diversity` and `coreset` of `STRATEGIES` read
    no probabilities and serve a multi-label pool as they are.)"""
    try:
        cls = MULTILABEL_STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown multi-label strategy {name!r}; choose from {', '.join(MULTILABEL_STRATEGIES)}"
        ) from None
    return cls(**params)
