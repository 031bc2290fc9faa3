"""The adjudication routes and page: reviewers settle disagreements, rejections and flags.

Who may call what is said in each route; the rules are `labelloop.review.adjudication`'s.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from pydantic import BaseModel, Field

from .. import review
from ..guidelines import render_markdown
from ..review import adjudication
from .auth import AdminUser, CurrentUser, PageUser, ProjectDep, ReviewerUser
from .inbound import StrictJSONRoute
from .pages import templates
from .schemas import StoreId

router = APIRouter(prefix="/api/v1", route_class=StrictJSONRoute)
pages = APIRouter(include_in_schema=False)
NO_CONTENT: dict[int | str, dict[str, Any]] = {
    204: {"description": "Nothing waits for a reviewer."}
}
Note = Annotated[str | None, Field(None, max_length=adjudication.MAX_NOTE)]


class DecisionIn(BaseModel):
    label: str | None = Field(None, max_length=200, description="Single-label projects.")
    labels: list[Annotated[str, Field(max_length=200)]] | None = Field(
        None, max_length=1000, description="Multi-label projects: the set (may be empty)."
    )
    note: Note = None


class DecisionOut(BaseModel):
    decision_id: int
    item_id: int
    label: str | None
    state: str
    previous_label: str | None
    previous_source: str | None
    note: str | None
    labels: list[str] | None = Field(None, description="Multi-label projects: the final set.")
    previous_labels: list[str] | None = Field(None, description="The set it replaced.")


class DecisionUndoIn(BaseModel):
    decision_id: StoreId | None = Field(None, description="Default: your latest decision.")


class FlagIn(BaseModel):
    reason: Note = None


class AdjudicationSettings(BaseModel):
    show_names: bool = Field(description="Show reviewers who gave each answer.")


@router.get("/adjudication", tags=["adjudication"])
def adjudication_queue(
    who: ReviewerUser,
    project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=adjudication.MAX_LISTED)] = 100,
) -> dict[str, Any]:
    """Reviewers and admins: the items waiting for a decision (disagreement, rejected by
    everyone, flagged), oldest first. Reads only."""
    return adjudication.queue(project, who, limit=limit).to_dict()


@router.get("/adjudication/next", tags=["adjudication"], responses=NO_CONTENT)
def adjudication_next(
    who: ReviewerUser,
    project: ProjectDep,
    exclude: Annotated[list[StoreId], Query(max_length=100)] = [],  # noqa: B006
) -> Any:
    """Reviewers and admins: the next item waiting for a decision (not in `exclude`), with
    every answer, the suggestion and its calibrated confidence; 204 when none. Reads only."""
    found = adjudication.next_case(project, who, exclude=exclude)
    if found is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return found.to_dict()


@router.get("/adjudication/items/{item_id}", tags=["adjudication"])
def adjudication_item(item_id: StoreId, who: ReviewerUser, project: ProjectDep) -> Any:
    """Reviewers and admins: one item as the reviewer sees it. Reads only."""
    return adjudication.case(project, who, item_id).to_dict()


@router.post(
    "/adjudication/items/{item_id}/decision",
    response_model=DecisionOut,
    status_code=status.HTTP_201_CREATED,
    tags=["adjudication"],
)
def decide(item_id: StoreId, body: DecisionIn, who: ReviewerUser, project: ProjectDep) -> Any:
    """Reviewers and admins: settle a pool item. Stores the decision (label, or on a
    multi-label project the set `labels`; note; reviewer), then sets the item's final label
    to it with source `adjudicated`."""
    return adjudication.decide(
        project, who, item_id, body.label, body.note, labels=body.labels
    ).to_dict()


@router.post("/adjudication/undo", tags=["adjudication"])
def undo_decision(
    who: ReviewerUser, project: ProjectDep, body: DecisionUndoIn | None = None
) -> Any:
    """Reviewers (their own decisions) and admins (anyone's): withdraw a decision, by default
    the caller's latest; the item's label is recomputed from its answers."""
    return adjudication.undo(project, who, body.decision_id if body else None).to_dict()


@router.post("/items/{item_id}/flag", status_code=status.HTTP_201_CREATED, tags=["review"])
def flag(
    item_id: StoreId, who: CurrentUser, project: ProjectDep, body: FlagIn | None = None
) -> Any:
    """People: ask a reviewer to look at an item you were served or answered (reviewers and
    admins: any item). Adds your flag, with an optional reason; nothing else changes."""
    return adjudication.flag(project, who, item_id, body.reason if body else None).to_dict()


@router.delete("/items/{item_id}/flag", tags=["review"])
def unflag(item_id: StoreId, who: CurrentUser, project: ProjectDep) -> Any:
    """People: withdraw your own flag on an item. Changes nobody else's flags."""
    return adjudication.unflag(project, who, item_id).to_dict()


@router.put("/adjudication/settings", tags=["admin"])
def settings(body: AdjudicationSettings, who: AdminUser, project: ProjectDep) -> Any:
    """Admins: show reviewers the annotators' names, or hide them (blind adjudication).
    Changes the project's `adjudication_show_names` setting."""
    return adjudication.set_show_names(project, body.show_names).to_dict()


@pages.get("/adjudicate", response_class=HTMLResponse)
def adjudicate_page(request: Request, who: PageUser, project: ProjectDep) -> Response:
    """Reviewers and admins: the adjudication page (keyboard first). Reads only; decisions go
    through the API routes above."""
    adjudication.check_reviewer(who)
    text = review.project_info(project).guidelines
    return templates.TemplateResponse(
        request,
        "adjudicate.html",
        {
            "csrf": request.state.csrf,
            "user": who,
            "guidelines_html": Markup(render_markdown(text)) if text else None,
        },
    )
