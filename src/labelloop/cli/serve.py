"""`labelloop serve` and `labelloop user`: the review server and its accounts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .. import review
from ..errors import InputError
from .app import app
from .common import DbUrl, JsonOut, ProjectDir, emit, open_project, out

PASSWORD_ENV = "LABELLOOP_PASSWORD"
ML_AUTH_ENV = "LABELLOOP_ML_BACKEND_AUTH"

user_app = typer.Typer(help="Accounts for the review server.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    ml_backend_only: Annotated[
        bool, typer.Option(help="Serve only the Label Studio ML backend (and /health).")
    ] = False,
    ml_basic_auth: Annotated[
        str | None,
        typer.Option(
            envvar=ML_AUTH_ENV,
            help="USER:PASSWORD that Label Studio sends to the ML backend (basic auth).",
        ),
    ] = None,
    retrain_every: Annotated[
        int | None,
        typer.Option(min=0, help="Review answers between background retrainings (0: never)."),
    ] = None,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(min=1, help="Largest request body in bytes (default 1 MiB); larger: 413."),
    ] = None,
    max_bulk_body_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Largest body of the Label Studio routes (/webhook, /predict, /setup) and of "
            "bulk enqueues, which carry whole tasks (default 64 MiB).",
        ),
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
) -> None:
    """Serve the review UI, the REST API and the Label Studio ML backend."""
    from ..server import create_app, run
    from ..server.ml_backend import create_ml_backend_app

    basic_auth = None
    if ml_basic_auth:
        user, sep, password = ml_basic_auth.partition(":")
        if not sep or not user or not password:
            raise InputError(f"--ml-basic-auth must look like USER:PASSWORD ({ML_AUTH_ENV})")
        basic_auth = (user, password)
    with open_project(project, db) as proj:
        if ml_backend_only:
            server = create_ml_backend_app(proj, basic_auth, max_body_bytes=max_bulk_body_bytes)
            what = "Label Studio ML backend"
        else:
            review.apply_overlap(proj)
            server = create_app(
                proj,
                ml_backend_auth=basic_auth,
                retrain_every=retrain_every,
                max_body_bytes=max_body_bytes,
                max_bulk_body_bytes=max_bulk_body_bytes,
            )
            what = "Review server"
        out.print(f"{what} for {proj.path} on http://{host}:{port}/ (Ctrl+C stops it)")
        run(server, host=host, port=port)


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="admin or annotator.")] = "annotator",
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Create an account; the password comes from LABELLOOP_PASSWORD or a prompt."""
    password = os.environ.get(PASSWORD_ENV) or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True, err=True
    )
    with open_project(project, db) as proj:
        result = review.add_user(proj, name, role=role, password=password)
    emit(result, as_json, lambda r: out.print(f"Created {r['role']} {r['name']!r}."))


@user_app.command("token")
def user_token(
    name: Annotated[str, typer.Argument(help="Login name.")],
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Print a new API token for scripts (Authorization: Bearer TOKEN); it is shown once."""
    with open_project(project, db) as proj:
        token = review.create_token(proj, name)
    emit({"name": name, "token": token}, as_json, lambda r: print(r["token"]))
