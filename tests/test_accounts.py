"""Accounts: roles (service included), disabling, passwords, token expiry and revocation, the
token cache, user names, and the login limiter — on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from labelloop import Project, review
from labelloop.server import create_app
from labelloop.server.security import LoginLimiter
from labelloop.store import Annotation, Annotator, Item
from labelloop.testing.server import free_port, start_serve
from test_review_service import seed
from test_server_api import login

pytestmark = pytest.mark.usefixtures("fast_password_hashing")
CONFIG = """<View>
  <Text name="review" value="$text"/>
  <Choices name="sentiment" toName="review" choice="single">
    <Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>
  </Choices>
</View>"""
BAD_NAMES = ["bad\u0000name", "bad\nname", "ali\u202eecila", "a\u2066b\u2069", "x\u200fy", "tab\tx"]


@pytest.fixture
def project(make_project):
    project = make_project()
    review.add_user(project, "admin", role="admin", password="admin-password")
    review.add_user(project, "ann", password="ann-password")
    return project


def service_token(project, name: str = "studio") -> str:
    review.add_user(project, name, role="service")
    return review.create_token(project, name)


@pytest.fixture
def client(project):
    with TestClient(create_app(project), follow_redirects=False) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def ml_calls() -> list[tuple[str, str, dict | None]]:
    task = {"id": 41, "data": {"text": "a new task from Label Studio"}}
    event = {
        "action": "ANNOTATION_CREATED",
        "annotation": {"id": 5, "completed_by": 3, "result": []},
        "task": task,
    }
    return [
        ("POST", "/setup", {"schema": CONFIG, "project": "9"}),
        ("POST", "/predict", {"tasks": [task]}),
        ("POST", "/webhook", event),
        ("GET", "/metrics", None),
        ("GET", "/versions", None),
    ]


# ----------------------------------------------------------------------------- roles
def test_ml_backend_routes_take_admins_and_service_accounts_only(client, project) -> None:
    ann = review.create_token(project, "ann")
    for method, path, body in ml_calls():
        for headers in (bearer(ann), basic("ann", ann)):
            answer = client.request(method, path, json=body, headers=headers)
            assert answer.status_code == 403, (method, path, answer.text)
    # Nothing an annotator sent changed the store.
    assert project.stats().items == 0
    assert "labelstudio" not in project.settings
    studio, admin = service_token(project), review.create_token(project, "admin")
    for method, path, body in ml_calls():
        answer = client.request(method, path, json=body, headers=basic("studio", studio))
        assert answer.status_code == 200, (method, path, answer.text)
        assert client.request(method, path, json=body, headers=bearer(admin)).status_code == 200
    assert project.settings["labelstudio"]["label_config"] == CONFIG


def test_service_accounts_get_no_review_pages_or_review_api(client, project) -> None:
    seed(project, 2)
    studio = bearer(service_token(project))
    assert client.get("/api/v1/me", headers=studio).json()["role"] == "service"
    for method, path in [
        ("GET", "/api/v1/queue/next"),
        ("GET", "/api/v1/project"),
        ("GET", "/api/v1/annotations/mine"),
        ("POST", "/api/v1/leases/release"),
        ("POST", "/api/v1/undo"),
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/dashboard"),
    ]:
        assert client.request(method, path, headers=studio).status_code == 403, path
    # No password, so no login and no pages.
    assert login(client, "studio", "").status_code in (401, 422)
    assert review.list_users(project)[2].password is False
    with pytest.raises(review.InputError):
        review.add_user(project, "other", role="service", password="a-password")
    with pytest.raises(review.InputError):
        review.set_password(project, "studio", "a-password")


# ----------------------------------------------------------------------------- account care
def test_admins_disable_enable_and_change_passwords_through_the_api(client, project) -> None:
    admin, ann = bearer(review.create_token(project, "admin")), review.create_token(project, "ann")
    seed(project, 2)
    assert client.get("/api/v1/queue/next", headers=bearer(ann)).status_code == 200
    assert login(client, "ann", "ann-password").status_code == 303
    assert client.get("/review").status_code == 200
    for method, path, body in [
        ("PATCH", "/api/v1/users/ann", {"active": False}),
        ("PUT", "/api/v1/users/ann/password", {"password": "something-new"}),
        ("DELETE", "/api/v1/users/ann/tokens", None),
        ("POST", "/api/v1/users/ann/tokens", {"expires": "1d"}),
    ]:
        answer = client.request(method, path, json=body, headers=bearer(ann))
        assert answer.status_code == 403, path
    disabled = client.patch("/api/v1/users/ann", json={"active": False}, headers=admin)
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    # At once: the token (cached a moment ago), the session, the lease and the login.
    assert client.get("/api/v1/me", headers=bearer(ann)).status_code == 401
    assert client.get("/review").status_code == 303
    assert review.queue_counts(project)["review"].leased == 0
    client.cookies.clear()
    assert login(client, "ann", "ann-password").status_code == 401
    enabled = client.patch("/api/v1/users/ann", json={"active": True}, headers=admin)
    assert enabled.json()["active"] is True
    assert client.get("/api/v1/me", headers=bearer(ann)).status_code == 200
    # A new password ends sessions; the old one stops working.
    assert login(client, "ann", "ann-password").status_code == 303
    changed = client.put(
        "/api/v1/users/ann/password", json={"password": "ann-new-password"}, headers=admin
    )
    assert changed.status_code == 204
    assert client.get("/review").status_code == 303
    client.cookies.clear()
    assert login(client, "ann", "ann-password").status_code == 401
    assert login(client, "ann", "ann-new-password").status_code == 303
    short = client.put("/api/v1/users/ann/password", json={"password": "short"}, headers=admin)
    assert short.status_code == 422
    missing = client.patch("/api/v1/users/nobody", json={"active": False}, headers=admin)
    assert missing.status_code == 404


def test_revoke_ends_every_token_and_session_and_expired_tokens_fail(client, project) -> None:
    admin = bearer(review.create_token(project, "admin"))
    tokens = [review.create_token(project, "ann") for _ in range(2)]
    for token in tokens:
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    assert login(client, "ann", "ann-password").status_code == 303
    revoked = client.delete("/api/v1/users/ann/tokens", headers=admin)
    assert revoked.status_code == 200 and revoked.json() == {
        "name": "ann",
        "tokens": 2,
        "sessions": 1,
    }
    for token in tokens:
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert client.get("/review").status_code == 303
    # Expiry: given as a duration, stored, and enforced (from the cache too).
    issued = client.post("/api/v1/users/ann/tokens", json={"expires": "30d"}, headers=admin)
    assert issued.status_code == 201
    expires_at = datetime.fromisoformat(issued.json()["expires_at"])
    assert abs(expires_at - datetime.now(UTC) - timedelta(days=30)) < timedelta(minutes=1)
    bad = client.post("/api/v1/users/ann/tokens", json={"expires": "soon"}, headers=admin)
    assert bad.status_code == 400 and "duration" in bad.json()["detail"]
    short = review.new_token(project, "ann", expires=timedelta(seconds=1)).token
    assert client.get("/api/v1/me", headers=bearer(short)).status_code == 200
    time.sleep(1.1)
    assert client.get("/api/v1/me", headers=bearer(short)).status_code == 401
    listed = {u["name"]: u for u in client.get("/api/v1/users", headers=admin).json()}
    assert listed["ann"]["tokens"] == 1  # the 30-day one; the expired one is not counted
    spec = client.get("/openapi.json", headers=admin).json()["paths"]
    assert {"patch"} <= set(spec["/api/v1/users/{name}"])
    assert {"post", "delete"} <= set(spec["/api/v1/users/{name}/tokens"])
    assert "put" in spec["/api/v1/users/{name}/password"]


def test_a_change_made_by_another_process_reaches_the_token_cache_within_its_bound(
    project, monkeypatch
) -> None:
    token = review.create_token(project, "ann")
    assert review.principal_for_token(project, token) is not None
    assert review.cached_principal(project, token) is not None  # served from memory now
    # Another process: its own store and its own cache (the CLI, a second server).
    other = Project.open(project.path, db=project.store.url)
    try:
        review.set_active(other, "ann", False)
        time.sleep(review.ACCOUNTS_CHECK_S)
        assert review.cached_principal(project, token) is None
        assert review.principal_for_token(project, token) is None
        review.set_active(other, "ann", True)
        monkeypatch.setattr(review.accounts, "ACCOUNTS_CHECK_S", 0.0)  # the version read every time
        assert review.principal_for_token(project, token) is not None
        review.revoke(other, "ann")
        assert review.principal_for_token(project, token) is None
    finally:
        other.close()


# ----------------------------------------------------------------------------- names
@pytest.mark.parametrize("name", BAD_NAMES)
def test_user_names_with_control_or_bidi_characters_are_refused(client, project, name) -> None:
    admin = bearer(review.create_token(project, "admin"))
    answer = client.post(
        "/api/v1/users", json={"name": name, "password": "long-password"}, headers=admin
    )
    # NUL is refused with any body holding it (422); other characters by the name check.
    assert answer.status_code in (400, 422), answer.text
    assert "U+" in answer.text or "NUL" in answer.text
    with pytest.raises(review.InputError):
        project.annotate("x", action="skip", annotator=name)
    with project.store.session() as session:
        assert name not in set(session.scalars(select(Annotator.name)))
    # Letters of any script, spaces and joiners stay welcome.
    assert review.add_user(project, "Zoë  O\u2019Brien", password="long-password").name == (
        "Zoë O\u2019Brien"
    )
    review.add_user(project, "\u0645\u0631\u06cc\u200c\u0645", password="long-password")


def test_imported_answers_with_a_bidi_annotator_name_are_refused(project, tmp_path) -> None:
    rows = [
        {
            "id": "a",
            "text": "fine",
            "state": "human_labeled",
            "label": "neutral",
            "label_source": "human",
            "annotations": [{"annotator": "eve\u202e", "action": "label", "label": "neutral"}],
        }
    ]
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(review.InputError, match="U\\+202E") as raised:
        project.import_from(path, "labelloop")
    assert "export.jsonl" in str(raised.value)
    assert project.stats().items == 0


def test_webhook_accounts_come_from_label_studio_user_ids(client, project) -> None:
    studio = basic("admin", review.create_token(project, "admin"))
    client.post("/setup", json={"schema": CONFIG}, headers=studio)
    event = {
        "action": "ANNOTATION_CREATED",
        "annotation": {"id": 8, "completed_by": "7\u202e", "result": []},
        "task": {"id": 1, "data": {"text": "t"}},
    }
    answer = client.post("/webhook", json=event, headers=studio)
    assert answer.status_code == 400 and "completed_by" in answer.json()["detail"]
    with project.store.session() as session:
        assert session.scalar(select(Annotation.id)) is None


# ----------------------------------------------------------------------------- basic auth
def test_basic_auth_with_a_non_ascii_name_never_fails_the_server(project) -> None:
    review.add_user(project, "stüdio", role="admin", password="long-password")
    token = review.create_token(project, "stüdio")
    app = create_app(project, ml_backend_auth=("ünïcode", "pässword"))
    with TestClient(app, raise_server_exceptions=False) as client:

        def status(user: str, password: str) -> int:
            raw = base64.b64encode(f"{user}:{password}".encode()).decode()
            return client.get("/metrics", headers={"Authorization": f"Basic {raw}"}).status_code

        assert status("stüdio", token) == 200
        assert status("stüdio", "wrong") == 401
        assert status("ünïcode", "pässword") == 200
        assert status("ünïcode", "wrong") == 401
        assert status("\u202eevil", token) == 401
        latin1 = base64.b64encode("stüdio:".encode("latin-1") + token.encode()).decode()
        assert client.get("/metrics", headers={"Authorization": f"Basic {latin1}"}).status_code == (
            401
        )


# ----------------------------------------------------------------------------- login limiter
def test_one_address_failures_do_not_lock_out_the_user_elsewhere(project) -> None:
    app = create_app(project)
    with (
        TestClient(app, client=("203.0.113.9", 5000), follow_redirects=False) as attacker,
        TestClient(app, client=("198.51.100.7", 5000), follow_redirects=False) as owner,
    ):
        codes = [login(attacker, "ann", f"guess-{i}").status_code for i in range(8)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        assert login(attacker, "ann", "ann-password").status_code == 429
        assert login(owner, "ann", "ann-password").status_code == 303


def test_a_guesser_spread_over_addresses_gets_one_guess_each_once_the_account_is_attacked(
    project,
) -> None:
    app = create_app(project)
    limiter: LoginLimiter = app.state.login_limiter
    with TestClient(app, follow_redirects=False) as client:
        login(client, "ann", "warm up the form")
    for i in range(limiter.per_account):
        limiter.failed("ann", f"10.0.0.{i}")
    # Under attack: an address that failed once may not guess again...
    assert limiter.retry_after("ann", "10.0.0.1") > 0
    # ...while a clean address still may, and other accounts are untouched.
    assert limiter.retry_after("ann", "192.0.2.1") == 0
    assert limiter.retry_after("bob", "10.0.0.1") == 0
    with (
        TestClient(app, client=("10.0.0.1", 1), follow_redirects=False) as guesser,
        TestClient(app, client=("192.0.2.1", 1), follow_redirects=False) as owner,
    ):
        assert login(guesser, "ann", "ann-password").status_code == 429
        assert login(owner, "ann", "ann-password").status_code == 303


def test_limiter_forgets_failures_that_left_the_window() -> None:
    limiter = LoginLimiter(per_address=3, per_pair=2, per_account=10, window_s=0.2)
    for _ in range(3):
        limiter.failed("ann", "a")
    assert limiter.retry_after("bob", "a") > 0  # the address is blocked for every account
    time.sleep(0.25)
    assert limiter.retry_after("ann", "a") == 0
    limiter.failed("ann", "b")
    assert len(limiter._failures) == 3  # the expired keys were dropped on the way


def live_login(base: str, password: str, forwarded_for: str) -> int:
    with httpx.Client(base_url=base) as http:
        form = http.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        return http.post(
            "/login",
            data={"username": "ann", "password": password, "csrf_token": csrf},
            headers={"X-Forwarded-For": forwarded_for},
        ).status_code


def test_serve_believes_x_forwarded_for_only_from_configured_proxies(tmp_path) -> None:
    with Project.create(tmp_path / "p", task="t", labels=["a", "b"]) as project:
        review.add_user(project, "ann", password="ann-password")
    for extra, spoofable in [((), False), (("--forwarded-allow-ips", "127.0.0.1"), True)]:
        port = free_port()
        process = start_serve(tmp_path / "p", port, *extra)
        try:
            base = f"http://127.0.0.1:{port}"
            codes = [live_login(base, "wrong-guess", f"198.51.100.{i}") for i in range(7)]
        finally:
            process.terminate()
            process.wait(timeout=20)
        if spoofable:  # a trusted proxy's client addresses: seven different clients
            assert codes == [401] * 7
        else:  # the header is ignored: one client, throttled after five failures
            assert codes == [401] * 5 + [429] * 2


# ----------------------------------------------------------------------------- CLI
def test_user_commands(cli, db_url, tmp_path, capsys, monkeypatch) -> None:
    folder = tmp_path / "proj"
    assert cli("init", folder, "--task", "t", "--labels", "a,b", "--db", db_url) == 0
    monkeypatch.setenv("LABELLOOP_PASSWORD", "first-password")
    assert cli("user", "add", "ann", "--project", folder) == 0
    assert cli("user", "add", "studio", "--role", "service", "--project", folder) == 0
    assert cli("user", "add", "ls-person", "--labelstudio-user", "12", "--project", folder) == 0
    for bad in BAD_NAMES[:3]:
        assert cli("user", "add", bad, "--project", folder) == 2
        assert "U+" in capsys.readouterr().err
    capsys.readouterr()

    def json_of(*args) -> object:
        assert cli(*args, "--project", folder, "--json") == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    users = {u["name"]: u for u in json_of("user", "list")}
    assert set(users) == {"ann", "studio", "ls-person"}
    assert users["studio"]["role"] == "service" and users["studio"]["password"] is False
    assert users["ls-person"]["labelstudio_user"] == 12
    issued = json_of("user", "token", "ann", "--expires", "12h")
    expires_at = datetime.fromisoformat(issued["expires_at"])
    assert abs(expires_at - datetime.now(UTC) - timedelta(hours=12)) < timedelta(minutes=1)
    assert cli("user", "token", "ann", "--expires", "12 parsecs", "--project", folder) == 2
    with Project.open(folder) as project:
        assert review.principal_for_token(project, issued["token"]).name == "ann"
    assert json_of("user", "disable", "ann")["active"] is False
    with Project.open(folder) as project:
        assert review.principal_for_token(project, issued["token"]) is None
        assert review.authenticate(project, "ann", "first-password") is None
    assert json_of("user", "enable", "ann")["active"] is True
    monkeypatch.setenv("LABELLOOP_PASSWORD", "second-password")
    json_of("user", "passwd", "ann")
    with Project.open(folder) as project:
        assert review.authenticate(project, "ann", "first-password") is None
        assert review.authenticate(project, "ann", "second-password") is not None
    assert json_of("user", "revoke", "ann")["tokens"] == 1
    with Project.open(folder) as project:
        assert review.principal_for_token(project, issued["token"]) is None
    assert json_of("user", "link", "ann", "7")["labelstudio_user"] == 7
    assert cli("user", "link", "ls-person", "7", "--project", folder) == 2  # taken by ann
    assert cli("user", "disable", "nobody", "--project", folder) == 2
    assert cli("user", "list", "--project", folder) == 0
    assert "studio" in capsys.readouterr().out


def test_items_of_the_store_are_untouched_by_refused_ml_calls(client, project) -> None:
    """403 is decided before the body is read: /predict and /webhook create nothing."""
    ann = review.create_token(project, "ann")
    for method, path, body in ml_calls():
        client.request(method, path, json=body, headers=bearer(ann))
    with project.store.session() as session:
        assert session.scalar(select(Item.id)) is None
        assert session.scalar(select(Annotation.id)) is None
