"""Routing, final-label resolution and stats, on both databases."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from labelloop import InputError
from labelloop.routing import Vote, is_confident, resolve_human_label


@dataclass
class Result:
    label: str | None
    confidence: float | None
    probs: dict | None = None
    reasoning: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None
    raw: str | None = None


def predicted_project(make_project, rows):
    """A project whose items carry predictions: rows of (uid, text, label, confidence)."""
    project = make_project()
    project.add_items([{"id": uid, "text": text} for uid, text, _, _ in rows], id_col="id")
    ids = {uid: project.item_id(uid) for uid, *_ in rows}
    project.save_predictions(
        "m", "v1", [(ids[uid], Result(label, conf)) for uid, _, label, conf in rows]
    )
    project.set_active_predictor("m", "v1")
    return project


ROWS = [
    ("a", "text a", "positive", 0.95),
    ("b", "text b", "negative", 0.85),
    ("c", "text c", "neutral", 0.60),
    ("d", "text d", None, None),  # failed prediction
]


def states(project):
    return {
        r["id"]: (r["state"], r["label"], r["label_source"]) for r in project.iter_export_rows()
    }


def test_route_default_threshold(make_project):
    project = predicted_project(make_project, ROWS)
    project.add_items(["never pre-labeled"])
    result = project.route()
    assert result["threshold"] == 0.85
    got = states(project)
    assert got["a"] == ("auto_accepted", "positive", "llm")
    assert got["b"] == ("auto_accepted", "negative", "llm")  # at the threshold is accepted
    assert got["c"][0] == "in_review" and got["d"][0] == "in_review"
    assert result["in_review"] == 3  # including the item never pre-labeled
    assert result["auto_accepted"] == 2


def test_route_moves_items_when_threshold_changes(make_project):
    project = predicted_project(make_project, ROWS)
    project.route(0.5)
    assert states(project)["c"][0] == "auto_accepted"
    project.route(0.9)
    got = states(project)
    assert got["b"] == ("in_review", None, None)
    assert project.stats().threshold == 0.9
    with pytest.raises(InputError):
        project.route(1.5)


def test_per_label_thresholds(make_project):
    project = predicted_project(make_project, ROWS)
    project.update_settings(label_thresholds={"positive": 0.99})
    project.route(0.5)
    got = states(project)
    assert got["a"][0] == "in_review"  # positive needs 0.99
    assert got["c"][0] == "auto_accepted"


def test_human_label_wins_and_undo_restores(make_project):
    project = predicted_project(make_project, ROWS)
    project.route()
    answer = project.annotate("a", action="correct", label="negative", annotator="ann")
    assert states(project)["a"] == ("human_labeled", "negative", "human")
    project.route(0.1)  # routing never overrides a human label
    assert states(project)["a"] == ("human_labeled", "negative", "human")
    project.undo_annotation(answer["annotation_id"])
    assert states(project)["a"] == ("auto_accepted", "positive", "llm")


def test_accept_reject_skip(make_project):
    project = predicted_project(make_project, ROWS)
    project.route()
    project.annotate("c", action="accept", annotator="ann")
    assert states(project)["c"] == ("human_labeled", "neutral", "human")
    project.annotate("a", action="reject", annotator="ann")  # an audit says the LLM is wrong
    assert states(project)["a"] == ("in_review", None, None)
    project.route()  # routing again does not accept a rejected suggestion
    assert states(project)["a"] == ("in_review", None, None)
    project.annotate("d", action="skip", annotator="ann")
    assert states(project)["d"][0] == "in_review"
    with pytest.raises(InputError, match="no suggestion"):
        project.annotate("d", action="accept")
    with pytest.raises(InputError, match="not in the label set"):
        project.annotate("d", action="label", label="maybe")


def test_stats_keys_and_gold_accuracy(make_project):
    project = predicted_project(make_project, ROWS)
    project.add_items(
        [
            {"id": "g1", "text": "gold one", "label": "positive"},
            {"id": "g2", "text": "gold two", "label": "negative"},
        ],
        id_col="id",
        split="gold",
    )
    ids = [project.item_id("g1"), project.item_id("g2")]
    project.save_predictions(
        "m", "v1", [(ids[0], Result("positive", 0.9)), (ids[1], Result("positive", 0.7))]
    )
    project.refresh_item_predictions()
    project.route()
    stats = project.stats().to_dict()
    for key in (
        "items",
        "gold",
        "predicted",
        "auto_accepted",
        "in_review",
        "human_labeled",
        "unresolved",
        "gold_accuracy",
    ):
        assert key in stats
    assert stats["gold"] == 2 and stats["items"] == 6
    assert stats["gold_accuracy"] == pytest.approx(0.5)
    assert stats["predicted"] == 5


def test_save_predictions_is_idempotent(make_project):
    project = predicted_project(make_project, ROWS)
    item = project.item_id("a")
    assert project.save_predictions("m", "v1", [(item, Result("negative", 0.1))]) == 0
    assert project.save_predictions("m", "v2", [(item, Result("negative", 0.1))]) == 1
    assert states(project)["a"][0] == "unresolved"


def test_resolve_majority_and_ties():
    votes = [Vote(1, "a", "label", 1), Vote(2, "b", "label", 2), Vote(3, "b", "label", 3)]
    assert resolve_human_label(votes) == "b"
    assert resolve_human_label(votes[:2]) == "b"  # tie: the latest answer wins
    assert resolve_human_label([Vote(1, "a", "label", 1), Vote(1, "b", "correct", 2)]) == "b"
    assert resolve_human_label([Vote(1, None, "reject", 1)]) is None
    assert not is_confident("a", float("nan"), 0.5)
    assert is_confident("a", 0.5, 0.5) and not is_confident(None, 0.9, 0.5)
