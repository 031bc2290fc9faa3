"""The project's results keep their JSON form: queue settings (`PUT /queues/settings`, the
dashboard), a withdrawn answer and the audit estimate send the keys, in order, they always
have."""

from __future__ import annotations

from typing import Any

import pytest

from labelloop import review
from test_review_service import seed, user

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

SETTINGS = [
    "overlap",
    "overlap_share",
    "gold_rate",
    "audit_rate",
    "lease_minutes",
    "overlap_mode",
    "overlap_target",
    "overlap_cap",
]


def sent(result: Any) -> dict[str, Any]:
    """What `--json` and the API send of a result."""
    return result.to_dict() if hasattr(result, "to_dict") else result


def test_queue_settings_send_every_setting_in_order(make_project) -> None:
    project = make_project()
    changed = sent(project.set_queue_settings(overlap=2, audit_rate=0.5))
    assert list(changed) == SETTINGS
    assert (changed["overlap"], changed["audit_rate"], changed["gold_rate"]) == (2, 0.5, 0.0)
    assert sent(review.queue_settings(project)) == changed
    assert sent(review.set_queue_settings(project, overlap_mode="adaptive")) == {
        **changed,
        "overlap_mode": "adaptive",
    }


def test_a_withdrawn_answer_and_the_audit_estimate_keep_their_keys(make_project) -> None:
    project = make_project()
    ids = seed(project, 0, n_confident=4)
    assert project.audit_estimate() is None
    review.sample_audit(project, 1.0, random_state=0)
    ann = user(project, "ann")
    answered = []
    for action in ("accept", "accept", "reject"):
        item = review.next_item(project, ann.id)
        assert item["id"] in ids["confident"]
        answered.append(review.submit(project, ann, item["id"], action=action).to_dict())
    estimate = sent(project.audit_estimate())
    assert list(estimate) == [
        "n_audited",
        "n_correct",
        "accuracy",
        "lower",
        "upper",
        "confidence_level",
    ]
    assert (estimate["n_audited"], estimate["n_correct"]) == (3, 2)
    assert estimate["lower"] <= estimate["accuracy"] <= estimate["upper"]

    undone = sent(project.undo_annotation(answered[-1]["annotation_id"]))
    assert list(undone) == ["annotation_id", "item", "state", "label"]
    assert undone["annotation_id"] == answered[-1]["annotation_id"]
    assert sent(project.audit_estimate())["n_audited"] == 2


BOARD = [
    "stats",
    "progress",
    "review_rate",
    "answers_last_hour",
    "queues",
    "queue_settings",
    "annotators",
    "auto_accepted_accuracy",
    "agreement",
    "plots",
]


def test_the_dashboard_sends_its_sections_in_order(make_project) -> None:
    project = make_project()
    seed(project, 3, n_confident=2)
    ann = user(project, "ann")
    item = review.next_item(project, ann.id)
    review.submit(project, ann, item["id"], action="correct", label="neutral")
    board = sent(review.dashboard(project))
    assert list(board) == BOARD
    assert board["stats"] == project.stats().to_dict()
    assert list(board["queue_settings"]) == SETTINGS
    assert list(board["queues"]["review"]) == list(review.queue_counts(project)["review"].to_dict())
    assert board["answers_last_hour"] == 1
    full = sent(project.dashboard())
    assert list(full) == [*BOARD, "calibration_plots", "annotator_quality", "predictor"]
    assert {k: v for k, v in full.items() if k in BOARD} == board
