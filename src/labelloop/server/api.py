"""The REST API under /api/v1: everything the review page does, for scripts too."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status

from .. import review
from ..errors import InputError
from ..review.labelsets import is_multi_label, submit_set
from ..vocabulary import Action
from .auth import AdminUser, AnyUser, CurrentUser, ProjectDep
from .inbound import StrictJSONRoute
from .ml_backend import retrain_in_background, training_runtime
from .schemas import (
    AccountName,
    AnnotationIn,
    AnnotationOut,
    AuditIn,
    Count,
    EnqueueIn,
    Me,
    MyAnnotation,
    PasswordIn,
    ProjectInfo,
    QueueItem,
    Queues,
    QueueSettings,
    Revoked,
    StoreId,
    TokenIn,
    TokenOut,
    UndoIn,
    UndoOut,
    User,
    UserChange,
    UserIn,
)

#: Review answers between two background retrainings of student, stack and calibration: the
#: loop simulation's rounds of 20 answers, measured against 10 (no better on either corpus, twice
#: the retraining) and 40 (worse on Rotten Tomatoes) in docs/benchmarks.md, "The loop: what
#: the students learn from, certified routing, round size".
RETRAIN_EVERY = 20

router = APIRouter(prefix="/api/v1", route_class=StrictJSONRoute)
NO_CONTENT: dict[int | str, dict[str, Any]] = {
    204: {"description": "Nothing left to review for you."}
}
HeldItems = Annotated[
    list[StoreId], Query(description="Item ids already on screen or prefetched.", max_length=100)
]


@router.get("/me", response_model=Me, tags=["review"])
def me(who: AnyUser) -> Any:
    """The account making the request."""
    return {"id": who.id, "name": who.name, "role": who.role}


@router.get("/project", response_model=ProjectInfo, tags=["review"])
def project_info(who: CurrentUser, project: ProjectDep) -> Any:
    """The task and the label set (in order: key 1 picks the first label)."""
    return review.project_info(project).to_dict()


@router.get(
    "/queue/next",
    response_model=QueueItem,
    response_model_exclude_unset=True,  # `suggested_set` only on multi-label projects
    responses=NO_CONTENT,
    tags=["review"],
)
def queue_next(
    who: CurrentUser,
    project: ProjectDep,
    exclude: HeldItems = [],  # noqa: B006 - FastAPI copies query defaults
) -> Any:
    """Your next item, leased to you for a while; 204 when nothing is left for you."""
    item = review.next_item(project, who.id, exclude=exclude)
    if item is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return item.to_dict()


@router.post(
    "/items/{item_id}/annotations",
    response_model=AnnotationOut,
    status_code=status.HTTP_201_CREATED,
    response_model_exclude_unset=True,
    tags=["review"],
)
def annotate(
    item_id: StoreId,
    body: AnnotationIn,
    who: CurrentUser,
    project: ProjectDep,
    request: Request,
    background: BackgroundTasks,
    then_next: Annotated[
        bool,
        Query(
            alias="next",
            description="Also serve your next item (as GET /queue/next) in the same round trip.",
        ),
    ] = False,
    exclude: HeldItems = [],  # noqa: B006 - FastAPI copies query defaults
) -> Any:
    """Answer an item you were served: accept or reject the suggestion, correct it, or skip.
    On a multi-label project the answer is `labels`, the list of labels that apply.

    With `?next=true` the answer's reply also holds your next item under `next` (null when
    nothing is left for you), leased in the same transaction.

    Every `RETRAIN_EVERY` answers (the app's `retrain_every`; 0 turns it off), student, stack
    and calibration are retrained in the background (once at a time), so routing follows the
    best predictor as people label.
    """
    result = _submit(project, who, item_id, body, then_next, exclude)
    every = request.app.state.retrain_every
    every = RETRAIN_EVERY if every is None else every
    if body.action != Action.SKIP and every > 0:
        runtime = training_runtime(request.app)
        runtime.answers_since_training += 1
        if runtime.answers_since_training >= every:
            runtime.answers_since_training = 0
            background.add_task(retrain_in_background, project, runtime)
    return result.to_dict()


def _submit(
    project: Any,
    who: Any,
    item_id: int,
    body: AnnotationIn,
    then_next: bool,
    exclude: list[int],
) -> review.Submitted:
    """The answer as the project takes it: a label, or on a multi-label project a set."""
    if is_multi_label(project.settings):
        if body.label is not None:
            raise InputError("this project takes `labels` (a list), not `label`")
        return submit_set(
            project,
            who,
            item_id,
            action=body.action,
            labels=body.labels,
            time_spent_s=body.time_spent_s,
            then_next=then_next,
            exclude=exclude,
        )
    if body.labels is not None:
        raise InputError("this project takes one `label`, not `labels`")
    return review.submit(
        project,
        who,
        item_id,
        action=body.action,
        label=body.label,
        time_spent_s=body.time_spent_s,
        then_next=then_next,
        exclude=exclude,
    )


@router.post("/undo", response_model=UndoOut, response_model_exclude_unset=True, tags=["review"])
def undo(who: CurrentUser, project: ProjectDep, body: UndoIn | None = None) -> Any:
    """Withdraw your latest answer (or a given one); the item is given back to you."""
    return review.undo(project, who, body.annotation_id if body else None).to_dict()


@router.delete("/annotations/{annotation_id}", response_model=UndoOut, tags=["review"])
def delete_annotation(annotation_id: StoreId, who: CurrentUser, project: ProjectDep) -> Any:
    """Withdraw one answer (yours, or anyone's for admins)."""
    return review.undo(project, who, annotation_id).to_dict()


@router.get("/annotations/mine", response_model=list[MyAnnotation], tags=["review"])
def my_annotations(
    who: CurrentUser,
    project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        StoreId | None, Query(description="Page: answers older than this id.")
    ] = None,
) -> Any:
    """Your own answers, newest first."""
    mine = review.annotations_of(project, who.id, limit=limit, before=before)
    return [answer.to_dict() for answer in mine]


@router.post("/leases/release", response_model=Count, tags=["review"])
def release(who: CurrentUser, project: ProjectDep) -> Any:
    """Give back the items you hold, so that others can take them now."""
    return {"count": review.release_leases(project, who.id)}


# ----------------------------------------------------------------------------- admin
@router.get("/users", response_model=list[User], tags=["admin"])
def users(who: AdminUser, project: ProjectDep) -> Any:
    """Every account (and name that answered): role, active, password, live tokens."""
    return [user.to_dict() for user in review.list_users(project)]


@router.post("/users", response_model=User, status_code=status.HTTP_201_CREATED, tags=["admin"])
def add_user(body: UserIn, who: AdminUser, project: ProjectDep) -> Any:
    """Create an annotator or an admin with a password, or a `service` account (tokens only,
    for Label Studio's ML-backend requests)."""
    return review.add_user(
        project,
        body.name,
        role=body.role,
        password=body.password,
        labelstudio_user=body.labelstudio_user,
    ).to_dict()


@router.patch("/users/{name}", response_model=User, tags=["admin"])
def change_user(name: AccountName, body: UserChange, who: AdminUser, project: ProjectDep) -> Any:
    """Disable or enable an account (at once, sessions and tokens included), or link it to a
    Label Studio user."""
    if "labelstudio_user" in body.model_fields_set:
        review.link_labelstudio(project, name, body.labelstudio_user)
    if body.active is not None:
        review.set_active(project, name, body.active)
    return review.get_user(project, name).to_dict()


@router.put("/users/{name}/password", status_code=status.HTTP_204_NO_CONTENT, tags=["admin"])
def set_password(
    name: AccountName, body: PasswordIn, who: AdminUser, project: ProjectDep
) -> Response:
    """A new password; the account's browser sessions end (its API tokens stay)."""
    review.set_password(project, name, body.password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{name}/tokens",
    response_model=TokenOut,
    status_code=status.HTTP_201_CREATED,
    tags=["admin"],
)
def add_token(
    name: AccountName, who: AdminUser, project: ProjectDep, body: TokenIn | None = None
) -> Any:
    """A new API token for a user, valid until revoked or for `expires` (e.g. 30d)."""
    return review.new_token(project, name, expires=body.expires if body else None).to_dict()


@router.delete("/users/{name}/tokens", response_model=Revoked, tags=["admin"])
def revoke(name: AccountName, who: AdminUser, project: ProjectDep) -> Any:
    """Delete all of a user's API tokens and end their browser sessions, at once."""
    return review.revoke(project, name).to_dict()


@router.get("/queues", response_model=Queues, tags=["admin"])
def queues(who: AdminUser, project: ProjectDep) -> Any:
    counts = review.queue_counts(project)
    queues = {queue: numbers.to_dict() for queue, numbers in counts.items()}
    return {"settings": review.queue_settings(project).to_dict(), "queues": queues}


@router.put("/queues/settings", response_model=dict[str, Any], tags=["admin"])
def set_queues(body: QueueSettings, who: AdminUser, project: ProjectDep) -> Any:
    """Overlap (answers per item, share of items), gold-check rate, audit rate, lease length."""
    return review.set_queue_settings(project, **body.model_dump(exclude_none=True)).to_dict()


@router.post(
    "/queues/{queue}/items",
    response_model=Count,
    status_code=status.HTTP_201_CREATED,
    tags=["admin"],
)
def enqueue(queue: str, body: EnqueueIn, who: AdminUser, project: ProjectDep) -> Any:
    """Queue items (store ids) in `review`, `active` or `audit`."""
    return {
        "count": review.enqueue(project, body.item_ids, queue=queue, priorities=body.priorities)
    }


@router.post("/queues/audit/sample", response_model=Count, tags=["admin"])
def sample_audit(who: AdminUser, project: ProjectDep, body: AuditIn | None = None) -> Any:
    """Queue a random share of auto-accepted items for audit."""
    body = body or AuditIn(rate=None, random_state=None)
    return {"count": review.sample_audit(project, body.rate, body.random_state)}


@router.get("/dashboard", response_model=dict[str, Any], tags=["admin"])
def dashboard(who: AdminUser, project: ProjectDep) -> Any:
    """Progress, review rate, auto-accepted accuracy, agreement and per-annotator work."""
    return project.dashboard().to_dict()
