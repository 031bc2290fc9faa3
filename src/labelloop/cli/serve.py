"""`labelloop serve` and `labelloop user`: the review server and its accounts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import InputError
from .app import app
from .common import (
    ApiKeyEnv,
    BaseUrl,
    DbUrl,
    JsonOut,
    ProjectDir,
    emit,
    err,
    open_project,
    out,
)

if TYPE_CHECKING:
    from ..review.accounts import Account, IssuedToken

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
        typer.Option(
            min=0,
            help="Review answers between background retrainings (default 20, the round size "
            "the loop simulation measured best; 0: never).",
        ),
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
    model: Annotated[
        str,
        typer.Option(
            help="Labeler for the tasks Label Studio asks about that have no prediction yet: "
            "local (embedded), local:gemma3, a PATH.gguf, a model name served at --base-url, "
            "or none (suggest only what is already predicted).",
        ),
    ] = "local",
    base_url: BaseUrl = None,
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 16,
    max_predict_tasks: Annotated[
        int,
        typer.Option(
            min=1,
            help="Most tasks one Label Studio /predict request may have labeled; a larger "
            "request gets the first task's prediction alone, and Label Studio asks task by task.",
        ),
    ] = 100,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated proxy addresses (or networks) whose X-Forwarded-For and "
            "X-Forwarded-Proto are believed; default: none, the peer's address is the client's "
            "(the login limiter counts by it).",
        ),
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
) -> None:
    """Serve the review UI, the REST API and the Label Studio ML backend.

    Tasks Label Studio sends that have no prediction yet are labeled with --model, calibrated
    with the project's calibration for that model, and stored.
    """
    from .. import review
    from ..project import make_labeler
    from ..server import create_app, run
    from ..server.ml_backend import create_ml_backend_app, use_labeler

    basic_auth = None
    if ml_basic_auth:
        user, sep, password = ml_basic_auth.partition(":")
        if not sep or not user or not password:
            raise InputError(f"--ml-basic-auth must look like USER:PASSWORD ({ML_AUTH_ENV})")
        basic_auth = (user, password)
    labeler = None
    with open_project(project, db) as proj:
        if model != "none":
            labeler = make_labeler(
                model,
                multi_label=proj.multi_label,
                base_url=base_url,
                api_key_env=api_key_env,
                concurrency=concurrency,
            )
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
        use_labeler(server, labeler, max_predict_tasks)
        out.print(f"{what} for {proj.path} on http://{host}:{port}/ (Ctrl+C stops it)")
        try:
            run(server, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips)
        finally:
            if labeler is not None:
                labeler.close()


Name = Annotated[str, typer.Argument(help="Login name.")]


def _password(prompt: str = "Password") -> str:
    return os.environ.get(PASSWORD_ENV) or typer.prompt(
        prompt, hide_input=True, confirmation_prompt=True, err=True
    )


@user_app.command("add")
def user_add(
    name: Name,
    role: Annotated[
        str,
        typer.Option(
            help="admin, reviewer (adjudicates), annotator, or service (Label Studio; tokens only)."
        ),
    ] = "annotator",
    labelstudio_user: Annotated[
        int | None,
        typer.Option(min=0, help="Credit this Label Studio user id's webhook answers to it."),
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Create an account; a person's password comes from LABELLOOP_PASSWORD or a prompt."""
    from .. import review

    password = None if role == "service" else _password()
    with open_project(project, db) as proj:
        result = review.add_user(
            proj, name, role=role, password=password, labelstudio_user=labelstudio_user
        )
    emit(result, as_json, lambda r: out.print(f"Created {r.role} {r.name!r}."))


@user_app.command("list")
def user_list(project: ProjectDir = Path("."), db: DbUrl = None, as_json: JsonOut = False) -> None:
    """Every account (and name that answered): role, active, password, live tokens."""
    from .. import review

    with open_project(project, db) as proj:
        result = review.list_users(proj)
    emit(result, as_json, _render_users)


def _render_users(users: list[Account]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table("name", "role", "active", "password", "tokens", "Label Studio user")
    for u in users:
        table.add_row(
            escape(u.name),
            u.role,
            "yes" if u.active else "disabled",
            "yes" if u.password else "—",
            str(u.tokens),
            "—" if u.labelstudio_user is None else str(u.labelstudio_user),
        )
    out.print(table)


@user_app.command("disable")
def user_disable(
    name: Name, project: ProjectDir = Path("."), db: DbUrl = None, as_json: JsonOut = False
) -> None:
    """Stop an account at once: its sessions end, its tokens and leases stop working."""
    _set_active(name, False, project, db, as_json)


@user_app.command("enable")
def user_enable(
    name: Name, project: ProjectDir = Path("."), db: DbUrl = None, as_json: JsonOut = False
) -> None:
    """Let a disabled account work again (its tokens that were not revoked included)."""
    _set_active(name, True, project, db, as_json)


def _set_active(name: str, active: bool, project: Path, db: str | None, as_json: bool) -> None:
    from .. import review

    with open_project(project, db) as proj:
        result = review.set_active(proj, name, active)
    done = "Enabled" if active else "Disabled"
    emit(result, as_json, lambda r: out.print(f"{done} {r.name!r}."))


@user_app.command("passwd")
def user_passwd(
    name: Name, project: ProjectDir = Path("."), db: DbUrl = None, as_json: JsonOut = False
) -> None:
    """Set a new password (LABELLOOP_PASSWORD or a prompt); the account's sessions end."""
    from .. import review

    password = _password("New password")
    with open_project(project, db) as proj:
        review.set_password(proj, name, password)
    emit({"name": name}, as_json, lambda r: out.print(f"Password of {r['name']!r} changed."))


@user_app.command("revoke")
def user_revoke(
    name: Name, project: ProjectDir = Path("."), db: DbUrl = None, as_json: JsonOut = False
) -> None:
    """Delete all of an account's API tokens and end its browser sessions."""
    from .. import review

    with open_project(project, db) as proj:
        result = review.revoke(proj, name)
    emit(
        result,
        as_json,
        lambda r: out.print(f"Revoked {r.tokens} tokens and {r.sessions} sessions of {r.name!r}."),
    )


@user_app.command("link")
def user_link(
    name: Name,
    labelstudio_user: Annotated[
        int | None,
        typer.Argument(min=0, help="The Label Studio user id; leave out to unlink."),
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Credit the answers a Label Studio user sends by webhook to this account."""
    from .. import review

    with open_project(project, db) as proj:
        result = review.link_labelstudio(proj, name, labelstudio_user)
    emit(
        result,
        as_json,
        lambda r: out.print(f"{r.name!r} is Label Studio user {r.labelstudio_user}."),
    )


@user_app.command("token")
def user_token(
    name: Name,
    expires: Annotated[
        str | None,
        typer.Option(help="Lifetime such as 90m, 12h, 30d or 2w (default: until revoked)."),
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Print a new API token for scripts (Authorization: Bearer TOKEN); it is shown once."""
    from .. import review

    with open_project(project, db) as proj:
        result = review.new_token(proj, name, expires=expires)
    emit(result, as_json, _render_token)


def _render_token(result: IssuedToken) -> None:
    print(result.token)
    if result.expires_at is not None:
        err.print(f"valid until {result.expires_at:%Y-%m-%d %H:%M} UTC")
