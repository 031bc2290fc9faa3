"""The multi-label student: one logistic regression per label on the embeddings.

Binary relevance (one-vs-rest): each label is its own yes/no question, so `predict_proba` gives
an (items x labels) matrix whose entries are each label's probability of applying, in the column
order of the label indicator matrix it was fitted on — the input the multi-label strategies,
`multilabel.PerLabelCalibrator` and `multilabel.PerLabelPool` expect.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from labelloop.multilabel._validation import as_indicator


class OneVsRestStudent(ClassifierMixin, BaseEstimator):
    """Logistic regression per label on embeddings, usable from the very first label.

    A label whose labeled items are all "no" (or all "yes") has nothing to separate yet: it gets
    the smoothed share (k + 1) / (n + 2) instead of a certain 0 or 1, so uncertainty strategies
    still see it as undecided and a single early label cannot claim certainty.
    """

    def __init__(
        self,
        C: float = 1.0,
        class_weight: str | dict | None = None,
        max_iter: int = 1000,
        random_state: int | None = None,
    ) -> None:
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X: ArrayLike, Y: ArrayLike) -> OneVsRestStudent:
        """`X` (n, d) embeddings, `Y` (n, L) which labels apply to each labeled item."""
        x = np.asarray(X)
        y = as_indicator(Y, "Y")
        if len(x) != len(y):
            raise ValueError(f"X has {len(x)} rows, Y has {len(y)}")
        n, n_labels = y.shape
        positives = y.sum(axis=0)
        self.prior_ = (positives + 1.0) / (n + 2.0)
        self.estimators_: list[Any] = []
        for j in range(n_labels):
            if 0 < positives[j] < n:
                model = LogisticRegression(
                    C=self.C,
                    class_weight=self.class_weight,
                    max_iter=self.max_iter,
                    random_state=self.random_state,
                ).fit(x, y[:, j])
                self.estimators_.append(model)
            else:
                self.estimators_.append(None)
        self.n_labels_ = n_labels
        self.classes_ = np.arange(n_labels)
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """(n, L): each label's probability of applying."""
        x = np.asarray(X)
        out = np.empty((len(x), self.n_labels_), dtype=np.float64)
        for j, model in enumerate(self.estimators_):
            out[:, j] = self.prior_[j] if model is None else model.predict_proba(x)[:, 1]
        return out

    def predict(self, X: ArrayLike) -> NDArray[np.bool_]:
        """(n, L) indicator: the labels whose probability is at least 1/2."""
        return self.predict_proba(X) >= 0.5


def cross_val_proba_multilabel(
    student: OneVsRestStudent,
    X: ArrayLike,
    Y: ArrayLike,
    n_splits: int = 5,
    random_state: int | None = 0,
) -> NDArray[np.float64]:
    """Out-of-fold (n, L) probabilities for every labeled item: calibrating or stacking the
    student on in-sample probabilities would trust it far more than it deserves."""
    x = np.asarray(X)
    y = as_indicator(Y, "Y")
    if len(y) < 2:
        raise ValueError("cross-fitting needs at least 2 labeled items")
    out = np.empty(y.shape, dtype=np.float64)
    splitter = KFold(min(n_splits, len(y)), shuffle=True, random_state=random_state)
    for train, test in splitter.split(x):
        out[test] = clone(student).fit(x[train], y[train]).predict_proba(x[test])
    return out
