"""Who is calling: API tokens (Bearer) for scripts, session cookies (with CSRF) for browsers.

Roles: `annotator` (the review routes, own work), `reviewer` (also the adjudication routes and
page), `admin` (also the admin routes, pages and the Label Studio routes), `service` (a machine
caller with tokens only: the Label Studio routes, `/api/v1/me` and the OpenAPI document; no
pages, no review). Disabled accounts, revoked and
expired tokens and ended sessions are refused with 401.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from .. import review
from ..project import Project
from ..review import Principal
from .security import SAFE_METHODS, same_token

SESSION_COOKIE = "labelloop_session"
LOGIN_CSRF_COOKIE = "labelloop_login_csrf"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """A page was asked for without a session: the app answers with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def get_project(request: Request) -> Project:
    return request.app.state.project


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


def same_origin(request: Request) -> bool:
    """A browser's Origin (when sent) must be this server: a second line behind the token."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _from_session(request: Request, *, check_csrf: bool = True) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    found = review.session_principal(get_project(request), token)
    if found is None:
        return None
    who, csrf = found
    request.state.csrf = csrf
    if (
        check_csrf
        and request.method not in SAFE_METHODS
        and not (same_origin(request) and same_token(request.headers.get(CSRF_HEADER), csrf))
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "CSRF check failed")
    return who


async def api_principal(request: Request) -> Principal:
    """The caller of an API route: a Bearer token, or a browser session plus its CSRF token.

    A token seen in the last seconds is answered from memory on the event loop; anything that
    needs the store is looked up in a worker thread.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        who = review.cached_principal(get_project(request), token.strip())
        if who is not None:
            return who
    return await run_in_threadpool(_api_principal, request)


def _api_principal(request: Request) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        who = review.principal_for_token(get_project(request), token.strip())
        if who is None:
            raise _unauthorized("invalid or revoked API token")
        return who
    who = _from_session(request)
    if who is None:
        raise _unauthorized("log in or send an API token (Authorization: Bearer TOKEN)")
    return who


async def person_principal(who: Annotated[Principal, Depends(api_principal)]) -> Principal:
    """A person (annotator or admin): service accounts only call the Label Studio routes."""
    if who.is_service:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "service accounts only call the Label Studio routes"
        )
    return who


async def admin_principal(who: Annotated[Principal, Depends(api_principal)]) -> Principal:
    if not who.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admins only")
    return who


async def reviewer_principal(who: Annotated[Principal, Depends(api_principal)]) -> Principal:
    if not who.is_reviewer:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "reviewers and admins only")
    return who


def page_principal(request: Request) -> Principal:
    """The person behind a page request; without a session, a redirect to the login page.

    Pages post HTML forms, which cannot send the CSRF header: a page route that changes state
    must compare the form's `csrf_token` with `request.state.csrf` itself (see /logout).
    """
    who = _from_session(request, check_csrf=False)
    if who is None:
        raise LoginRequired(request.url.path)
    return who


AnyUser = Annotated[Principal, Depends(api_principal)]
CurrentUser = Annotated[Principal, Depends(person_principal)]
AdminUser = Annotated[Principal, Depends(admin_principal)]
ReviewerUser = Annotated[Principal, Depends(reviewer_principal)]
PageUser = Annotated[Principal, Depends(page_principal)]


async def _project_dependency(request: Request) -> Project:
    return get_project(request)  # async: no worker thread for reading app state


ProjectDep = Annotated[Project, Depends(_project_dependency)]
