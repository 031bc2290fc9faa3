"""Request and response bodies of the REST API (they document it in OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, FiniteFloat, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from ..errors import InputError
from ..review import SETTING_BOUNDS, Bounds, check_setting
from ..vocabulary import Action, Role

#: The largest id a store holds (SQLite and PostgreSQL ids are signed 64-bit integers).
MAX_STORE_ID = 2**63 - 1
#: A store id as it enters the API, in a path, a query or a body: anything else is a 422.
StoreId = Annotated[int, Field(ge=1, le=MAX_STORE_ID)]
#: An account name in a path: no control characters (PostgreSQL text cannot even hold NUL).
AccountName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class Health(BaseModel):
    status: str = "UP"
    model_class: str = "labelloop"
    project: str


class Suggestion(BaseModel):
    label: str
    confidence: float | None = Field(description="Calibrated confidence when calibrated.")
    calibrated: bool
    reasoning: str | None


class SuggestedSet(BaseModel):
    """A multi-label item's suggestion: the set, and what each label's decision rests on."""

    labels: list[str] = Field(description="The suggested set (calibrated when calibrated).")
    probs: dict[str, float | None] = Field(
        description="Each label's probability of applying (None: the predictor gave none)."
    )
    calibrated: bool
    uncertain: list[str] = Field(description="The labels routing asks the reviewer about.")


class QueueItem(BaseModel):
    id: int = Field(description="Store id of the item; answer it at /api/v1/items/{id}/...")
    uid: str = Field(description="The item's id in the imported data.")
    text: str
    truncated: bool = Field(description="True when the text was cut for display.")
    suggestion: Suggestion | None
    queue: str
    suggested_set: SuggestedSet | None = Field(
        None,
        description="Multi-label projects only (absent otherwise): the suggested set with "
        "each label's probability; null when the item has no prediction.",
    )


class AnnotationIn(BaseModel):
    action: Action
    label: str | None = Field(None, max_length=200)
    labels: list[Annotated[str, Field(max_length=200)]] | None = Field(
        None,
        max_length=1000,
        description="Multi-label projects: the labels that apply (possibly none), instead of "
        "`label`.",
    )
    time_spent_s: FiniteFloat | None = Field(None, ge=0, le=86_400)


class GoldFeedback(BaseModel):
    """Shown after a gold check when the project's `gold_feedback` setting is on: on a
    single-label project the expected label and yours, on a multi-label one the sets."""

    expected_label: str | None = None
    your_label: str | None = None
    correct: bool
    description: str | None = Field(
        None, description="The expected label's description, if any (single-label)."
    )
    expected_labels: list[str] | None = Field(None, description="The gold set (multi-label).")
    your_labels: list[str] | None = Field(None, description="Your set (multi-label).")
    missing: list[str] | None = Field(None, description="Gold labels you left out.")
    extra: list[str] | None = Field(None, description="Labels you gave that gold lacks.")
    descriptions: dict[str, str] | None = Field(
        None, description="The missed and added labels' descriptions (multi-label)."
    )
    guidelines_version: int | None


class AnnotationOut(BaseModel):
    annotation_id: int
    item_id: int
    action: str
    gold_feedback: GoldFeedback | None = Field(
        None, description="After a gold check, when the project shows the expected label."
    )
    next: QueueItem | None = Field(
        None, description="Present when asked for with ?next=true: your next item, or null."
    )


class UndoIn(BaseModel):
    annotation_id: StoreId | None = Field(None, description="Default: your latest answer.")


class UndoOut(BaseModel):
    undone: int
    item: QueueItem


class MyAnnotation(BaseModel):
    id: int
    item_id: int
    uid: str
    action: str
    label: str | None
    labels: list[str] | None = Field(None, description="Multi-label projects: the set given.")
    suggested_label: str | None
    time_spent_s: float | None
    undone: bool
    created_at: str | None


class Me(BaseModel):
    id: int
    name: str
    role: str


class ProjectInfo(BaseModel):
    name: str
    task: str
    labels: list[str]
    multi_label: bool = Field(False, description="Items take a set of labels (`labels`).")
    label_descriptions: dict[str, str] = Field(
        default_factory=dict, description="What each described label means (plain text)."
    )
    guidelines: str | None = Field(None, description="The guidelines in force, as Markdown.")
    guidelines_version: int | None = None


#: A Label Studio user id (a signed 32-bit integer there), or none.
LabelStudioUser = Annotated[
    int | None, Field(ge=0, le=2**31 - 1, description="A Label Studio user id.")
]


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="No control or bidi characters.")
    role: Role = Role.ANNOTATOR
    password: str | None = Field(
        None,
        min_length=8,
        max_length=1024,
        description="Needed by people; a service account has none (it uses API tokens).",
    )
    labelstudio_user: LabelStudioUser = None

    @model_validator(mode="after")
    def _password_for_people(self) -> UserIn:
        if (self.password is None) != (self.role == Role.SERVICE):
            raise ValueError("people need a password; a service account takes none")
        return self


class User(BaseModel):
    id: int
    name: str
    role: str
    active: bool = True
    password: bool = Field(False, description="Whether the account can log in to the pages.")
    tokens: int = Field(0, description="Unexpired API tokens.")
    labelstudio_user: int | None = Field(
        None, description="The Label Studio user whose webhook answers are this account's."
    )


class UserChange(BaseModel):
    active: bool | None = Field(
        None,
        description="false disables the account: its sessions end, its tokens stop working "
        "and its leases are given back at once; true enables it again.",
    )
    labelstudio_user: LabelStudioUser = Field(
        None, description="Link a Label Studio user id; null unlinks."
    )


class PasswordIn(BaseModel):
    password: str = Field(min_length=8, max_length=1024)


class TokenIn(BaseModel):
    expires: str | None = Field(
        None,
        max_length=20,
        description="Lifetime such as 90m, 12h, 30d or 2w (at most 3650d); default: none.",
        examples=["30d"],
    )


class TokenOut(BaseModel):
    token: str = Field(description="Shown once; only its hash is stored.")
    expires_at: datetime | None = Field(None, description="When the token stops working.")


class Revoked(BaseModel):
    name: str
    tokens: int = Field(description="API tokens deleted.")
    sessions: int = Field(description="Browser sessions ended.")


def _setting(name: str, description: str) -> FieldInfo:
    """A queue setting's field: its range (`review.SETTING_BOUNDS`) documented and enforced."""
    bounds = SETTING_BOUNDS[name]
    assert isinstance(bounds, Bounds)  # the named settings have their own fields
    described = f"{description}: {bounds.describe()}."
    if bounds.high_open:
        return Field(ge=bounds.low, lt=bounds.high, description=described)
    return Field(ge=bounds.low, le=bounds.high, description=described)


class QueueSettings(BaseModel):
    """Queue settings to change; those left out (or null) stay as they are."""

    overlap: Annotated[
        int | None, _setting("overlap", "Answers wanted per item, from different people")
    ] = None
    overlap_share: Annotated[
        float | None, _setting("overlap_share", "Share of items that get the overlap")
    ] = None
    gold_rate: Annotated[
        float | None, _setting("gold_rate", "Share of served items that are gold checks")
    ] = None
    audit_rate: Annotated[
        float | None, _setting("audit_rate", "Share of auto-accepted items audited")
    ] = None
    lease_minutes: Annotated[
        float | None,
        _setting("lease_minutes", "How long an item served to someone stays theirs alone"),
    ] = None
    overlap_mode: Literal["fixed", "adaptive"] | None = Field(
        None,
        description="fixed: `overlap` answers per item; adaptive: another answer only while the "
        "item's label is uncertain under the annotator model.",
    )
    overlap_target: Annotated[
        float | None,
        _setting(
            "overlap_target",
            "Adaptive overlap: the posterior of the leading label that settles an item",
        ),
    ] = None
    overlap_cap: Annotated[
        int | None, _setting("overlap_cap", "Adaptive overlap: most answers per item")
    ] = None

    @field_validator("*", mode="before")
    @classmethod
    def within_bounds(cls, value: object, info: ValidationInfo) -> object:
        """One message naming the setting and its whole range (NaN and infinities included)."""
        if value is None:
            return value
        # A field validator always runs for a named field; the name is None only in model ones.
        assert info.field_name is not None
        try:
            return check_setting(info.field_name, value)
        except InputError as exc:
            raise PydanticCustomError("queue_setting", str(exc)) from None


class EnqueueIn(BaseModel):
    item_ids: list[StoreId] = Field(max_length=1_000_000)
    priorities: list[FiniteFloat] | None = Field(
        None, max_length=1_000_000, description="One per item; lower is served first."
    )


class AuditIn(BaseModel):
    rate: FiniteFloat | None = Field(None, ge=0, le=1)
    random_state: int | None = None


class Count(BaseModel):
    count: int


class Queues(BaseModel):
    settings: dict[str, int | float | str] = Field(
        description="Every queue setting in force (defaults included), by name."
    )
    queues: dict[str, dict[str, int]]
