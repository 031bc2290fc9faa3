"""The zero-shot labeler: label texts, prototypes and probabilities, and its accuracy on the
bundled sample reviews with the shipped embedder."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pytest

from labelloop.active import get_embedder
from labelloop.labelers.base import LabelTask
from labelloop.labelers.zero_shot import (
    ZeroShotLabeler,
    label_texts,
    prototypes,
    zero_shot_proba,
)


def test_label_texts_hold_names_descriptions_and_the_guideline_lines_naming_them():
    task = LabelTask(
        "Classify the topic.",
        ["sport", "tech_news"],
        label_descriptions={"sport": "games, matches and athletes"},
        guidelines="# Rules\n- A transfer fee is still sport.\n"
        "Anything about phones is tech_news.\nSporting goods makers are business.",
    )
    sport, tech = label_texts(task)
    assert sport == [
        "Classify the topic. sport",
        "sport: games, matches and athletes",
        "A transfer fee is still sport.",
    ]
    # "Sporting" is not the word "sport"; tech_news matches with its underscore.
    assert tech == ["Classify the topic. tech news", "Anything about phones is tech_news."]


def test_probabilities_follow_similarity_after_centring():
    labels = np.eye(3)[:2]  # two prototypes along the first two axes
    items = np.array([[1.0, 0.1, 0.5], [0.1, 1.0, 0.5], [0.6, 0.5, 0.5]])
    p = zero_shot_proba(items, labels, temperature=0.05)
    assert p.shape == (3, 2) and np.allclose(p.sum(axis=1), 1)
    assert p[0].argmax() == 0 and p[1].argmax() == 1
    # A prototype close to every item wins nowhere by that alone: similarities are centred.
    generic = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]])
    q = zero_shot_proba(items, prototypes([generic[:1], generic[1:]]), temperature=0.05)
    assert q[1].argmax() == 1 and q[0].argmax() == 0


def test_bad_shapes_and_temperature_are_refused():
    with pytest.raises(ValueError, match="shapes"):
        zero_shot_proba(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="temperature"):
        zero_shot_proba(np.ones((2, 3)), np.ones((2, 3)), temperature=0)


def _sample_reviews() -> tuple[list[str], list[str]]:
    """The bundled gold and pool reviews with their labels (the pool's reference labels)."""
    rows = []
    for name in ("reviews_gold.csv", "reviews_pool.csv"):
        path = resources.files("labelloop.sample_data") / name
        with path.open(encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    return [r["text"] for r in rows], [r.get("label") or r["reference_label"] for r in rows]


def test_beats_chance_on_the_sample_reviews_without_a_label():
    texts, truth = _sample_reviews()
    embedder = get_embedder("onnx")
    labels = sorted(set(truth))
    zero_shot = ZeroShotLabeler(LabelTask("Classify the sentiment.", labels), embedder)
    p = zero_shot.predict_proba(embedder.embed(texts))
    accuracy = np.mean([labels[i] == t for i, t in zip(p.argmax(axis=1), truth, strict=True)])
    majority = max(truth.count(label) for label in labels) / len(truth)
    # 400 reviews: chance is 0.5 with a standard error of 0.025.
    assert accuracy > max(0.58, majority + 0.05)
    described = ZeroShotLabeler(
        LabelTask("Classify the sentiment.", labels, label_descriptions={labels[0]: "bad film"}),
        embedder,
    )
    assert described.version != zero_shot.version  # descriptions change the version
