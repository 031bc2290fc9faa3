"""Confident learning finds planted label flips."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from labelloop.agreement import confident_joint, find_label_issues, label_quality_scores


@cache
def _noisy_problem(seed: int, rate: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True labels, labels with `rate` of them flipped to another class, out-of-fold probs."""
    x, y = make_classification(
        1500, 10, n_informative=6, n_classes=4, n_clusters_per_class=1, class_sep=2.0,
        random_state=seed,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    flipped = rng.random(y.size) < rate
    noisy = np.where(flipped, (y + rng.integers(1, 4, y.size)) % 4, y)
    model = LogisticRegression(max_iter=1000)
    probs = cross_val_predict(model, x, noisy, cv=5, method="predict_proba")
    return y, noisy, probs


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "confident_joint"])
def test_planted_flips_are_found(seed: int, filter_by: str) -> None:
    truth, noisy, probs = _noisy_problem(seed)
    flipped = truth != noisy
    issues = find_label_issues(noisy, probs, filter_by=filter_by)
    found = np.zeros(truth.size, dtype=bool)
    found[issues.indices] = True
    assert (found & flipped).sum() / found.sum() > 0.75  # precision
    assert (found & flipped).sum() / flipped.sum() > 0.7  # recall
    real = flipped[issues.indices]  # for true flips, the suggestion is the original label
    assert np.mean(issues.suggested[real] == truth[issues.indices][real]) > 0.85
    assert np.all(np.diff(issues.scores) >= 0)  # most suspicious first


def test_top_suspects_are_the_surest_flips() -> None:
    truth, noisy, probs = _noisy_problem(1)
    top = find_label_issues(noisy, probs, max_issues=40, rank_by="normalized_margin").indices
    assert top.size == 40
    assert np.mean(truth[top] != noisy[top]) > 0.9


def test_matches_cleanlab() -> None:
    cleanlab_filter = pytest.importorskip("cleanlab.filter")
    _, noisy, probs = _noisy_problem(2)
    for ours, theirs in (("prune_by_noise_rate", "prune_by_noise_rate"),
                         ("confident_joint", "confident_learning")):  # fmt: skip
        found = np.zeros(noisy.size, dtype=bool)
        found[find_label_issues(noisy, probs, filter_by=ours).indices] = True
        reference = cleanlab_filter.find_label_issues(noisy, probs, filter_by=theirs)
        assert (found & reference).sum() / (found | reference).sum() > 0.95


def test_thresholds_are_per_class_mean_self_confidence() -> None:
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6], [0.8, 0.2]])
    thresholds, confident, joint = confident_joint(labels, probs)
    assert thresholds == pytest.approx([0.8, 0.4])
    # item 3 (labeled 1) is above both thresholds; its confident class is the larger: 0
    assert confident.tolist() == [0, -1, 1, 0]
    assert joint.tolist() == [[1, 0], [1, 1]]
    assert label_quality_scores(labels, probs).tolist() == [0.9, 0.7, 0.6, 0.2]


def test_clean_data_yields_no_suspects() -> None:
    truth = np.random.default_rng(0).integers(0, 4, 1000)
    probs = np.full((truth.size, 4), 0.02)
    probs[np.arange(truth.size), truth] = 0.94
    assert find_label_issues(truth, probs).indices.size == 0


@pytest.mark.parametrize(
    ("labels", "probs"),
    [
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]]),
        ([0.5, 1], [[0.5, 0.5], [0.5, 0.5]]),
        ([0], [[np.nan, 1.0]]),
        ([], np.zeros((0, 2))),
    ],
)
def test_bad_input_raises(labels: list, probs: list) -> None:
    with pytest.raises(ValueError):
        find_label_issues(np.asarray(labels), np.asarray(probs))
