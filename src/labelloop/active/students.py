"""Student models: cheap classifiers on embeddings, trained on the labels people give.

Every student returns probabilities over the *full* label set in a fixed order, even when
some labels have no example yet (their column is 0), so strategies and the stacking layer
never have to reconcile column orders.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

#: Embeddings, one row per item.
Features = NDArray[np.floating]
#: Labels, one per item, of any kind (strings, numbers).
Labels = NDArray[Any]
#: Probabilities, one row per item and one column per label of the label set.
Proba = NDArray[np.float64]


class Student(Protocol):
    """What strategies, the loop and the simulation need from a model."""

    def fit(self, X: Features, y: Labels) -> Student: ...

    def predict_proba(self, X: Features) -> Proba: ...

    def predict(self, X: Features) -> Labels: ...


class SklearnStudent(ClassifierMixin, BaseEstimator):
    """Any scikit-learn classifier, with probability columns for the full label set.

    `classes` fixes the label set and column order; by default it is taken from `y` at fit.
    With a single observed class the student predicts that class with certainty; with none
    it predicts uniformly — so the loop can run from the very first label.
    """

    def __init__(
        self, estimator: Any = None, classes: Sequence[Any] | Labels | None = None
    ) -> None:
        self.estimator = estimator
        self.classes = classes

    def _make_estimator(self) -> Any:
        return clone(self.estimator) if self.estimator is not None else LogisticRegression()

    def fit(
        self, X: Features, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> SklearnStudent:
        """Fit on `X`, `y`; `sample_weight` (one per row) lets soft or guessed labels count
        less than a person's."""
        y = np.asarray(y)
        self.classes_ = np.asarray(self.classes) if self.classes is not None else np.unique(y)
        unknown = set(np.unique(y).tolist()) - set(self.classes_.tolist())
        if unknown:
            raise ValueError(f"labels not in the label set: {sorted(map(str, unknown))}")
        self.seen_classes_ = np.unique(y)
        self.estimator_ = None
        if len(self.seen_classes_) >= 2:
            weights = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)}
            self.estimator_ = self._make_estimator().fit(X, y, **weights)
        return self

    def predict_proba(self, X: Features) -> Proba:
        check_is_fitted(self)
        n, n_classes = X.shape[0], len(self.classes_)
        out = np.zeros((n, n_classes), dtype=np.float64)
        position = {c: i for i, c in enumerate(self.classes_.tolist())}
        if self.estimator_ is None:
            if len(self.seen_classes_) == 1:
                out[:, position[self.seen_classes_.tolist()[0]]] = 1.0
            else:
                out.fill(1.0 / n_classes)
            return out
        columns = [position[c] for c in self.estimator_.classes_.tolist()]
        out[:, columns] = self.estimator_.predict_proba(X)
        return out

    def predict(self, X: Features) -> Labels:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class LogisticStudent(SklearnStudent):
    """Logistic regression on embeddings: the default student (fast, calibrated-ish, convex)."""

    def __init__(
        self,
        classes: Sequence[Any] | Labels | None = None,
        C: float = 1.0,
        class_weight: str | dict[Any, float] | None = None,
        max_iter: int = 1000,
        random_state: int | None = None,
    ) -> None:
        self.classes = classes
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.random_state = random_state

    def _make_estimator(self) -> LogisticRegression:
        return LogisticRegression(
            C=self.C,
            class_weight=self.class_weight,
            max_iter=self.max_iter,
            random_state=self.random_state,
        )


class Committee(BaseEstimator):
    """Several students (and fixed probability sources such as an LLM) voting on each item.

    Members are the given `students`, plus `n_bootstrap` copies of `base` each trained on a
    bootstrap resample, plus `external` probability matrices (one row per pool item, columns
    in the label-set order) that are not trained at all. `fit` trains clones, so the given
    students stay untouched; the trained ones are `members_`.
    """

    def __init__(
        self,
        students: Sequence[Student] = (),
        *,
        base: Student | None = None,
        n_bootstrap: int = 0,
        external: Sequence[ArrayLike] = (),
        random_state: int | None = None,
    ) -> None:
        self.students = students
        self.base = base
        self.n_bootstrap = n_bootstrap
        self.external = external
        self.random_state = random_state

    def fit(self, X: Features, y: ArrayLike) -> Committee:
        if not len(self.students) and not self.n_bootstrap and not len(self.external):
            raise ValueError("a committee needs at least one member")
        y = np.asarray(y)
        rng = check_random_state(self.random_state)
        self.members_ = [clone(s).fit(X, y) for s in self.students]
        base = self.base if self.base is not None else LogisticStudent(classes=np.unique(y))
        for _ in range(self.n_bootstrap):
            rows = rng.randint(0, len(y), size=len(y))
            self.members_.append(clone(base).fit(X[rows], y[rows]))
        return self

    def member_probas(self, X: Features) -> NDArray[np.float64]:
        """Probabilities of every member: shape (n_members, n_items, n_classes)."""
        check_is_fitted(self)
        probas = [m.predict_proba(X) for m in self.members_]
        for p in (np.asarray(p, dtype=np.float64) for p in self.external):
            if len(p) != len(X):
                raise ValueError(f"external member has {len(p)} rows, pool has {len(X)}")
            probas.append(p)
        widths = {p.shape[1] for p in probas}
        if len(widths) != 1:
            raise ValueError(f"members disagree on the number of labels: {sorted(widths)}")
        return np.stack(probas)

    def predict_proba(self, X: Features) -> Proba:
        """The consensus: the members' mean distribution."""
        return self.member_probas(X).mean(axis=0)


def cross_fit_splits(
    y: Labels, n_splits: int = 5, random_state: int | None = 0
) -> Iterator[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """(train, test) index pairs for cross-fitting on labels `y`: stratified when every class
    has at least `n_splits` items; the number of folds shrinks for tiny label sets (at least 2).
    """
    n_splits = max(2, min(n_splits, len(y)))
    _, counts = np.unique(y, return_counts=True)
    if counts.min() >= n_splits:
        splitter: Any = StratifiedKFold(n_splits, shuffle=True, random_state=random_state)
    else:
        splitter = KFold(n_splits, shuffle=True, random_state=random_state)
    return splitter.split(np.zeros(len(y)), y)


@dataclass(frozen=True)
class ExtraRows:
    """Rows added to every fold's training data but never predicted out of fold: items
    without a trusted label carrying soft or guessed labels, each with its weight."""

    X: Any
    y: Labels
    sample_weight: NDArray[np.float64]


def with_extra(X: Any, y: Labels, extra: ExtraRows | None) -> tuple[Any, Labels, Any]:
    """Training rows followed by `extra`'s (dense or sparse alike); weight 1 for the first."""
    if extra is None or len(extra.y) == 0:
        return X, y, None
    stacked = sp.vstack([X, extra.X], format="csr") if sp.issparse(X) else np.vstack([X, extra.X])
    weights = np.concatenate([np.ones(len(y)), extra.sample_weight])
    return stacked, np.concatenate([y, extra.y]), weights


def cross_val_proba(
    student: Student,
    X: Features,
    y: ArrayLike,
    n_splits: int = 5,
    random_state: int | None = 0,
    *,
    extra: ExtraRows | None = None,
) -> Proba:
    """Out-of-fold probabilities for every training item (full label-set columns).

    Calibration and thresholds must never be fitted on in-sample confidences. Folds come from
    `cross_fit_splits`; `extra` rows join every fold's training data.
    """
    y = np.asarray(y)
    if len(y) < 2:
        raise ValueError("cross-fitting needs at least 2 labeled items")
    classes = getattr(student, "classes", None)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    out = np.zeros((len(y), len(classes)), dtype=np.float64)
    for train, test in cross_fit_splits(y, n_splits, random_state):
        fold = clone(student)
        if "classes" in fold.get_params():
            fold.set_params(classes=classes)
        X_fit, y_fit, weights = with_extra(X[train], y[train], extra)
        if weights is None:
            fold.fit(X_fit, y_fit)
        else:
            fold.fit(X_fit, y_fit, sample_weight=weights)
        out[test] = fold.predict_proba(X[test])
    return out


def cross_val_select(
    student: Student,
    X: Features,
    y: ArrayLike,
    param: str,
    values: Sequence[Any],
    n_splits: int = 5,
    random_state: int | None = 0,
    *,
    extra: ExtraRows | None = None,
) -> tuple[Any, Proba]:
    """The value of the student's `param` whose out-of-fold probabilities have the lowest log
    loss on `y`, and those probabilities (same folds for every value, so the comparison is
    paired). Regularisation that suits 60 labels rarely suits 2,000; this picks it per fit."""
    y = np.asarray(y)
    classes = getattr(student, "classes", None)
    position = {c: i for i, c in enumerate(np.unique(y) if classes is None else classes)}
    truth = np.array([position[label] for label in y.tolist()])
    best: tuple[float, Any, Proba] | None = None
    for value in values:
        candidate = clone(student).set_params(**{param: value})
        proba = cross_val_proba(candidate, X, y, n_splits, random_state, extra=extra)
        loss = float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), truth], 1e-6, 1.0))))
        if best is None or loss < best[0]:
            best = (loss, value, proba)
    if best is None:
        raise ValueError("no values to choose from")
    return best[1], best[2]
