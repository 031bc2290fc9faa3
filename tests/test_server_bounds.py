"""Bad input gets a 4xx, never a 500: ids out of range, non-JSON numbers, lone surrogates and
bodies over the size limits, through the TestClient and a live uvicorn server."""

from __future__ import annotations

import itertools
import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from labelloop import review
from labelloop.server import create_app
from labelloop.server.inbound import DEFAULT_MAX_BODY_BYTES, ErrorResponse
from labelloop.store import Annotation, Annotator, ReviewTask
from labelloop.testing.server import serve_app
from test_review_service import seed
from test_server_api import bearer

TOO_BIG = 2**63  # one past the largest id SQLite and PostgreSQL hold


@pytest.fixture
def project(make_project, fast_password_hashing):
    project = make_project()
    review.add_user(project, "admin", role="admin", password="admin-password")
    review.add_user(project, "ann", password="ann-password")
    return project


@pytest.fixture
def client(project):
    with TestClient(create_app(project, retrain_every=0)) as client:
        yield client


def stored(project) -> tuple[int, int, int]:
    """(answers, accounts, queued tasks): what a refused request must leave unchanged."""
    with project.store.session() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table))
            for table in (Annotation, Annotator, ReviewTask)
        )


def detail(response: httpx.Response) -> list[dict]:
    """The 422 reply's errors, from a body that is valid UTF-8 JSON."""
    return json.loads(response.content.decode("utf-8"))["detail"]


@pytest.mark.parametrize("bad", [TOO_BIG, 2**64 + 1, 0, -1])
def test_ids_out_of_the_store_range_are_422(client, project, bad) -> None:
    ids = seed(project, 2)
    ann, admin = bearer(project, "ann"), bearer(project, "admin")
    item = client.get("/api/v1/queue/next", headers=ann).json()["id"]
    answered = client.post(
        f"/api/v1/items/{item}/annotations", json={"action": "accept"}, headers=ann
    )
    assert answered.status_code == 201
    before = stored(project)
    requests = [
        ("POST", f"/api/v1/items/{bad}/annotations", {"action": "skip"}, ann, ["path", "item_id"]),
        ("GET", f"/api/v1/queue/next?exclude={ids['review'][1]}&exclude={bad}", None, ann,
         ["query", "exclude", 1]),
        ("POST", f"/api/v1/items/{item}/annotations?next=true&exclude={bad}", {"action": "skip"},
         ann, ["query", "exclude", 0]),
        ("GET", f"/api/v1/annotations/mine?before={bad}", None, ann, ["query", "before"]),
        ("DELETE", f"/api/v1/annotations/{bad}", None, admin, ["path", "annotation_id"]),
        ("POST", "/api/v1/undo", {"annotation_id": bad}, ann, ["body", "annotation_id"]),
        ("POST", "/api/v1/queues/active/items", {"item_ids": [ids["review"][0], bad]}, admin,
         ["body", "item_ids", 1]),
    ]  # fmt: skip
    for method, url, body, auth, where in requests:
        response = client.request(method, url, json=body, headers=auth)
        assert response.status_code == 422, (method, url, response.text)
        assert [error["loc"] for error in detail(response)] == [where], url
    assert stored(project) == before


NOT_JSON = {
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "overflow": b"1e400",
    "long overflow": b"-" + b"9" * 400 + b".5",
}


@pytest.mark.parametrize("number", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_numbers_json_does_not_define_are_422(client, project, number) -> None:
    ids = seed(project, 1)
    ann, admin = bearer(project, "ann"), bearer(project, "admin")
    item = client.get("/api/v1/queue/next", headers=ann).json()["id"]
    before = stored(project)
    bodies = [
        (f"/api/v1/items/{item}/annotations", b'{"action": "skip", "time_spent_s": %s}', ann),
        ("/api/v1/queues/active/items", b'{"item_ids": [%d], "priorities": [%%s]}' % item, admin),
        ("/api/v1/queues/audit/sample", b'{"rate": %s}', admin),
        ("/api/v1/queues/settings", b'{"lease_minutes": %s}', admin),
        ("/webhook", b'{"action": "ANNOTATION_CREATED", "task": {"id": %s}}', admin),
    ]
    for path, template, auth in bodies:
        method = "PUT" if path.endswith("settings") else "POST"
        headers = {**auth, "Content-Type": "application/json"}
        response = client.request(method, path, content=template % number, headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert detail(response)[0]["type"] == "json_invalid"
    assert stored(project) == before
    assert ids["review"] == [item]


NOT_TEXT = {  # escapes the store cannot hold, and the word the refusal uses
    "lone high": (rb"\ud800", "surrogate"),
    "lone low": (rb"\udfff", "surrogate"),
    "high at the end": (rb"x\ud83d", "surrogate"),
    "pair reversed": (rb"\ude00\ud83d", "surrogate"),
    "NUL": (rb"a\u0000b", "NUL"),
}


@pytest.mark.parametrize(("escape", "word"), NOT_TEXT.values(), ids=NOT_TEXT.keys())
def test_strings_the_store_cannot_hold_are_422(client, project, escape, word) -> None:
    seed(project, 1)
    ann, admin = bearer(project, "ann"), bearer(project, "admin")
    item = client.get("/api/v1/queue/next", headers=ann).json()["id"]
    before = stored(project)
    bodies = [
        (f"/api/v1/items/{item}/annotations", b'{"action": "correct", "label": "%s"}', ann),
        ("/api/v1/users", b'{"name": "eve%s", "password": "long enough"}', admin),
        ("/api/v1/users", b'{"name": "eve", "password": "long enough %s"}', admin),
        ("/webhook", b'{"action": "ANNOTATION_CREATED", "task": {"data": {"text": "%s"}}}', admin),
        ("/webhook", b'{"action": "ANNOTATION_CREATED", "annotation": {"id": "%s"}}', admin),
        ("/predict", b'{"tasks": [{"id": 1, "data": {"text": "%s"}}]}', admin),
        ("/setup", b'{"project": "%s"}', admin),
    ]
    for path, template, auth in bodies:
        headers = {**auth, "Content-Type": "application/json"}
        response = client.post(path, content=template % escape, headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert word in detail(response)[0]["ctx"]["error"]
    assert stored(project) == before


def test_text_that_only_looks_like_a_bad_escape_is_text(client, project) -> None:
    """A surrogate pair is a character like any other, and an escaped backslash before "ud800"
    or "u0000" is plain text: here an unknown label, named in the reply."""
    seed(project, 1)
    ann = bearer(project, "ann")
    item = client.get("/api/v1/queue/next", headers=ann).json()["id"]
    wrong = client.post(
        f"/api/v1/items/{item}/annotations",
        content=rb'{"action": "correct", "label": "\ud83d\ude00 \\ud800 \\u0000"}',
        headers={**ann, "Content-Type": "application/json"},
    )
    assert wrong.status_code == 400
    assert "'\U0001f600 \\\\ud800 \\\\u0000'" in wrong.json()["detail"]


def test_account_names_in_paths_hold_no_control_characters(client, project) -> None:
    admin = bearer(project, "admin")
    for name in ("a%00b", "a%0Ab", "a%7Fb"):
        response = client.post(f"/api/v1/users/{name}/tokens", headers=admin)
        assert response.status_code == 422, (name, response.text)
    assert client.post("/api/v1/users/nobody/tokens", headers=admin).status_code == 404
    assert client.post("/api/v1/users/ann/tokens", headers=admin).status_code == 201


def test_error_replies_render_what_they_echo() -> None:
    """Non-finite floats and lone surrogates in an error reply become visible text."""
    reply = ErrorResponse(
        {"detail": [{"input": [float("nan"), float("-inf")], "msg": "bad \ud800 text"}]},
        status_code=422,
    )
    assert json.loads(reply.body.decode("utf-8")) == {
        "detail": [{"input": ["nan", "-inf"], "msg": "bad \\ud800 text"}]
    }


def test_bodies_over_the_limits_are_413(project) -> None:
    seed(project, 1)
    ann, admin = bearer(project, "ann"), bearer(project, "admin")
    padded = {"action": "skip", "time_spent_s": 1.0, "padding": "x" * 10_000_000}
    with TestClient(create_app(project, retrain_every=0)) as client:
        item = client.get("/api/v1/queue/next", headers=ann).json()["id"]
        url = f"/api/v1/items/{item}/annotations"
        too_big = client.post(url, json=padded, headers=ann)  # 10 MB: over the default 1 MiB
        assert too_big.status_code == 413
        assert str(DEFAULT_MAX_BODY_BYTES) in too_big.json()["detail"]
        # The webhook carries whole tasks: 10 MB is within its larger limit.
        event = {"action": "PROJECT_UPDATED", "project": {"padding": "x" * 10_000_000}}
        assert client.post("/webhook", json=event, headers=admin).json()["ignored"] is True
    assert stored(project)[0] == 0
    small = create_app(project, retrain_every=0, max_body_bytes=400, max_bulk_body_bytes=4_000)
    with TestClient(small) as client:
        item = client.get("/api/v1/queue/next", headers=ann).json()["id"]
        url = f"/api/v1/items/{item}/annotations"
        refused = [
            (url, {"action": "skip", "padding": "x" * 400}, ann),
            ("/api/v1/users", {"name": "eve", "password": "x" * 400}, admin),
            ("/webhook", {"action": "PROJECT_UPDATED", "project": "x" * 4_000}, admin),
            ("/predict", {"tasks": [], "padding": "x" * 4_000}, admin),
        ]
        for path, body, auth in refused:
            assert client.post(path, json=body, headers=auth).status_code == 413, path
        login = client.post("/login", data={"username": "ann", "password": "x" * 400})
        assert login.status_code == 413
        event = {"action": "PROJECT_UPDATED", "project": "x" * 3_000}
        assert client.post("/webhook", json=event, headers=admin).status_code == 200
        assert client.post(url, json={"action": "skip"}, headers=ann).status_code == 201
    assert stored(project)[:2] == (1, 2)


@pytest.fixture
def live(project):
    with serve_app(create_app(project, retrain_every=0)) as base:
        yield base, project


def test_a_declared_length_over_the_limit_is_refused_before_the_body(live) -> None:
    """The server answers 413 at once from the headers, without waiting for a body."""
    base, project = live
    host, port = urlsplit(base).hostname, urlsplit(base).port
    token = review.create_token(project, "ann")
    request = (
        "POST /api/v1/items/1/annotations HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request.encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            assert chunk, "the server closed the connection without answering"
            reply += chunk
    head = reply.split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("http/1.1 413") and "connection: close" in head


def test_an_endless_chunked_body_is_cut_at_the_limit(live) -> None:
    """A body without a length is counted as it arrives: the server answers 413 after the limit
    instead of reading (and buffering) a body that never ends."""
    base, project = live
    sent = 0

    def endless():
        nonlocal sent
        chunk = b"[" + b" " * 65_535
        for _ in itertools.count():
            sent += len(chunk)
            assert sent < 1024 * DEFAULT_MAX_BODY_BYTES, "the server kept reading"
            yield chunk

    headers = {**bearer(project, "ann"), "Content-Type": "application/json"}
    response = httpx.post(
        f"{base}/api/v1/items/1/annotations", content=endless(), headers=headers, timeout=30
    )
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert stored(project)[0] == 0
    # The server goes on serving.
    assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "UP"


def test_serve_passes_its_body_limits_to_the_app(cli, project, monkeypatch) -> None:
    """`labelloop serve --max-body-bytes N --max-bulk-body-bytes M` bounds the served app."""
    import labelloop.server

    codes: dict[str, int] = {}
    admin = bearer(project, "admin")

    def fake_run(app, **kw) -> None:
        with TestClient(app) as client:
            for path, size in (("/api/v1/undo", 600), ("/webhook", 600), ("/webhook", 6_000)):
                body = {"action": "PROJECT_UPDATED", "padding": "x" * size}
                codes[f"{path} {size}"] = client.post(path, json=body, headers=admin).status_code

    monkeypatch.setattr(labelloop.server, "run", fake_run)
    args = ["--max-body-bytes", "500", "--max-bulk-body-bytes", "5000"]
    assert cli("serve", "--project", project.path, *args) == 0
    assert codes == {"/api/v1/undo 600": 413, "/webhook 600": 200, "/webhook 6000": 413}
