"""The Label Studio ML-backend contract, served at the root of labelloop's server.

Label Studio calls `GET /health` and `POST /setup` before most operations, `POST /predict` for
pre-annotations, and `POST /webhook` synchronously with a 1 s timeout when an annotation is
created, updated or deleted, or training is asked for. So the webhook only records the answer
and leaves recalibration / retraining to a background task.

The router reads the project from `request.app.state.project`, and optionally
`app.state.labeler` (a `Labeler` for tasks that have no prediction yet; `use_labeler`),
`app.state.ml_backend_max_new` (how many such tasks one /predict may have labeled),
`app.state.ml_backend_auth` (a `(user, password)` pair: HTTP basic auth, which is what Label
Studio can send), `app.state.ml_backend_accounts` (the full server: admin and service tokens,
see `require_basic_auth`) and `app.state.ml_backend_id_key` (the task data field holding
labelloop's item id; tasks without it become items `ls-<task id>`).

Who may call: every route but /health needs the caller of `require_basic_auth`. A webhook
answer is credited to the Label Studio user who made it (`exchange.labelstudio_annotator`),
never to the caller; a delete event withdraws only answers that came from Label Studio.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import threading
import time
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, FastAPI, HTTPException, Request

from .. import review
from ..data.formats.labelstudio import SETTINGS_KEY, parse_label_config, project_label_config
from ..errors import InputError
from ..project import Project
from ..vocabulary import Role
from ..workflows import exchange
from .inbound import DEFAULT_MAX_BULK_BODY_BYTES, StrictJSONRoute, guard

log = logging.getLogger(__name__)

#: The largest share of wall-clock time background retraining may take. After a run of d
#: seconds, a run asked for meanwhile waits d * (1 / share - 1): on a large store, whose
#: retraining takes long, answers keep flowing instead of the server retraining back to back.
MAX_TRAINING_SHARE = 0.2
#: Tasks one /predict request may have the labeler answer (the embedded model labels 10-25 short
#: texts a second on 2 cores: about 5-10 s, well within Label Studio's 100 s). A request with more
#: is answered for its first task alone, which makes Label Studio ask again task by task.
MAX_PREDICT_TASKS = 100
#: Accounts whose tokens the Label Studio routes take on the full server.
CALLER_ROLES = (Role.ADMIN, Role.SERVICE)
_state_lock = threading.Lock()


def _state(request: Request, name: str, default: Any = None) -> Any:
    return getattr(request.app.state, name, default)


def _basic_credentials(encoded: str) -> tuple[bytes, bytes]:
    """The (user, password) of a basic-auth header as bytes (compared as bytes: any name)."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return b"", b""
    user, _, password = raw.partition(b":")
    return user, password


def require_basic_auth(request: Request) -> None:
    """Who may call the Label Studio routes: what Label Studio can send, HTTP basic auth.

    The standalone ML backend (`serve --ml-backend-only`) takes the configured `(user,
    password)` pair, and is open without one, like Label Studio's own ML backends. The full
    server also takes an admin's or a service account's API token: as the basic-auth password
    with the account's name as user, or as `Authorization: Bearer TOKEN`. Any other account is
    refused (403): these routes create items, record answers and change the label config.
    """
    expected = _state(request, "ml_backend_auth")
    accounts = _state(request, "ml_backend_accounts", False)
    if not expected and not accounts:
        return
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    scheme, encoded = scheme.lower(), encoded.strip()
    principal = None
    if scheme == "basic":
        user, password = _basic_credentials(encoded)
        if expected and hmac.compare_digest(user + b":" + password, ":".join(expected).encode()):
            return
        if accounts and password:
            token = password.decode("utf-8", "replace")
            found = review.principal_for_token(request.app.state.project, token)
            if found is not None and hmac.compare_digest(found.name.encode(), user):
                principal = found
    elif scheme == "bearer" and accounts and encoded:
        principal = review.principal_for_token(request.app.state.project, encoded)
    if principal is None:
        raise HTTPException(401, "authentication required", {"WWW-Authenticate": "Basic"})
    if principal.role not in CALLER_ROLES:
        raise HTTPException(403, "the Label Studio routes take an admin or service account")


router = APIRouter(
    dependencies=[Depends(require_basic_auth)], tags=["label-studio"], route_class=StrictJSONRoute
)


class _Runtime:
    """Per-app counters, a labeling lock and the background retraining state."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.labeling = threading.Lock()  # local models are not safe to call concurrently
        self.training = threading.Lock()
        self.pending = False
        self.last_training: exchange.Retrained | None = None
        self.answers_since_training = 0  # review answers since the last retraining began


def training_runtime(app: FastAPI) -> _Runtime:
    """The app's one retraining state, shared by Label Studio events and review answers."""
    with _state_lock:
        runtime = getattr(app.state, "_ml_backend_runtime", None)
        if runtime is None:
            runtime = _Runtime()
            app.state._ml_backend_runtime = runtime
        return runtime


def _runtime(request: Request) -> _Runtime:
    return training_runtime(request.app)


def _project(request: Request) -> Project:
    return request.app.state.project


def _bad_request(exc: InputError) -> HTTPException:
    return HTTPException(400, str(exc))


@router.post("/setup")
def setup(
    request: Request, body: Annotated[dict[str, Any] | None, Body()] = None
) -> dict[str, Any]:
    """Label Studio announces its project and label config; answer with the model version.

    The config's choices must be the project's labels (in any order): answers and predictions
    are exchanged by label name; a multi-label project takes a `choice="multiple"` question,
    a single-label one any other.
    """
    project = _project(request)
    schema = (body or {}).get("schema")
    if schema:
        try:
            config = parse_label_config(schema)
        except InputError as exc:
            raise _bad_request(exc) from exc
        if sorted(config.choices) != sorted(project.labels):
            missing = sorted(set(project.labels) - set(config.choices))
            unknown = sorted(set(config.choices) - set(project.labels))
            detail = (
                "the label config's choices must be the project's labels: "
                f"missing {missing!r}, not in the project {unknown!r}"
            )
            raise HTTPException(400, detail[:1000])
        if config.multiple != project.multi_label:
            wanted_kind = "multiple" if project.multi_label else "single"
            raise HTTPException(
                400,
                f'the label config\'s <Choices> must have choice="{wanted_kind}": the project '
                f"is {'multi' if project.multi_label else 'single'}-label",
            )
        stored = project.settings.get(SETTINGS_KEY) or {}
        wanted = {"label_config": schema, "project": (body or {}).get("project")}
        if {k: stored.get(k) for k in wanted} != wanted:
            project.update_settings(**{SETTINGS_KEY: {**stored, **wanted}})
    _runtime(request).counts["setup"] += 1
    return {"model_version": exchange.model_version(project, _state(request, "labeler"))}


@router.post("/predict")
def predict(request: Request, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """One prediction per task, in the order given (`score` = calibrated confidence).

    On a multi-label project the result holds the calibrated set as its `choices`, `score` is
    the item's confidence (that every label decision on it is right) and the result's
    `meta.probs` each label's calibrated probability.

    Tasks never seen become items and are labeled by the app's labeler (one call, batched),
    at most `ml_backend_max_new` of them per request: past that, the first ones are labeled and
    the answer holds the first task's prediction alone, which Label Studio takes as "ask task by
    task" (it does). Answers are stored, so asking again calls no labeler.
    """
    project = _project(request)
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        raise HTTPException(400, "the body needs a 'tasks' list")
    runtime = _runtime(request)
    try:
        config = (
            parse_label_config(body["label_config"])
            if body.get("label_config")
            else project_label_config(project)
        )
        with runtime.labeling:
            results = exchange.labelstudio_predictions(
                project,
                tasks,
                config,
                labeler=_state(request, "labeler"),
                id_key=_state(request, "ml_backend_id_key"),
                max_new=_state(request, "ml_backend_max_new", MAX_PREDICT_TASKS),
            )
    except InputError as exc:
        raise _bad_request(exc) from exc
    runtime.counts["predict_requests"] += 1
    runtime.counts["predicted_tasks"] += len(results)
    return {"results": results}


def retrain_in_background(project: Project, runtime: _Runtime) -> None:
    """Run retraining once at a time; events that arrive meanwhile cause one more run."""
    runtime.pending = True
    if not runtime.training.acquire(blocking=False):
        return
    try:
        while runtime.pending:
            runtime.pending = False
            began = time.monotonic()
            try:
                runtime.last_training = exchange.retrain(project)
                runtime.counts["trainings"] += 1
            except Exception:  # a background task must not die silently nor kill the server
                log.exception("retraining after new human labels failed")
                runtime.counts["training_failures"] += 1
            if runtime.pending:
                time.sleep((time.monotonic() - began) * (1 / MAX_TRAINING_SHARE - 1))
    finally:
        runtime.training.release()


@router.post("/webhook")
def webhook(
    request: Request, background: BackgroundTasks, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Record an annotation event at once; recalibrate / retrain after answering."""
    project = _project(request)
    runtime = _runtime(request)
    try:
        result = exchange.labelstudio_event(
            project,
            body,
            project_label_config(project),
            id_key=_state(request, "ml_backend_id_key"),
        )
    except InputError as exc:
        raise _bad_request(exc) from exc
    runtime.counts[f"webhook_{body.get('action', 'unknown').lower()}"] += 1
    if result.retrain:
        background.add_task(retrain_in_background, project, runtime)
    return {"status": "ok", **result.to_dict()}


@router.get("/metrics")
def metrics(request: Request) -> dict[str, Any]:
    """Counts of what Label Studio asked for, and the project's state counts."""
    runtime = _runtime(request)
    return {
        "model_version": exchange.model_version(_project(request), _state(request, "labeler")),
        "requests": dict(runtime.counts),
        "last_training": None if runtime.last_training is None else runtime.last_training.to_dict(),
        "project": _project(request).stats().to_dict(),
    }


@router.get("/versions")
def versions(request: Request) -> dict[str, Any]:
    return {"versions": [exchange.model_version(_project(request), _state(request, "labeler"))]}


def use_labeler(app: FastAPI, labeler: Any, max_predict_tasks: int | None = None) -> None:
    """Have `labeler` answer the tasks /predict is asked about that have no prediction yet,
    at most `max_predict_tasks` per request (default `MAX_PREDICT_TASKS`)."""
    if max_predict_tasks is not None and max_predict_tasks < 1:
        raise InputError(
            f"the most tasks labeled per request must be at least 1, not {max_predict_tasks}"
        )
    app.state.labeler = labeler
    app.state.ml_backend_max_new = max_predict_tasks or MAX_PREDICT_TASKS


def create_ml_backend_app(
    project: Project,
    basic_auth: tuple[str, str] | None = None,
    *,
    labeler: Any = None,
    id_key: str | None = None,
    max_body_bytes: int | None = None,
    max_predict_tasks: int | None = None,
) -> FastAPI:
    """The ML backend alone (`labelloop serve --ml-backend-only`): health and the contract.

    Its routes carry whole tasks: bodies up to `max_body_bytes` (default: the review server's
    bulk limit, 64 MiB). `labeler` answers tasks without a prediction (see `use_labeler`).
    """
    app = FastAPI(title="labelloop ML backend for Label Studio", docs_url=None, redoc_url=None)
    app.state.project = project
    use_labeler(app, labeler, max_predict_tasks)
    app.state.ml_backend_auth = basic_auth
    app.state.ml_backend_id_key = id_key

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "UP", "model_class": "labelloop", "project": project.path.name}

    app.include_router(router)
    bulk = max_body_bytes or DEFAULT_MAX_BULK_BODY_BYTES
    guard(app, max_body_bytes=bulk, max_bulk_body_bytes=bulk)
    return app
