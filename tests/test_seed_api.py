"""The chapter's functions, importable from `labelloop` itself, on the chapter's own inputs."""

from __future__ import annotations

import pytest

import labelloop
from test_calibration_seed import SEED_GRID, seed_data


def test_seed_names_are_exported():
    for name in (
        "llm_prelabel",
        "PreLabel",
        "find_optimal_threshold",
        "uncertainty_sampling",
        "diversity_sampling",
        "hybrid_acquisition",
        "cohens_kappa",
        "fleiss_kappa",
        "krippendorff_alpha",
    ):
        assert callable(getattr(labelloop, name)), name
    with pytest.raises(AttributeError):
        labelloop.not_a_function  # noqa: B018


def test_seed_kappas_from_the_top_level():
    human_a = ["pos", "neg", "neu", "pos", "neg", "pos", "neu", "neg", "pos", "neu"]
    human_b = ["pos", "neg", "pos", "pos", "neg", "pos", "neg", "neg", "pos", "neu"]
    llm = ["pos", "neg", "neu", "pos", "neg", "pos", "neu", "neg", "pos", "pos"]
    # Observed agreement 0.8 and chance 0.35 for the two humans: (0.8 - 0.35) / 0.65.
    assert labelloop.cohens_kappa(human_a, human_b) == pytest.approx(0.45 / 0.65)
    assert round(labelloop.cohens_kappa(llm, human_a), 3) == 0.846
    assert round(labelloop.cohens_kappa(llm, human_b), 3) == 0.508


def test_seed_threshold_search_from_the_top_level():
    confidences, llm_labels, gold = seed_data()
    grid = labelloop.find_optimal_threshold(
        confidences, llm_labels, gold, 0.3, thresholds=SEED_GRID
    )
    assert (grid["optimal_threshold"], grid["expected_accuracy"], grid["human_review_rate"]) == (
        0.6,
        0.87,
        0.225,
    )
    exact = labelloop.find_optimal_threshold(confidences, llm_labels, gold, 0.3)
    assert exact["expected_accuracy"] >= grid["expected_accuracy"]
    assert exact["human_review_rate"] <= 0.3
