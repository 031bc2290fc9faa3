"""The FastAPI application: one process serving the review UI, the REST API and the ML backend."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__ as version
from ..errors import InputError, LabelloopError
from ..project import Project
from ..review import ConflictError, ForbiddenError, NotFoundError
from . import adjudication, api, pages
from .auth import LoginRequired, api_principal
from .inbound import ErrorResponse, guard
from .ml_backend import router as ml_backend_router
from .schemas import Health
from .security import LoginLimiter, SecurityHeaders

STATIC = Path(__file__).parent / "static"
ERROR_STATUS: list[tuple[type[Exception], int]] = [
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (ConflictError, status.HTTP_409_CONFLICT),
    (ForbiddenError, status.HTTP_403_FORBIDDEN),
    (InputError, status.HTTP_400_BAD_REQUEST),
]


def _error_status(exc: Exception) -> int:
    return next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 500)


def create_app(
    project: Project,
    *,
    login_limiter: LoginLimiter | None = None,
    ml_backend_auth: tuple[str, str] | None = None,
    retrain_every: int | None = None,
    max_body_bytes: int | None = None,
    max_bulk_body_bytes: int | None = None,
) -> FastAPI:
    """The app for one project; the caller keeps ownership of `project` (and closes it).

    The Label Studio ML-backend routes take HTTP basic auth: `ml_backend_auth`, or an account
    name with one of its API tokens as the password. `retrain_every` review answers trigger a
    background retraining (default `api.RETRAIN_EVERY`; 0 turns it off). Request bodies over
    `max_body_bytes` (default 1 MiB) are refused with 413; the ML-backend routes and bulk
    enqueues, which carry whole tasks or long id lists, have `max_bulk_body_bytes` (64 MiB).
    """
    app = FastAPI(
        title="labelloop review server",
        version=version,
        description="Review UI, REST API and Label Studio ML backend of a labelloop project. "
        "Scripts authenticate with `Authorization: Bearer TOKEN` (`labelloop user token NAME`).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind authentication
    )
    app.state.project = project
    app.state.login_limiter = login_limiter or LoginLimiter()
    app.state.ml_backend_auth = ml_backend_auth
    app.state.ml_backend_accounts = True
    app.state.retrain_every = retrain_every

    @app.get("/health", response_model=Health, tags=["health"])
    def health() -> Any:
        """Liveness, without authentication (the Label Studio ML-backend shape)."""
        return {"status": "UP", "model_class": "labelloop", "project": project.path.name}

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(api_principal)])
    def openapi() -> Any:
        return app.openapi()

    app.include_router(api.router)
    app.include_router(adjudication.router)
    app.include_router(pages.router)
    app.include_router(adjudication.pages)
    app.include_router(ml_backend_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(LoginRequired)
    def to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)

    @app.exception_handler(LabelloopError)
    def labelloop_error(request: Request, exc: LabelloopError) -> Response:
        return ErrorResponse({"detail": str(exc)}, status_code=_error_status(exc))

    guard(app, max_body_bytes=max_body_bytes, max_bulk_body_bytes=max_bulk_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app


def server_config(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    forwarded_allow_ips: str | None = None,
) -> Any:
    """How uvicorn serves an app. The fastest installed event loop and HTTP parser are used and
    the per-request access log is off: at hundreds of requests per second it costs more than the
    database work.

    X-Forwarded-For / -Proto are believed only from the proxies in `forwarded_allow_ips`
    (comma-separated addresses or networks, "*" for any); by default from nobody, not even
    127.0.0.1 (uvicorn's default), so that a client cannot choose the address the login
    limiter counts it under.
    """
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        loop="auto",  # uvloop when installed
        http="auto",  # httptools when installed
        timeout_keep_alive=30,
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=forwarded_allow_ips or None,
    )


def run(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Serve an app with uvicorn in this process (one process: leases, the login limiter and
    retraining live in it); see `server_config`."""
    import uvicorn

    config = server_config(app, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops on Ctrl+C, then re-raises it
        server.run()
    if not server.started:
        raise LabelloopError(f"the server could not start on {host}:{port} (see the log above)")
