"""docs/security.md says who may call each route; the server must agree, route by route.

Who may call a route is found by calling it: with no credentials, then with an API token and a
browser session of each role. A call is refused when it answers 401 or 403 or redirects to the
login page to come back; anything else (200, 204, 400, 404, 422...) got past the access check.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount

from labelloop import review
from labelloop.server import create_app
from labelloop.server.auth import CSRF_HEADER, SESSION_COOKIE
from labelloop.server.ml_backend import create_ml_backend_app

DOC = Path(__file__).resolve().parents[1] / "docs" / "security.md"
ROLES = ("admin", "reviewer", "annotator", "service")
ROW = re.compile(r"^\|\s*`?(GET|POST|PUT|PATCH|DELETE)`?\s*\|\s*`([^`]+)`\s*\|([^|]*)\|([^|]*)\|")


pytestmark = pytest.mark.usefixtures("fast_password_hashing")


def doc_table(heading: str) -> dict[tuple[str, str], tuple[set[str], set[str]]]:
    """(method, path) → (who may call, credentials) from the table under `heading`."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(heading)
    section = text[start : text.find("\n## ", start + 1) if "\n## " in text[start:] else None]
    rows = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            method, path, who, how = match.groups()
            key = (method, path)
            assert key not in rows, f"{key} is listed twice"
            rows[key] = (_words(who), _words(how))
    assert rows, f"no route table under {heading!r}"
    return rows


def _words(cell: str) -> set[str]:
    return {w.strip(" `") for w in cell.split(",") if w.strip(" `")}


def _dependencies(dependant: Dependant) -> set:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _dependencies(sub)
    return found


def app_routes(app) -> list[tuple[str, str, object, set]]:
    """(method, path, route, guards of the including routers) for every route the app serves;
    a mount as GET of a file path below it."""
    found: list[tuple[str, str, object, set]] = []

    def walk(routes, prefix: str, included: set) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)  # FastAPI's lazily included routers
            if inner is not None:
                context = route.include_context
                calls = {d.dependency for d in context.dependencies or ()}
                walk(inner.routes, prefix + (context.prefix or ""), included | calls)
            elif isinstance(route, Mount):
                found.append(("GET", prefix + route.path + "/{path}", route, included))
            else:
                for method in sorted(route.methods - {"HEAD"}):
                    found.append((method, prefix + route.path, route, included))

    walk(app.routes, "", set())
    return found


def listed_routes(app, documented: dict, seen: set):
    """The app's routes, each checked to be in the doc's table and added to `seen`."""
    for method, path, route, included in app_routes(app):
        key = (method, path)
        seen.add(key)
        assert key in documented, f"{method} {path} is missing from {DOC.name}"
        yield key, route, included


def is_public(route: object, included: set, guards: set) -> bool:
    if included & guards:
        return False
    if isinstance(route, APIRoute):
        return not (_dependencies(route.dependant) & guards)
    return True  # mounts and plain Starlette routes take no credentials here


def refused(response) -> bool:
    if response.status_code in (401, 403):
        return True
    # A page without a session is sent to the login page, with the way back (logging out, a
    # success, is sent there without one).
    return response.is_redirect and response.headers["location"].startswith("/login?next=")


def call(client, method: str, path: str, route, headers=None, cookies=None, csrf=None):
    url = re.sub(r"\{path\}", "style.css", re.sub(r"\{[^}]+\}", "1", path))
    client.cookies.clear()
    for name, value in (cookies or {}).items():
        client.cookies.set(name, value)
    headers = dict(headers or {})
    if method == "GET":
        return client.request(method, url, headers=headers)
    has_form = isinstance(route, APIRoute) and any(
        type(p.field_info).__name__ == "Form" for p in route.dependant.body_params
    )
    if csrf:
        headers[CSRF_HEADER] = csrf
    if has_form:
        return client.request(method, url, headers=headers, data={"csrf_token": csrf or ""})
    return client.request(method, url, headers=headers, json={})


@pytest.fixture
def accounts(make_project):
    project = make_project()
    tokens = {}
    for role in ROLES:
        review.add_user(
            project, role, role=role, password=None if role == "service" else f"{role}-password"
        )
        tokens[role] = review.create_token(project, role)
    return project, tokens


def test_every_route_of_the_server_is_in_the_doc_with_the_roles_it_enforces(accounts) -> None:
    from labelloop.server.auth import admin_principal, api_principal, page_principal
    from labelloop.server.ml_backend import require_basic_auth

    project, tokens = accounts
    guards = {api_principal, admin_principal, page_principal, require_basic_auth}
    documented = doc_table("## Routes of `labelloop serve`")
    app = create_app(project)
    seen = set()
    with TestClient(app, follow_redirects=False) as client:
        for (method, path), route, included in listed_routes(app, documented, seen):
            key = (method, path)
            if is_public(route, included, guards):
                assert documented[key] == ({"anyone"}, {"none"}), key
                continue
            assert refused(call(client, method, path, route)), f"{key} is open without credentials"
            who, how = set(), set()
            for role in ROLES:
                bearer = {"Authorization": f"Bearer {tokens[role]}"}
                if not refused(call(client, method, path, route, headers=bearer)):
                    who.add(role)
                    how.add("token")
                if role == "service":
                    continue  # service accounts have no browser sessions
                principal = review.principal_for_token(project, tokens[role])
                cookie, csrf = review.create_session(project, principal)
                response = call(
                    client, method, path, route, cookies={SESSION_COOKIE: cookie}, csrf=csrf
                )
                if not refused(response):
                    who.add(role)
                    how.add("session")
            assert documented[key] == (who, how), (key, who, how)
    assert set(documented) == seen, f"{DOC.name} lists routes the server does not have"


def test_the_standalone_ml_backend_is_in_the_doc(accounts) -> None:
    project, _ = accounts
    documented = doc_table("## Routes of `labelloop serve --ml-backend-only`")
    app = create_ml_backend_app(project, ("ls", "secret"))
    seen = set()
    with TestClient(app, follow_redirects=False) as client:
        for key, route, _ in listed_routes(app, documented, seen):
            method, path = key
            anyone = not refused(call(client, method, path, route))
            basic = not refused(
                call(client, method, path, route, headers={"Authorization": ("Basic bHM6c2VjcmV0")})
            )  # ls:secret
            assert basic, key
            expected = ({"anyone"}, {"none"}) if anyone else ({"Label Studio"}, {"basic"})
            assert documented[key] == expected, key
    assert set(documented) == seen


def test_the_doc_states_the_limits_the_code_has() -> None:
    from labelloop.server.inbound import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BULK_BODY_BYTES
    from labelloop.server.ml_backend import MAX_PREDICT_TASKS
    from labelloop.server.security import LoginLimiter

    text = DOC.read_text(encoding="utf-8")
    limiter = LoginLimiter()
    facts = [
        f"{DEFAULT_MAX_BODY_BYTES // 2**20} MiB",
        f"{DEFAULT_MAX_BULK_BODY_BYTES // 2**20} MiB",
        f"{review.accounts.SESSION_HOURS} hours",
        f"{review.accounts.TOKEN_CACHE_S:g} s",
        f"{review.accounts.ACCOUNTS_CHECK_S:g} s",
        f"{limiter.per_address} failures",
        f"{limiter.per_pair} failures",
        f"{limiter.per_account} failures",
        f"{limiter.window_s / 60:g} minutes",
        f"{review.accounts.MIN_PASSWORD} characters",
        f"labeled | {MAX_PREDICT_TASKS} (`serve --max-predict-tasks`)",
    ]
    for name, bounds in review.queues.SETTING_BOUNDS.items():
        facts.append(f"`{name}` | {bounds.describe()}")
    missing = [fact for fact in facts if fact not in text]
    assert not missing, f"{DOC.name} does not state: {missing}"
