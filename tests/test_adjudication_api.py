"""The adjudication routes over HTTP: who may call them (annotators and service accounts get
403), what a decision and its undo change, flags, and bounded input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from labelloop import review
from labelloop.server import create_app
from test_adjudication import item_row, split_team

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


@pytest.fixture
def served(make_project):
    """(client, project, ids, tokens by name) for a project with one split item (r1)."""
    project = make_project()
    ids, *_ = split_team(project)
    review.add_user(project, "boss", role="admin", password="boss-password")
    review.add_user(project, "ls", role="service")
    names = ("ann", "rita", "boss", "ls")
    tokens = {
        name: {"Authorization": f"Bearer {review.create_token(project, name)}"} for name in names
    }
    with TestClient(create_app(project), follow_redirects=False) as client:
        yield client, project, ids, tokens


def test_roles_of_the_adjudication_routes(served) -> None:
    client, project, ids, tokens = served
    reviewer_routes = [
        ("get", "/api/v1/adjudication", None),
        ("get", "/api/v1/adjudication/next", None),
        ("get", f"/api/v1/adjudication/items/{ids[1]}", None),
        ("post", f"/api/v1/adjudication/items/{ids[1]}/decision", {"label": "neutral"}),
        ("post", "/api/v1/adjudication/undo", {}),
    ]
    for method, path, body in reviewer_routes:
        for name in ("ann", "ls"):
            response = client.request(method, path, json=body, headers=tokens[name])
            assert response.status_code == 403, (name, path)
    assert item_row(project, ids[1])[2] == "human"  # nothing changed
    settings = {"show_names": True}
    assert (
        client.put(
            "/api/v1/adjudication/settings", json=settings, headers=tokens["rita"]
        ).status_code
        == 403
    )
    assert (
        client.put(
            "/api/v1/adjudication/settings", json=settings, headers=tokens["boss"]
        ).status_code
        == 200
    )
    assert client.get("/api/v1/adjudication").status_code == 401
    assert client.get("/adjudicate").status_code == 303  # to the login page


def test_decide_and_undo_over_http(served) -> None:
    client, project, ids, tokens = served
    listed = client.get("/api/v1/adjudication", headers=tokens["rita"]).json()
    assert listed["count"] == 1 and listed["items"][0]["id"] == ids[1]
    shown = client.get("/api/v1/adjudication/next", headers=tokens["rita"]).json()
    assert [a["label"] for a in shown["answers"]] == ["positive", "negative"]
    assert shown["suggestion"]["calibrated"] is False

    path = f"/api/v1/adjudication/items/{ids[1]}/decision"
    assert client.post(path, json={"label": "nope"}, headers=tokens["rita"]).status_code == 400
    too_long = {"label": "neutral", "note": "x" * 2001}
    assert client.post(path, json=too_long, headers=tokens["rita"]).status_code == 422
    made = client.post(
        path, json={"label": "neutral", "note": "both half right"}, headers=tokens["rita"]
    )
    assert made.status_code == 201
    assert made.json()["previous_source"] == "human"
    assert item_row(project, ids[1]) == ("human_labeled", "neutral", "adjudicated")
    assert client.get("/api/v1/adjudication/next", headers=tokens["rita"]).status_code == 204

    # An admin may undo anyone's decision; a reviewer only their own.
    undone = client.post(
        "/api/v1/adjudication/undo",
        json={"decision_id": made.json()["decision_id"]},
        headers=tokens["boss"],
    )
    assert undone.status_code == 200 and undone.json()["item"]["reasons"] == ["disagreement"]
    assert item_row(project, ids[1])[2] == "human"
    assert (
        client.post("/api/v1/adjudication/undo", json={}, headers=tokens["rita"]).status_code == 404
    )


def test_flags_over_http(served) -> None:
    client, _project, ids, tokens = served
    flagged = client.post(
        f"/api/v1/items/{ids[0]}/flag", json={"reason": "typo in text?"}, headers=tokens["ann"]
    )
    assert flagged.status_code == 201
    listed = client.get("/api/v1/adjudication", headers=tokens["rita"]).json()
    assert {i["id"]: i["reasons"] for i in listed["items"]}[ids[0]] == ["flagged"]
    assert (
        client.post("/api/v1/items/999999/flag", json={}, headers=tokens["ann"]).status_code == 404
    )
    assert (
        client.post(f"/api/v1/items/{ids[0]}/flag", json={}, headers=tokens["ls"]).status_code
        == 403
    )
    assert client.delete(f"/api/v1/items/{ids[0]}/flag", headers=tokens["ann"]).status_code == 200
    assert client.get("/api/v1/adjudication", headers=tokens["rita"]).json()["count"] == 1


def test_the_dashboard_says_how_many_items_wait(served) -> None:
    client, _project, ids, tokens = served
    from test_server_api import login

    login(client, "boss", "boss-password")
    page = client.get("/dashboard").text
    assert "Adjudication: 1 item(s) wait" in page
    client.post(
        f"/api/v1/adjudication/items/{ids[1]}/decision",
        json={"label": "neutral"},
        headers=tokens["rita"],
    )
    page = client.get("/dashboard").text
    assert "Adjudication: 0 item(s) wait" in page
    assert '<td id="adjudicated">1</td>' in page
