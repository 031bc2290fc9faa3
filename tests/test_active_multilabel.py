import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import KFold

from labelloop.active import (
    MULTILABEL_STRATEGIES,
    STRATEGIES,
    OneVsRestStudent,
    cross_val_proba_multilabel,
    get_multilabel_strategy,
)
from labelloop.active.strategies import Pool
from labelloop.active.strategies.multilabel import (
    expected_loss_reduction,
    label_count_features,
    label_uncertainty,
    predict_label_counts,
)
from labelloop.multilabel import micro_f1


def pool(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10)).astype(np.float32)
    y = (x[:, :4] + 0.4 * rng.normal(size=(n, 4))) > 0.5
    return x, y


def test_student_learns_each_label_and_keeps_the_column_order():
    x, y = pool()
    student = OneVsRestStudent(random_state=0).fit(x[:300], y[:300])
    proba = student.predict_proba(x[300:])
    assert proba.shape == (300, 4)
    assert micro_f1(y[300:], student.predict(x[300:]), n_boot=10).estimate > 0.8
    # Column j follows feature j: swapping two label columns swaps the probabilities.
    swapped = OneVsRestStudent(random_state=0).fit(x[:300], y[:300][:, [1, 0, 2, 3]])
    np.testing.assert_allclose(swapped.predict_proba(x[300:])[:, 0], proba[:, 1])


def test_a_label_with_one_side_only_gets_a_smoothed_share():
    x, y = pool()
    y = y.copy()
    y[:, 3] = False
    student = OneVsRestStudent().fit(x[:48], y[:48])
    proba = student.predict_proba(x)
    assert np.allclose(proba[:, 3], 1 / 50)
    empty = OneVsRestStudent().fit(x[:0], y[:0])
    assert np.allclose(empty.predict_proba(x[:5]), 0.5)


def test_cross_val_proba_is_out_of_fold():
    x, y = pool()
    x, y = x[:200], y[:200]
    oof = cross_val_proba_multilabel(OneVsRestStudent(), x, y, n_splits=4, random_state=0)
    for train, test in KFold(4, shuffle=True, random_state=0).split(x):
        fold = OneVsRestStudent().fit(x[train], y[train])
        np.testing.assert_allclose(oof[test], fold.predict_proba(x[test]))
    in_sample = clone(OneVsRestStudent()).fit(x, y).predict_proba(x)
    assert not np.allclose(oof, in_sample)


def test_registry_is_separate_from_the_single_label_one():
    assert not set(MULTILABEL_STRATEGIES) & set(STRATEGIES)
    with pytest.raises(ValueError, match="unknown multi-label strategy"):
        get_multilabel_strategy("margin")


def test_mean_and_max_uncertainty_rank_as_defined():
    proba = np.array(
        [
            [0.5, 0.0, 0.0],  # one open label
            [0.3, 0.3, 0.3],  # everything a bit open
            [0.99, 0.01, 0.99],  # settled
            [0.5, 0.5, 0.0],  # two open labels
        ]
    )
    labeled = np.zeros(4, dtype=bool)
    mean = get_multilabel_strategy("ml-mean-uncertainty").select(
        4, proba=proba, labeled_mask=labeled
    )
    assert mean.tolist() == [3, 1, 0, 2]
    top = get_multilabel_strategy("ml-max-uncertainty").select(4, proba=proba, labeled_mask=labeled)
    assert top.tolist() == [3, 0, 1, 2]  # ties at 1.0 go to the larger mean
    np.testing.assert_allclose(label_uncertainty([[0.5, 0.75, 1.0]]), [[1.0, 0.5, 0.0]])


def test_mmc_score_is_the_expected_number_of_wrong_labels():
    proba = np.array([[0.9, 0.6, 0.2], [0.9, 0.6, 0.2]])
    # One label predicted: {0}; two: {0, 1}.
    got = expected_loss_reduction(proba, np.array([1, 2]))
    np.testing.assert_allclose(got, [0.1 + 0.6 + 0.2, 0.1 + 0.4 + 0.2])


def test_mmc_learns_label_counts_from_the_labeled_items():
    rng = np.random.default_rng(0)
    n = 400
    counts = rng.integers(1, 4, n)
    proba = np.zeros((n, 5))
    for i, k in enumerate(counts):
        proba[i, :k] = 0.45 + 0.1 * rng.random(k)  # the true labels sit just under or over 1/2
        proba[i, k:] = 0.05 * rng.random(5 - k)
    labels = np.zeros((n, 5), dtype=bool)
    for i, k in enumerate(counts):
        labels[i, :k] = True
    labeled = np.zeros(n, dtype=bool)
    labeled[:200] = True
    predicted = predict_label_counts(proba, labeled, labels)
    assert (predicted[200:] == counts[200:]).mean() > 0.95
    assert (predict_label_counts(proba, labeled, None)[200:] == counts[200:]).mean() < 0.8
    np.testing.assert_allclose(label_count_features(proba).sum(axis=1), 1.0)


def test_mmc_selects_through_the_strategy_interface():
    x, y = pool()
    labeled = np.zeros(len(x), dtype=bool)
    labeled[:100] = True
    proba = OneVsRestStudent().fit(x[labeled], y[labeled]).predict_proba(x)
    strategy = get_multilabel_strategy("mmc", labels=y)
    picked = strategy.select(20, proba=proba, embeddings=x, labeled_mask=labeled, random_state=0)
    assert len(set(picked.tolist())) == 20 and not labeled[picked].any()
    scores = strategy.scores(Pool(labeled, proba=proba))
    assert scores[picked].min() >= np.sort(scores[~labeled])[-40]
    with pytest.raises(ValueError, match="rows"):
        get_multilabel_strategy("mmc", labels=y[:10]).scores(Pool(labeled, proba=proba))


def test_cold_start_without_labels_uses_the_embeddings():
    x, _ = pool()
    labeled = np.zeros(len(x), dtype=bool)
    picked = get_multilabel_strategy("ml-mean-uncertainty").select(
        8, proba=np.full((len(x), 4), 0.5), embeddings=x, labeled_mask=labeled, random_state=0
    )
    assert len(set(picked.tolist())) == 8
