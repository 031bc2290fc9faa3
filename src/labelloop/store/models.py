"""The project store: SQLAlchemy 2 models.

One database may hold several projects (a team's PostgreSQL), so every row belongs to a project.
The item row carries its current routing state and final label, denormalised, because queues and
exports over millions of items must not recompute them from predictions and annotations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..vocabulary import ItemState, Role, Split


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """The model's Core table, typed as one (the declarative `__table__` is typed as any
    selectable), for the prebuilt Core statements of the serving path."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


# Item states and splits, as exported (short names for `labelloop.vocabulary`).
UNRESOLVED, AUTO_ACCEPTED = ItemState.UNRESOLVED, ItemState.AUTO_ACCEPTED
IN_REVIEW, HUMAN_LABELED = ItemState.IN_REVIEW, ItemState.HUMAN_LABELED
STATES = tuple(ItemState)

POOL, GOLD = Split.POOL, Split.GOLD


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(Text)
    labels: Mapped[list[Any]] = mapped_column(JSON)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Grows with every account change (see `review`): token caches compare it, not the tokens.
    accounts_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("project_id", "uid", name="uq_items_project_uid"),
        Index("ix_items_project_state", "project_id", "state"),
        Index("ix_items_project_split", "project_id", "split"),
        Index("ix_items_needs_reviewer", "project_id", "needs_reviewer"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    uid: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    split: Mapped[str] = mapped_column(String(8), default=POOL)
    gold_label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=UNRESOLVED)
    final_label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    final_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Where people's answers set the label under the weighted consensus: the posterior of each
    # label ({label: probability}) under the annotator-quality model; null otherwise.
    label_posterior: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The prediction routing currently trusts (best predictor), denormalised for queues/exports.
    prediction_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    llm_label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    calibrated_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    audit: Mapped[bool] = mapped_column(Boolean, default=False)
    # Multi-label projects only (`store.labelsets`): the gold, final and suggested label sets.
    gold_labels: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    final_labels: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    llm_labels: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    # The labels whose decision routing found uncertain: what a reviewer is asked about.
    uncertain_labels: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    # Whether the item waits for a reviewer (`review.waiting`), kept with its answers, flags,
    # tasks and decisions so that counting the queue is one query; null: not settled yet (an
    # item the upgrade to this column could not decide in SQL; the review service settles it).
    needs_reviewer: Mapped[bool | None] = mapped_column(
        Boolean, nullable=True, server_default=false()
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("item_id", "model", "prompt_version", name="uq_predictions_key"),
        Index("ix_predictions_project_model", "project_id", "model", "prompt_version"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(300))
    prompt_version: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    probs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Set only when `confidence` is the number the model wrote (the endpoint gave no
    # probabilities): such a confidence is not to be trusted before calibration.
    reported_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    calibrated_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The label the calibrated distribution puts first where it is not the labeler's own
    # (vector scaling's biases can move it); null otherwise.
    calibrated_label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reasoning: Mapped[str | None] = mapped_column(Text, nullable=True)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    raw: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Earlier failed attempts of this key, oldest first ({"error", "at"}), kept when a re-run
    # retries the item; `error` and the other columns hold the latest outcome.
    failures: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    # Multi-label projects: the predicted set (`probs` then holds each label's own probability).
    labels: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    # The set per-label calibration gives (calibrated p >= 1/2); null before calibration.
    calibrated_labels: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Annotator(Base):
    __tablename__ = "annotators"
    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_annotators_name"),
        Index("uq_annotators_labelstudio_user", "project_id", "labelstudio_user", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=Role.ANNOTATOR.value)
    password_hash: Mapped[str | None] = mapped_column(String(300), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The Label Studio user (id) whose answers sent by webhook are this account's.
    labelstudio_user: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReviewSession(Base):
    """A browser login: the cookie holds a random token, the store only its hash."""

    __tablename__ = "review_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (
        Index("ix_annotations_item", "item_id"),
        Index("ix_annotations_annotator", "annotator_id", "id"),
        Index("ix_annotations_item_annotator", "item_id", "annotator_id"),
        # The adjudication queue groups a project's live answers by item: every column it reads.
        Index("ix_annotations_project_item", "project_id", "item_id", "action", "undone", "label"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotators.id", ondelete="SET NULL"), nullable=True
    )
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    action: Mapped[str] = mapped_column(String(16))  # label | accept | correct | reject | skip
    suggested_label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    queue: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source: Mapped[str] = mapped_column(String(32), default="labelloop")
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    time_spent_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    # Multi-label projects: the label set the person gave (possibly empty).
    labels: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Calibration(Base):
    __tablename__ = "calibrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(300))
    prompt_version: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(32))
    calibrator: Mapped[dict[str, Any]] = mapped_column(JSON)
    threshold: Mapped[float] = mapped_column(Float)
    label_thresholds: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ActiveLearningRound(Base):
    __tablename__ = "al_rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    strategy: Mapped[str] = mapped_column(String(64))
    k: Mapped[int] = mapped_column(Integer)
    selected: Mapped[list[Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewTask(Base):
    """One entry of a review queue: routing, active learning, audit, gold check or overlap."""

    __tablename__ = "review_tasks"
    __table_args__ = (
        UniqueConstraint("item_id", "queue", name="uq_review_tasks_item_queue"),
        Index("ix_review_tasks_next", "project_id", "done", "priority"),
        # Only leased tasks (a handful per person at work), so that the planners use it.
        Index(
            "ix_review_tasks_leased",
            "lease_owner",
            sqlite_where=text("lease_owner IS NOT NULL"),
            postgresql_where=text("lease_owner IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    queue: Mapped[str] = mapped_column(String(32))  # review | active | audit | gold | overlap
    priority: Mapped[float] = mapped_column(Float, default=0.0)  # lower is served first
    # Answers wanted before rejections: the overlap for review/active tasks, else 1. Each live
    # rejection asks one more person (`rejections`): the task is done once
    # answers >= answers_needed + rejections.
    answers_needed: Mapped[int] = mapped_column(Integer, default=1)
    answers: Mapped[int] = mapped_column(Integer, default=0)
    rejections: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GoldLease(Base):
    """A gold check served to one person, who alone may answer it.

    Gold checks are not tasks: many people are served the same gold item, each once, so each
    serving is a lease of its own (deleted when answered or given back).
    """

    __tablename__ = "gold_leases"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id", name="uq_gold_leases_item_annotator"),
        Index("ix_gold_leases_annotator", "annotator_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    lease_expires: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GuidelineVersion(Base):
    """One version of a project's guidelines (Markdown) and label descriptions.

    Every change adds a version carrying both, so that what annotators and labelers were told
    at any time stays known; the newest version is in force.
    """

    __tablename__ = "guidelines"
    __table_args__ = (UniqueConstraint("project_id", "version", name="uq_guidelines_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text, default="")
    label_descriptions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    author: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("item_id", "model", name="uq_embeddings_key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Adjudication(Base):
    """A reviewer's decision on an item: the final label, with a note.

    The newest live decision of an item is its final label (source `adjudicated`) whatever its
    answers say; undoing it marks it undone, and the item's label is recomputed from what is
    left. The label the item had before is kept, so that the decision's record says what it
    replaced.
    """

    __tablename__ = "adjudications"
    __table_args__ = (Index("ix_adjudications_item", "item_id", "undone"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotators.id", ondelete="SET NULL"), nullable=True
    )
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # A multi-label item's decision is a set (`label` stays null there), like its answers.
    labels: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Why the item was in the queue when decided (disagreement, rejected, flagged), comma-joined.
    reasons: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    previous_labels: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    previous_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ItemFlag(Base):
    """An annotator's request that a reviewer look at an item (unclear, guideline gap...)."""

    __tablename__ = "item_flags"
    __table_args__ = (Index("ix_item_flags_item", "item_id", "cleared"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotators.id", ondelete="SET NULL"), nullable=True
    )
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    cleared: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
