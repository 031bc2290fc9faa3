"""HTML pages: login, the review page and the admin dashboard (Jinja2, autoescaped)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from .. import review
from ..guidelines import render_markdown
from .auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, PageUser, ProjectDep, same_origin
from .security import LoginLimiter, same_token

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.1f}%"
# An estimate with its 95% interval, and a change in accuracy (points) with its interval.
templates.env.filters["interval"] = lambda v: (
    "—" if not v else f"{100 * v['estimate']:.1f}% [{100 * v['low']:.1f}, {100 * v['high']:.1f}]"
)
templates.env.filters["change"] = lambda v: (
    "—"
    if not v
    else f"{100 * v['estimate']:+.1f} pts [{100 * v['low']:+.1f}, {100 * v['high']:+.1f}]"
)
templates.env.filters["num"] = lambda v: "—" if v is None else f"{v:.3f}"
router = APIRouter(include_in_schema=False)
PLOT_NAME = re.compile(r"^[\w.-]{1,200}\.png$")


def _safe_next(value: str | None) -> str:
    """Only local paths: an open redirect after login would help phishing."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/review"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_page(
    request: Request, *, error: str | None = None, next_path: str = "/review", code: int = 200
) -> Response:
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"csrf": token, "error": error, "next": next_path},
        status_code=code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        max_age=3600,
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_path=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    project: ProjectDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/review",
) -> Response:
    next_path = _safe_next(next)
    if not (
        same_origin(request) and same_token(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE))
    ):
        return _login_page(request, error="The form expired; please try again.", code=403)
    limiter: LoginLimiter = request.app.state.login_limiter
    # The peer's address: uvicorn replaces it with X-Forwarded-For only for trusted proxies.
    address = request.client.host if request.client else "unknown"
    wait = limiter.retry_after(username, address)
    if wait > 0:
        response = _login_page(
            request, error="Too many failed attempts; wait a few minutes.", code=429
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    who = review.authenticate(project, username, password)
    if who is None:
        limiter.failed(username, address)
        return _login_page(request, error="Wrong name or password.", next_path=next_path, code=401)
    limiter.succeeded(username, address)
    token, _csrf = review.create_session(project, who)
    response = RedirectResponse(next_path, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        max_age=review.SESSION_HOURS * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(
    request: Request,
    project: ProjectDep,
    who: PageUser,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if not (same_origin(request) and same_token(csrf_token, request.state.csrf)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "CSRF check failed")
    review.release_leases(project, who.id)
    review.end_session(project, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _page(request: Request, name: str, who: Any, **context: Any) -> Response:
    return templates.TemplateResponse(
        request, name, {"csrf": request.state.csrf, "user": who, **context}
    )


@router.get("/")
def home(who: PageUser) -> Response:
    return RedirectResponse("/dashboard" if who.is_admin else "/review", status_code=303)


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, who: PageUser, project: ProjectDep) -> Response:
    """The review page, with the guidelines in force rendered in (as safe HTML: raw HTML in
    them is escaped and only http(s) links are kept, see `labelloop.guidelines`)."""
    info = review.project_info(project)
    text = info.guidelines
    return _page(
        request,
        "review.html",
        who,
        guidelines_html=Markup(render_markdown(text)) if text else None,
        guidelines_version=info.guidelines_version,
    )


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request, who: PageUser, project: ProjectDep) -> Response:
    if not who.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admins only")
    return _page(request, "dashboard.html", who, board=project.dashboard().to_dict())


@router.get("/plots/{name}")
def plot(name: str, who: PageUser, project: ProjectDep) -> Response:
    """A PNG from the project's plots/ folder (admins only; names are checked, not joined)."""
    if not who.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admins only")
    if not PLOT_NAME.match(name) or name not in review.plot_files(project):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such plot")
    return FileResponse(Path(project.path) / "plots" / name, media_type="image/png")
