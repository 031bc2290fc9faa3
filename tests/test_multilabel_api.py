"""The review API on a multi-label project: an answer is a list of labels."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from labelloop import Project, review
from labelloop.labelers.multilabel import multi_label_result
from labelloop.server import create_app

LABELS = ["business", "sport", "tech"]
pytestmark = pytest.mark.usefixtures("fast_password_hashing")


@pytest.fixture
def project(tmp_path, db_url):
    project = Project.create(
        tmp_path / "p", task="Topics.", labels=LABELS, db=db_url, multi_label=True
    )
    project.add_items([{"id": f"i{k}", "text": f"text {k}"} for k in range(3)])
    results = [
        (project.item_id(f"i{k}"), multi_label_result(LABELS, [0.5, 0.6, 0.1])) for k in range(3)
    ]
    project.save_predictions("m", "v1", results)
    project.set_active_predictor("m", "v1")
    project.route(threshold=0.9)  # every item has an uncertain label: all in review
    review.add_user(project, "ann", password="ann-password")
    review.add_user(project, "bob", password="bob-password")
    yield project
    project.close()


def test_answers_are_label_lists_on_served_items(project):
    with TestClient(create_app(project), follow_redirects=False) as client:
        ann = {"Authorization": f"Bearer {review.create_token(project, 'ann')}"}
        bob = {"Authorization": f"Bearer {review.create_token(project, 'bob')}"}
        served = client.get("/api/v1/queue/next", headers=ann).json()
        item = served["id"]
        single = client.post(
            f"/api/v1/items/{item}/annotations",
            json={"action": "correct", "label": "sport"},
            headers=ann,
        )
        assert single.status_code in (400, 422)
        unknown = client.post(
            f"/api/v1/items/{item}/annotations",
            json={"action": "correct", "labels": ["weather"]},
            headers=ann,
        )
        assert unknown.status_code in (400, 422)
        not_held = client.post(
            f"/api/v1/items/{item}/annotations",
            json={"action": "correct", "labels": ["sport"]},
            headers=bob,
        )
        assert not_held.status_code == 409
        answered = client.post(
            f"/api/v1/items/{item}/annotations?next=true",
            json={"action": "correct", "labels": ["Sport", "tech"], "time_spent_s": 2.5},
            headers=ann,
        )
        assert answered.status_code == 201, answered.text
        assert answered.json()["next"]["id"] != item
        again = client.post(
            f"/api/v1/items/{item}/annotations", json={"action": "accept"}, headers=ann
        )
        assert again.status_code == 409
        undone = client.post("/api/v1/undo", headers=ann)
        assert undone.status_code == 200 and undone.json()["item"]["id"] == item
        assert all(row["labels"] is None for row in project.iter_export_rows())
        answer = {"action": "correct", "labels": ["sport", "tech"], "time_spent_s": 2.5}
        redone = client.post(f"/api/v1/items/{item}/annotations", json=answer, headers=ann)
        assert redone.status_code == 201, redone.text
    rows = {row["id"]: row for row in project.iter_export_rows(include="annotations")}
    (row,) = [r for r in rows.values() if r["labels"] is not None]
    assert row["labels"] == ["sport", "tech"] and row["state"] == "human_labeled"
    assert [(a["annotator"], a["labels"], a["time_spent_s"]) for a in row["annotations"]] == [
        ("ann", ["sport", "tech"], 2.5)
    ]


def test_a_single_label_project_refuses_a_list(make_project):
    project = make_project()
    project.add_items(["a text"])
    review.add_user(project, "ann", password="ann-password")
    project.route()
    with TestClient(create_app(project), follow_redirects=False) as client:
        ann = {"Authorization": f"Bearer {review.create_token(project, 'ann')}"}
        item = client.get("/api/v1/queue/next", headers=ann).json()["id"]
        sent = client.post(
            f"/api/v1/items/{item}/annotations",
            json={"action": "label", "labels": ["positive"]},
            headers=ann,
        )
        assert sent.status_code in (400, 422)


def test_served_items_carry_the_suggested_set_and_each_labels_probability(project):
    with TestClient(create_app(project), follow_redirects=False) as client:
        ann = {"Authorization": f"Bearer {review.create_token(project, 'ann')}"}
        info = client.get("/api/v1/project", headers=ann).json()
        served = client.get("/api/v1/queue/next", headers=ann).json()
        answered = client.post(
            f"/api/v1/items/{served['id']}/annotations?next=true",
            json={"action": "accept"},
            headers=ann,
        )
        following = answered.json()["next"]
        undone_item = client.post("/api/v1/undo", headers=ann).json()["item"]
    assert info["multi_label"] is True
    expected = {
        "labels": ["business", "sport"],  # p >= 1/2
        "probs": {"business": 0.5, "sport": 0.6, "tech": 0.1},
        "calibrated": False,
        "uncertain": ["business", "sport"],  # tech (0.1) is confident at 0.9
    }
    for shown in (served, following, undone_item):
        assert shown["suggested_set"] == expected


def test_single_label_items_have_no_suggested_set(tmp_path, db_url):
    single = Project.create(tmp_path / "s", task="Sentiment.", labels=["pos", "neg"], db=db_url)
    single.add_items([{"id": "a", "text": "fine"}])
    review.enqueue(single, [single.item_id("a")], queue="review")
    review.add_user(single, "ann", password="ann-password")
    with TestClient(create_app(single), follow_redirects=False) as client:
        ann = {"Authorization": f"Bearer {review.create_token(single, 'ann')}"}
        served = client.get("/api/v1/queue/next", headers=ann).json()
        info = client.get("/api/v1/project", headers=ann).json()
    single.close()
    assert list(served) == ["id", "uid", "text", "truncated", "suggestion", "queue"]
    assert info["multi_label"] is False


def test_served_probabilities_are_the_calibrated_ones(tmp_path, db_url):
    from labelloop.multilabel import PerLabelCalibrator
    from labelloop.store import Calibration, Item, Prediction
    from test_multilabel_project import _simulated

    with Project.create(
        tmp_path / "c", task="Topics.", labels=LABELS, db=db_url, multi_label=True
    ) as calibrated:
        _simulated(calibrated)
        calibrated.calibrate(budget=0.5, method="platt")
        calibrated.route()
        review.add_user(calibrated, "ann", password="ann-password")
        with TestClient(create_app(calibrated), follow_redirects=False) as client:
            ann = {"Authorization": f"Bearer {review.create_token(calibrated, 'ann')}"}
            served = client.get("/api/v1/queue/next", headers=ann).json()
        with calibrated.store.session() as session:
            item = session.get_one(Item, served["id"])
            probs = session.get_one(Prediction, item.prediction_id).probs
            stored = session.scalars(select(Calibration.calibrator)).one()
            expected_set, asked = item.llm_labels, item.uncertain_labels
    proba = PerLabelCalibrator.from_dict(stored).transform([[probs[lab] for lab in LABELS]])
    shown = served["suggested_set"]
    assert shown["calibrated"] is True
    assert shown["probs"] == pytest.approx(dict(zip(LABELS, proba[0], strict=True)), abs=1e-4)
    assert shown["probs"]["sport"] != pytest.approx(probs["sport"], abs=1e-3)  # moved
    assert shown["labels"] == expected_set and shown["uncertain"] == asked


def test_a_persons_own_answers_carry_their_sets(project):
    with TestClient(create_app(project), follow_redirects=False) as client:
        ann = {"Authorization": f"Bearer {review.create_token(project, 'ann')}"}
        item = client.get("/api/v1/queue/next", headers=ann).json()["id"]
        answered = client.post(
            f"/api/v1/items/{item}/annotations",
            json={"action": "correct", "labels": ["tech", "sport"]},
            headers=ann,
        )
        assert answered.status_code == 201, answered.text
        (mine,) = client.get("/api/v1/annotations/mine", headers=ann).json()
    assert (mine["item_id"], mine["label"], mine["labels"]) == (item, None, ["sport", "tech"])


def test_a_gold_check_on_sets_shows_what_was_missed_and_added(project):
    import random

    project.add_items(
        [{"id": f"g{k}", "text": f"gold {k}", "labels": ["sport", "tech"]} for k in range(3)],
        label_col="labels",
        split="gold",
    )
    review.set_queue_settings(project, gold_rate=0.99)
    project.set_guidelines(label_descriptions={"sport": "Games and athletes", "tech": ""})
    random.seed(0)  # gold checks are drawn at random: the same draws on every run
    with TestClient(create_app(project), follow_redirects=False) as client:
        ann = {"Authorization": f"Bearer {review.create_token(project, 'ann')}"}
        served = client.get("/api/v1/queue/next", headers=ann).json()
        assert served["uid"].startswith("g")
        quiet = client.post(
            f"/api/v1/items/{served['id']}/annotations",
            json={"action": "label", "labels": ["tech", "business"]},
            headers=ann,
        )
        assert quiet.status_code == 201 and "gold_feedback" not in quiet.json()  # off by default
        assert client.post("/api/v1/undo", headers=ann).status_code == 200
        project.set_gold_feedback(True)
        answered = client.post(
            f"/api/v1/items/{served['id']}/annotations",
            json={"action": "label", "labels": ["tech", "business"]},
            headers=ann,
        )
        assert answered.status_code == 201, answered.text
        assert answered.json()["gold_feedback"] == {
            "expected_labels": ["sport", "tech"],
            "your_labels": ["business", "tech"],
            "correct": False,
            "missing": ["sport"],
            "extra": ["business"],
            "descriptions": {"sport": "Games and athletes"},
            "guidelines_version": 1,
        }
        again = client.post("/api/v1/undo", headers=ann)
        assert again.status_code == 409  # the gold set was shown: the answer stays
        following = client.get("/api/v1/queue/next", headers=ann).json()
        right = client.post(
            f"/api/v1/items/{following['id']}/annotations",
            json={"action": "label", "labels": ["tech", "sport"]},
            headers=ann,
        )
    assert following["uid"].startswith("g") and following["id"] != served["id"]
    feedback = right.json()["gold_feedback"]
    assert feedback["correct"] and feedback["missing"] == feedback["extra"] == []


SET_REPLY = ["annotation_id", "item_id", "action", "gold_feedback", "next"]
SET_FEEDBACK = ["expected_labels", "your_labels", "correct", "missing", "extra", "descriptions"]
SHOWN = ["id", "uid", "text", "truncated", "suggestion", "queue", "suggested_set"]
SUGGESTED_SET = ["labels", "probs", "calibrated", "uncertain"]


def test_the_set_answer_reply_keeps_its_keys_and_their_order(project):
    """What `submit_set` sends after a set answer, key by key in order (`--json` and API
    clients read it), and what the API sends of it."""
    import random

    from labelloop.review.accounts import Principal
    from labelloop.review.labelsets import submit_set

    project.add_items(
        [{"id": "g0", "text": "gold 0", "labels": ["sport"]}], label_col="labels", split="gold"
    )
    review.set_queue_settings(project, gold_rate=0.99)
    project.set_gold_feedback(True)
    ann = Principal(review.get_user(project, "ann").id, "ann", "annotator")
    random.seed(0)  # gold checks are drawn at random: the same draws on every run
    served = review.next_item(project, ann.id)
    assert served is not None and served.uid == "g0"
    gold = submit_set(project, ann, served.id, action="label", labels=["tech"], then_next=True)
    sent = gold.to_dict()
    assert list(sent) == SET_REPLY
    assert list(sent["gold_feedback"]) == [*SET_FEEDBACK, "guidelines_version"]
    assert list(sent["next"]) == SHOWN and list(sent["next"]["suggested_set"]) == SUGGESTED_SET
    plain = submit_set(project, ann, sent["next"]["id"], action="accept").to_dict()
    assert list(plain) == SET_REPLY[:3]
    review.set_queue_settings(project, gold_rate=0.0)
    with TestClient(create_app(project), follow_redirects=False) as client:
        bob = {"Authorization": f"Bearer {review.create_token(project, 'bob')}"}
        item = client.get("/api/v1/queue/next", headers=bob).json()["id"]
        replied = client.post(
            f"/api/v1/items/{item}/annotations?next=true",
            json={"action": "label", "labels": ["tech"]},
            headers=bob,
        ).json()
    assert list(replied) == ["annotation_id", "item_id", "action", "next"]
    assert list(replied["next"]) == SHOWN
    assert list(replied["next"]["suggested_set"]) == SUGGESTED_SET
