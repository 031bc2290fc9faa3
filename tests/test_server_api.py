"""The review server over HTTP (FastAPI TestClient), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from labelloop import review
from labelloop.server import api, create_app
from labelloop.server.auth import SESSION_COOKIE
from labelloop.store import Annotation, Item
from test_review_service import seed

API_ROUTES = [(m, route.path) for route in api.router.routes for m in route.methods]
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options")


pytestmark = pytest.mark.usefixtures("fast_password_hashing")


@pytest.fixture
def project(make_project):
    project = make_project()
    review.add_user(project, "admin", role="admin", password="admin-password")
    review.add_user(project, "ann", password="ann-password")
    review.add_user(project, "bob", password="bob-password")
    return project


@pytest.fixture
def client(project):
    with TestClient(create_app(project), follow_redirects=False) as client:
        yield client


def bearer(project, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {review.create_token(project, name)}"}


def login(client: TestClient, name: str, password: str):
    form = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    return client.post("/login", data={"username": name, "password": password, "csrf_token": csrf})


def page_csrf(client: TestClient) -> str:
    page = client.get("/review")
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def test_health_is_open_and_everything_else_needs_auth(client) -> None:
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "UP"
    assert len(API_ROUTES) >= 15
    for method, path in API_ROUTES:
        url = path.replace("{item_id}", "1").replace("{annotation_id}", "1")
        url = url.replace("{name}", "ann").replace("{queue}", "active")
        response = client.request(method, url, json={})
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/openapi.json").status_code == 401
    for page in ("/", "/review", "/dashboard", "/plots/x.png"):
        response = client.get(page)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")
    assert client.get("/login").status_code == 200
    bad = {"Authorization": "Bearer ll_not-a-token"}
    assert client.get("/api/v1/queue/next", headers=bad).status_code == 401


def test_openapi_documents_every_api_route(client, project) -> None:
    spec = client.get("/openapi.json", headers=bearer(project, "ann")).json()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert set(API_ROUTES) <= documented
    assert "204" in spec["paths"]["/api/v1/queue/next"]["get"]["responses"]


def test_review_by_token_until_done(client, project) -> None:
    ids = seed(project, 3, n_confident=2)
    auth = bearer(project, "ann")
    bad_label = client.post(
        f"/api/v1/items/{ids['review'][0]}/annotations",
        json={"action": "correct", "label": "nonsense"},
        headers=auth,
    )
    assert bad_label.status_code == 400 and "nonsense" in bad_label.json()["detail"]
    seen = []
    while True:
        response = client.get("/api/v1/queue/next", headers=auth)
        if response.status_code == 204:
            break
        item = response.json()
        assert set(item) >= {"id", "text", "suggestion", "queue"}
        assert set(item["suggestion"]) >= {"label", "confidence", "reasoning"}
        seen.append(item["id"])
        answer = client.post(
            f"/api/v1/items/{item['id']}/annotations",
            json={"label": "neutral", "action": "correct", "time_spent_s": 2.5},
            headers=auth,
        )
        assert answer.status_code == 201, answer.text
    assert seen == ids["review"]
    with project.store.session() as session:
        rows = session.execute(
            select(Annotation.item_id, Annotation.label, Annotation.time_spent_s)
        ).all()
        labels = set(session.scalars(select(Item.final_label).where(Item.id.in_(seen))))
    assert sorted(r.item_id for r in rows) == sorted(seen)
    assert {r.time_spent_s for r in rows} == {2.5}
    assert labels == {"neutral"}
    again = client.post(
        f"/api/v1/items/{seen[0]}/annotations", json={"action": "accept"}, headers=auth
    )
    assert again.status_code == 409
    missing = client.post("/api/v1/items/999999/annotations", json={"action": "skip"}, headers=auth)
    assert missing.status_code == 404


def test_undo_endpoint_gives_the_item_back(client, project) -> None:
    ids = seed(project, 2)
    auth = bearer(project, "ann")
    item = client.get("/api/v1/queue/next", headers=auth).json()
    client.post(f"/api/v1/items/{item['id']}/annotations", json={"action": "accept"}, headers=auth)
    undone = client.post("/api/v1/undo", headers=auth)
    assert undone.status_code == 200
    assert undone.json()["item"]["id"] == item["id"] == ids["review"][0]
    mine = client.get("/api/v1/annotations/mine", headers=auth).json()
    assert [a["undone"] for a in mine] == [True]
    assert "queue" not in mine[0]  # gold checks stay hidden
    assert client.post("/api/v1/undo", headers=bearer(project, "bob")).status_code == 404


def test_roles_admins_manage_annotators_see_only_their_work(client, project) -> None:
    seed(project, 4)
    admin, ann = bearer(project, "admin"), bearer(project, "ann")
    for method, path, body in [
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/users", {"name": "eve", "password": "eve-password"}),
        ("PUT", "/api/v1/queues/settings", {"overlap": 2}),
        ("GET", "/api/v1/dashboard", None),
        ("POST", "/api/v1/users/ann/tokens", None),
    ]:
        assert client.request(method, path, json=body, headers=ann).status_code == 403
    created = client.post(
        "/api/v1/users", json={"name": "eve", "password": "eve-password"}, headers=admin
    )
    assert created.status_code == 201 and created.json()["role"] == "annotator"
    token = client.post("/api/v1/users/eve/tokens", headers=admin).json()["token"]
    eve = {"Authorization": f"Bearer {token}"}
    settings = client.put(
        "/api/v1/queues/settings", json={"overlap": 2, "gold_rate": 0.1}, headers=admin
    )
    assert settings.status_code == 200 and settings.json()["overlap"] == 2
    assert (
        client.put("/api/v1/queues/settings", json={"gold_rate": 1.5}, headers=admin).status_code
        == 422
    )
    item = client.get("/api/v1/queue/next", headers=eve).json()
    client.post(f"/api/v1/items/{item['id']}/annotations", json={"action": "accept"}, headers=eve)
    assert client.get("/api/v1/annotations/mine", headers=ann).json() == []
    assert len(client.get("/api/v1/annotations/mine", headers=eve).json()) == 1
    # ann cannot withdraw eve's answer; an admin can.
    annotation = client.get("/api/v1/annotations/mine", headers=eve).json()[0]["id"]
    assert client.delete(f"/api/v1/annotations/{annotation}", headers=ann).status_code == 403
    assert client.delete(f"/api/v1/annotations/{annotation}", headers=admin).status_code == 200
    board = client.get("/api/v1/dashboard", headers=admin).json()
    assert board["queues"]["review"]["overlap"] == 4
    assert board["queue_settings"]["gold_rate"] == pytest.approx(0.1)


def test_admin_queues_active_items_and_audits(client, project) -> None:
    ids = seed(project, 0, n_confident=10)
    admin = bearer(project, "admin")
    added = client.post(
        "/api/v1/queues/active/items", json={"item_ids": ids["confident"][:2]}, headers=admin
    )
    assert added.status_code == 201 and added.json() == {"count": 2}
    sampled = client.post("/api/v1/queues/audit/sample", json={"rate": 0.5}, headers=admin)
    assert sampled.json() == {"count": 5}
    queues = client.get("/api/v1/queues", headers=admin).json()["queues"]
    assert queues["active"]["open"] == 2 and queues["audit"]["open"] == 5
    bad = client.post("/api/v1/queues/nonsense/items", json={"item_ids": [1]}, headers=admin)
    assert bad.status_code == 400


def test_browser_session_needs_csrf_on_state_changes(client, project) -> None:
    ids = seed(project, 2)
    assert login(client, "ann", "ann-password").status_code == 303
    assert SESSION_COOKIE in client.cookies
    item = client.get("/api/v1/queue/next").json()  # reads need no CSRF token
    url = f"/api/v1/items/{item['id']}/annotations"
    assert client.post(url, json={"action": "accept"}).status_code == 403
    wrong = {"X-CSRF-Token": "guess"}
    assert client.post(url, json={"action": "accept"}, headers=wrong).status_code == 403
    csrf = page_csrf(client)
    foreign = {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    assert client.post(url, json={"action": "accept"}, headers=foreign).status_code == 403
    ok = client.post(url, json={"action": "accept"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201
    assert ids["review"][0] == item["id"]
    # Logging out needs the token too, and ends the session.
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/api/v1/queue/next").status_code == 401


def test_login_form_needs_its_csrf_token_and_pages_follow_roles(client) -> None:
    client.get("/login")
    forged = client.post("/login", data={"username": "ann", "password": "ann-password"})
    assert forged.status_code == 403 and SESSION_COOKIE not in client.cookies
    assert login(client, "ann", "ann-password").headers["location"] == "/review"
    assert client.get("/review").status_code == 200
    assert client.get("/dashboard").status_code == 403
    client.cookies.clear()
    assert login(client, "admin", "admin-password").status_code == 303
    assert client.get("/").headers["location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200


def test_login_is_rate_limited(client) -> None:
    codes = [login(client, "ann", f"wrong-{i}").status_code for i in range(6)]
    assert codes == [401] * 5 + [429]
    blocked = login(client, "ann", "ann-password")
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    # Another account from the same address is not locked out by ann's failures.
    assert login(client, "bob", "bob-password").status_code == 303


def test_security_headers_and_escaped_pages(client, project) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    review.add_user(project, evil, password="evil-password")
    review.add_user(project, "root", role="admin", password="root-password")
    login(client, "root", "root-password")
    for url in ("/health", "/login", "/review", "/dashboard", "/api/v1/me"):
        response = client.get(url)
        for header in SECURITY_HEADERS:
            assert header in response.headers, (url, header)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    # Names shown on the dashboard are escaped by the templates.
    seed(project, 1)
    evil_client = bearer(project, evil)
    item = client.get("/api/v1/queue/next", headers=evil_client).json()
    client.post(
        f"/api/v1/items/{item['id']}/annotations", json={"action": "accept"}, headers=evil_client
    )
    page = client.get("/dashboard").text
    assert evil not in page and "&lt;script&gt;" in page
    # Only plots that exist, by plain names, are served.
    plots = project.path / "plots"
    plots.mkdir()
    (plots / "calibration.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert client.get("/plots/calibration.png").headers["content-type"] == "image/png"
    assert client.get("/plots/..%2Flabelloop.json").status_code == 404
    assert 'src="/plots/calibration.png"' in client.get("/dashboard").text


def test_next_item_exclude_and_empty_queue(client, project) -> None:
    ids = seed(project, 2)
    auth = bearer(project, "ann")
    first = client.get("/api/v1/queue/next", headers=auth).json()
    second = client.get(f"/api/v1/queue/next?exclude={first['id']}", headers=auth).json()
    assert [first["id"], second["id"]] == ids["review"]
    both = f"/api/v1/queue/next?exclude={first['id']}&exclude={second['id']}"
    assert client.get(both, headers=auth).status_code == 204
    # bob finds both leased by ann until she gives them back.
    bob = bearer(project, "bob")
    assert client.get("/api/v1/queue/next", headers=bob).status_code == 204
    assert client.post("/api/v1/leases/release", headers=auth).json() == {"count": 2}
    assert client.get("/api/v1/queue/next", headers=bob).json()["id"] == ids["review"][0]


def test_answer_can_bring_the_next_item_in_the_same_round_trip(client, project) -> None:
    ids = seed(project, 3)
    auth = bearer(project, "ann")
    first = client.get("/api/v1/queue/next", headers=auth).json()
    second = client.get(f"/api/v1/queue/next?exclude={first['id']}", headers=auth).json()
    plain = client.post(
        f"/api/v1/items/{first['id']}/annotations", json={"action": "accept"}, headers=auth
    )
    assert plain.status_code == 201 and "next" not in plain.json()
    # The prefetched item is excluded, so the reply leases the one after it.
    chained = client.post(
        f"/api/v1/items/{second['id']}/annotations?next=true&exclude={second['id']}",
        json={"action": "correct", "label": "neutral"},
        headers=auth,
    )
    assert chained.status_code == 201, chained.text
    body = chained.json()
    assert body["item_id"] == second["id"] and body["next"]["id"] == ids["review"][2]
    assert set(body["next"]) >= {"id", "text", "suggestion", "queue"}
    # Leased to ann in that transaction: bob cannot get it, ann gets it again.
    assert client.get("/api/v1/queue/next", headers=bearer(project, "bob")).status_code == 204
    last = client.post(
        f"/api/v1/items/{body['next']['id']}/annotations?next=true",
        json={"action": "accept"},
        headers=auth,
    )
    assert last.status_code == 201 and last.json()["next"] is None
    with project.store.session() as session:
        answered = sorted(session.scalars(select(Annotation.item_id)))
    assert answered == sorted(ids["review"])
    # A refused answer serves nothing and leases nothing.
    path = f"/api/v1/items/{first['id']}/annotations?next=true"
    again = client.post(path, json={"action": "accept"}, headers=auth)
    assert again.status_code == 409 and "next" not in again.json()


def test_ml_backend_routes_need_credentials_on_the_full_server(make_project):
    """Label Studio sends basic auth: an account name with an API token, or a configured pair."""
    import base64

    from fastapi.testclient import TestClient

    from labelloop.server import create_app

    project = make_project()
    project.add_user("ls", role="admin", password="long enough password")
    token = project.create_token("ls")
    body = {"tasks": [], "project": "1.0", "label_config": "<View/>"}
    with TestClient(create_app(project, ml_backend_auth=("studio", "s3cret"))) as client:
        assert client.post("/predict", json=body).status_code == 401
        assert client.get("/metrics").status_code == 401

        def basic(user: str, password: str) -> dict:
            raw = base64.b64encode(f"{user}:{password}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}

        assert client.get("/metrics", headers=basic("ls", "wrong")).status_code == 401
        assert client.get("/metrics", headers=basic("other", token)).status_code == 401
        assert client.get("/metrics", headers=basic("ls", token)).status_code == 200
        assert client.get("/metrics", headers=basic("studio", "s3cret")).status_code == 200
        assert (
            client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        )
        assert client.get("/health").status_code == 200


def test_answers_retrain_in_the_background(project, client, monkeypatch) -> None:
    """Every RETRAIN_EVERY answers the student, stack and calibration are retrained."""
    from labelloop.server.ml_backend import training_runtime

    monkeypatch.setattr(api, "RETRAIN_EVERY", 3)
    calls = []
    learned = SimpleNamespace(best="student")  # what retraining reads of `learn`'s result
    monkeypatch.setattr(type(project), "learn", lambda self, **kw: calls.append(kw) or learned)
    seed(project, 8)
    headers = bearer(project, "ann")
    for expected in (0, 0, 1, 1, 1, 2):
        item = client.get("/api/v1/queue/next", headers=headers).json()
        answer = client.post(
            f"/api/v1/items/{item['id']}/annotations",
            headers=headers,
            json={"label": "positive", "action": "correct"},
        )
        assert answer.status_code == 201
        assert len(calls) == expected  # TestClient runs background tasks before returning
    runtime = training_runtime(client.app)
    assert list(runtime.last_training.to_dict().items()) == [("learn", "done"), ("best", "student")]


def test_retraining_after_answers_can_be_turned_off(project, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(api, "RETRAIN_EVERY", 1)
    monkeypatch.setattr(type(project), "learn", lambda self, **kw: calls.append(kw) or {})
    seed(project, 3)
    headers = bearer(project, "ann")
    with TestClient(create_app(project, retrain_every=0)) as client:
        for _ in range(3):
            item = client.get("/api/v1/queue/next", headers=headers).json()
            answer = client.post(
                f"/api/v1/items/{item['id']}/annotations",
                headers=headers,
                json={"action": "accept"},
            )
            assert answer.status_code == 201
        assert client.get("/api/v1/queue/next", headers=headers).status_code == 204
    assert calls == []


def answer(client, item_id: int, auth, **body):
    return client.post(f"/api/v1/items/{item_id}/annotations", json=body, headers=auth)


def test_only_the_lease_holder_answers_an_item(client, project) -> None:
    seed(project, 2)
    ann, bob, admin = bearer(project, "ann"), bearer(project, "bob"), bearer(project, "admin")
    item = client.get("/api/v1/queue/next", headers=ann).json()["id"]
    for who in (bob, admin):  # an admin cannot take it from her either
        refused = answer(client, item, who, action="correct", label="neutral")
        assert refused.status_code == 409, refused.text
    assert answer(client, item, ann, action="accept").status_code == 201
    with project.store.session() as session:
        assert session.scalars(select(Annotation.annotator_id)).all() == [
            review.principal_for_token(project, ann["Authorization"][7:]).id
        ]


def test_unserved_gold_checks_answer_like_any_unserved_item(client, project) -> None:
    ids = seed(project, 2, n_gold=2)
    ann = bearer(project, "ann")
    items = [ids["gold"][0], ids["review"][1], ids["gold"][1], ids["review"][0]]
    replies = [answer(client, item, ann, action="skip") for item in items]
    assert [r.status_code for r in replies] == [409] * 4
    said = {r.json()["detail"].replace(str(i), "ID") for r, i in zip(replies, items, strict=True)}
    assert len(said) == 1


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"lease_minutes": 5e-324}, "lease_minutes"),
        ({"lease_minutes": 0.5}, "lease_minutes"),
        ({"lease_minutes": 1441}, "lease_minutes"),
        ({"overlap": 2.5}, "overlap"),
        ({"overlap": True}, "overlap"),
        ({"overlap_share": 2}, "overlap_share"),
        ({"gold_rate": 1}, "gold_rate"),
        ({"audit_rate": -0.5}, "audit_rate"),
    ],
)
def test_queue_settings_out_of_range_are_refused(client, project, body, name) -> None:
    admin = bearer(project, "admin")
    before = client.get("/api/v1/queues", headers=admin).json()["settings"]
    response = client.put("/api/v1/queues/settings", json=body, headers=admin)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", name]
    assert review.SETTING_BOUNDS[name].describe() in error["msg"]
    assert client.get("/api/v1/queues", headers=admin).json()["settings"] == before
