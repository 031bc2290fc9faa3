"""Adjudication on a multi-label project, on both databases: answers that are different sets
disagree, the reviewer sees each answer's set and decides with a set, undo gives the item its
set back; the API, the command line and the exports take sets."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from labelloop import review
from labelloop.errors import InputError
from labelloop.labelers.multilabel import multi_label_result
from labelloop.review import adjudication
from labelloop.review.accounts import Principal
from labelloop.server import create_app
from test_adjudication import adjudicate_command, people

pytestmark = pytest.mark.usefixtures("fast_password_hashing")
LABELS = ("business", "sport", "tech")


def state_of(project, uid: str) -> tuple:
    row = next(r for r in project.iter_export_rows() if r["id"] == uid)
    return row["state"], row["labels"], row["label_source"]


def split_sets(project) -> tuple:
    """Three uncertain items answered by ann and bob: m0 the same set given in two orders,
    m1 two different sets, m2 one answer. Returns (ids by uid, ann, bob, rita the reviewer)."""
    uids = ["m0", "m1", "m2"]
    project.add_items([{"id": uid, "text": f"topic text {uid}"} for uid in uids])
    ids = {uid: project.item_id(uid) for uid in uids}
    results = [(ids[uid], multi_label_result(LABELS, [0.9, 0.55, 0.3])) for uid in uids]
    project.save_predictions("fake", "v1", results)
    project.set_active_predictor("fake", "v1")
    project.route(threshold=0.95)
    ann, bob = people(project, "ann", "bob")
    (rita,) = people(project, "rita", role="reviewer")
    given = {
        "m0": (["business", "sport"], ["sport", "business"]),
        "m1": (["business"], ["business", "tech"]),
        "m2": (["sport"], None),
    }
    for uid, sets in given.items():
        for who, labels in zip((ann, bob), sets, strict=True):
            if labels is not None:
                project.annotate(uid, action="correct", labels=labels, annotator=who.id)
    return ids, ann, bob, rita


@pytest.fixture
def team(make_project):
    project = make_project(labels=LABELS, task="Topics.", multi_label=True)
    return (project, *split_sets(project))


def test_different_sets_wait_for_a_reviewer_who_decides_with_a_set(team) -> None:
    project, ids, _ann, _bob, rita = team
    listed = adjudication.queue(project, rita).to_dict()
    assert [(i["uid"], i["reasons"]) for i in listed["items"]] == [("m1", ["disagreement"])]
    assert project.stats().adjudication_waiting == 1  # the kept flag says the same
    before = state_of(project, "m1")
    assert before[0] == "human_labeled" and listed["items"][0]["labels"] == before[1]

    shown = adjudication.next_case(project, rita).to_dict()
    assert shown["id"] == ids["m1"]
    assert [(a["annotator"], a["labels"], a["action"]) for a in shown["answers"]] == [
        ("Annotator 1", ["business"], "correct"),
        ("Annotator 2", ["business", "tech"], "correct"),
    ]
    assert shown["labels"] == before[1] and shown["label"] is None
    assert shown["suggested_set"]["labels"] == ["business", "sport"]

    with pytest.raises(InputError, match="labels"):
        adjudication.decide(project, rita, ids["m1"], "tech")
    with pytest.raises(InputError, match="not in the label set"):
        adjudication.decide(project, rita, ids["m1"], labels=["weather"])
    with pytest.raises(InputError, match="empty"):
        adjudication.decide(project, rita, ids["m1"], labels=[])
    done = adjudication.decide(
        project, rita, ids["m1"], labels=["TECH", "sport"], note="both"
    ).to_dict()
    assert done["labels"] == ["sport", "tech"] and done["previous_labels"] == before[1]
    assert done["label"] is None and done["state"] == "human_labeled"
    assert state_of(project, "m1") == ("human_labeled", ["sport", "tech"], "adjudicated")
    assert adjudication.queue(project, rita).count == 0
    assert project.stats().adjudication_waiting == 0
    decided = adjudication.case(project, rita, ids["m1"]).to_dict()["decision"]
    assert decided["labels"] == ["sport", "tech"] and decided["note"] == "both"

    undone = adjudication.undo(project, rita).to_dict()
    assert undone["item"]["labels"] == before[1] and undone["item"]["reasons"] == ["disagreement"]
    assert state_of(project, "m1") == before
    assert project.stats().adjudication_waiting == 1

    # A decision stands whatever answers come later.
    adjudication.decide(project, rita, ids["m1"], labels=["tech"])
    (carl,) = people(project, "carl")
    project.annotate("m1", action="correct", labels=["business"], annotator=carl.id)
    assert state_of(project, "m1") == ("human_labeled", ["tech"], "adjudicated")


def test_a_set_given_without_a_name_disagrees_like_a_named_one(team) -> None:
    project, _ids, _ann, _bob, rita = team
    project.annotate("m2", action="correct", labels=["tech"])  # no annotator (the Python API)
    listed = adjudication.queue(project, rita)
    assert [i.uid for i in listed.items] == ["m1", "m2"]
    assert project.stats().adjudication_waiting == 2


def test_a_single_label_item_is_not_decided_with_a_set(make_project) -> None:
    project = make_project()
    project.add_items([{"id": "s", "text": "a text"}])
    (rita,) = people(project, "rita", role="reviewer")
    with pytest.raises(InputError, match="not a list"):
        adjudication.decide(project, rita, project.item_id("s"), labels=["positive"])


def test_the_api_takes_a_set(team) -> None:
    project, ids, _ann, _bob, _rita = team
    review.add_user(project, "boss", role="admin", password="boss-password")
    token = {"Authorization": f"Bearer {review.create_token(project, 'boss')}"}
    path = f"/api/v1/adjudication/items/{ids['m1']}/decision"
    with TestClient(create_app(project), follow_redirects=False) as client:
        refused = client.post(path, json={"label": "tech"}, headers=token)
        assert refused.status_code == 400
        made = client.post(path, json={"labels": ["business", "sport"]}, headers=token)
        assert made.status_code == 201, made.text
        assert made.json()["labels"] == ["business", "sport"]
        shown = client.get(f"/api/v1/adjudication/items/{ids['m1']}", headers=token).json()
        assert shown["labels"] == ["business", "sport"]
        assert [a["labels"] for a in shown["answers"]] == [["business"], ["business", "tech"]]
    assert state_of(project, "m1") == ("human_labeled", ["business", "sport"], "adjudicated")


def test_the_command_line_decides_with_a_set(team, cli, capsys) -> None:
    project, _ids, _ann, _bob, _rita = team
    run = adjudicate_command(cli, capsys, project)
    code, listed = run("list")
    assert code == 0 and [i["uid"] for i in listed["items"]] == ["m1"]
    assert run("decide", "m1", "weather", "--as", "rita")[0] == 2
    code, made = run("decide", "m1", "sport;tech", "--as", "rita")
    assert code == 0 and made["labels"] == ["sport", "tech"]
    assert state_of(project, "m1") == ("human_labeled", ["sport", "tech"], "adjudicated")
    code, undone = run("undo", "--as", "rita")
    assert code == 0 and undone["item"] == "m1" and undone["labels"] == ["business", "tech"]


def test_a_decided_set_comes_back_from_an_export(team, make_project, tmp_path) -> None:
    project, ids, _ann, _bob, rita = team
    adjudication.decide(project, rita, ids["m1"], labels=["sport"], note="only sport")
    out = tmp_path / "out.jsonl"
    project.export(out, "jsonl")
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    decision = rows["m1"]["adjudication"]
    assert decision["labels"] == ["sport"] and decision["previous_labels"] == ["business", "tech"]
    copy = make_project(labels=LABELS, name="copy", multi_label=True)
    assert copy.import_from(out, "labelloop").decisions == 1
    assert state_of(copy, "m1") == ("human_labeled", ["sport"], "adjudicated")
    reviewer = Principal(copy.annotator_id("rita", create=False), "rita", "admin")
    shown = adjudication.case(copy, reviewer, copy.item_id("m1")).to_dict()
    assert shown["decision"]["labels"] == ["sport"] and shown["decision"]["note"] == "only sport"


def test_the_command_line_shows_each_answer_s_set(team, cli, capsys) -> None:
    project, _ids, _ann, _bob, _rita = team
    assert cli("adjudicate", "show", "m1", "--project", str(project.path)) == 0
    shown = capsys.readouterr().out
    assert "model: business, sport" in shown
    assert "Annotator 1: business\n" in shown and "Annotator 2: business, tech" in shown
