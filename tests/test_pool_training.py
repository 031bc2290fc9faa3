"""Students trained on more than the trusted labels: soft labels and n-gram features."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from labelloop.active import LogisticStudent, cross_val_proba
from labelloop.active.pool_training import ngram_features, soft_labels
from labelloop.active.students import ExtraRows, with_extra


def test_soft_labels_weigh_each_label_by_its_probability():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    candidates = np.array([True, True, True, False])
    soft = soft_labels(proba, candidates, weight=0.5)
    assert set(soft.rows.tolist()) == {0, 1, 2}  # the trusted item is never a soft row
    for row, label, w in zip(soft.rows, soft.labels, soft.weights, strict=True):
        assert w == pytest.approx(0.5 * proba[row, label])
    # per item, the weights add up to the weight given
    assert np.bincount(soft.rows, soft.weights)[:3] == pytest.approx([0.5, 0.5, 0.5])


def test_soft_labels_keep_the_most_confident_and_skip_missing_answers():
    proba = np.array([[0.55, 0.45], [0.99, 0.01], [np.nan, np.nan], [0.7, 0.3], [0.2, 0.8]])
    everything = np.ones(5, dtype=bool)
    assert set(soft_labels(proba, everything, max_items=2).rows.tolist()) == {1, 4}
    assert set(soft_labels(proba, everything, min_confidence=0.75).rows.tolist()) == {1, 4}
    assert 2 not in soft_labels(proba, everything).rows
    assert len(soft_labels(proba, everything, max_items=0)) == 0
    with pytest.raises(ValueError):
        soft_labels(proba, everything, min_confidence=1.5)


def test_extra_rows_reach_every_fold_but_are_never_predicted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = (X[:, 0] > 0).astype(int)
    few = np.arange(12)
    # Labels for the first 12 items contradict the rule; 388 soft rows teach the rule.
    y_few = 1 - y[few]
    alone = cross_val_proba(LogisticStudent(classes=[0, 1]), X[few], y_few, 3)
    extra = ExtraRows(X[12:], y[12:], np.full(388, 1.0))
    helped = cross_val_proba(LogisticStudent(classes=[0, 1]), X[few], y_few, 3, extra=extra)
    assert alone.shape == helped.shape == (12, 2)
    # with the extra rows the folds follow the rule the extra rows teach
    assert (helped.argmax(axis=1) == y[few]).mean() > (alone.argmax(axis=1) == y[few]).mean()


def test_with_extra_stacks_dense_and_sparse_rows_alike():
    X, y = np.eye(3), np.array([0, 1, 0])
    extra = ExtraRows(np.ones((2, 3)), np.array([1, 1]), np.array([0.2, 0.3]))
    for features in (X, sp.csr_matrix(X)):
        stacked, labels, weights = with_extra(features, y, extra)
        assert stacked.shape == (5, 3) and sp.issparse(stacked) == sp.issparse(features)
        assert labels.tolist() == [0, 1, 0, 1, 1]
        assert weights.tolist() == [1, 1, 1, 0.2, 0.3]
    assert with_extra(X, y, None)[2] is None


def test_ngram_features_see_words_a_sentence_vector_would_blur():
    texts = ["the striker scored a goal", "a late goal for the striker", "shares fell sharply"]
    texts += [f"filler text number {i}" for i in range(60)]
    F = ngram_features(texts)
    assert sp.issparse(F) and F.shape[0] == len(texts)
    similarity = (F @ F.T).toarray()
    assert similarity[0, 1] > similarity[0, 2]
    norms = np.sqrt(np.asarray(F.multiply(F).sum(axis=1)).ravel())
    assert norms.max() <= 1 + 1e-5 and np.isclose(norms[0], 1.0, atol=1e-5)


def test_ngram_features_fit_on_a_sample_of_a_large_pool():
    texts = [f"word{i % 7} other{i % 3}" for i in range(300)]
    F = ngram_features(texts, fit_on=50)
    assert F.shape[0] == 300 and F.nnz > 0
    assert ngram_features(["", ""]).shape[0] == 2  # no vocabulary: still one row per text


def test_cross_val_select_takes_the_value_with_the_lowest_out_of_fold_log_loss():
    from labelloop.active.students import cross_val_select

    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 4)) * 0.05  # small-norm vectors: C=1 leaves them underfitted
    y = (X[:, 0] > 0).astype(int)
    student = LogisticStudent(classes=[0, 1])
    c, proba = cross_val_select(student, X, y, "C", (1.0, 1000.0), 4)
    assert c == 1000.0
    assert np.allclose(proba, cross_val_proba(student.set_params(C=1000.0), X, y, 4))
    single, _ = cross_val_select(student, X, y, "C", (3.0,), 4)
    assert single == 3.0
