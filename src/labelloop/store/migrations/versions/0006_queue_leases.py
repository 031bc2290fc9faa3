"""review queues: rejections counted on the task, gold checks leased per person

`answers_needed` used to hold the overlap plus one per rejection, and re-applying the overlap
settings reset it to the overlap: the answer a rejection asked for was lost and the item stayed in
review with its task closed. The rejections now have a column of their own; `answers_needed` is
the overlap alone, and a task is done once answers >= answers_needed + rejections. Existing tasks
are recounted from their live answers (which reopens the ones closed too early).

Gold checks served to a person are recorded (`gold_leases`), so that only someone who was
served a gold item can answer it.

Revision ID: 0006_queue_leases
Revises: 0005_accounts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_queue_leases"
down_revision: str | None = "0005_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_projects = sa.table("projects", sa.column("id", sa.Integer), sa.column("settings", sa.JSON))
_annotations = sa.table(
    "annotations",
    sa.column("item_id", sa.Integer),
    sa.column("queue", sa.String),
    sa.column("action", sa.String),
    sa.column("undone", sa.Boolean),
)
_tasks = sa.table(
    "review_tasks",
    sa.column("project_id", sa.Integer),
    sa.column("item_id", sa.Integer),
    sa.column("queue", sa.String),
    sa.column("answers_needed", sa.Integer),
    sa.column("answers", sa.Integer),
    sa.column("rejections", sa.Integer),
    sa.column("done", sa.Boolean),
)


def _recount() -> None:
    """Rejections from the live answers, the overlap from each project's settings, then done."""
    connection = op.get_bind()
    rejections = (
        sa.select(sa.func.count())
        .where(
            _annotations.c.item_id == _tasks.c.item_id,
            _annotations.c.queue == _tasks.c.queue,
            _annotations.c.action == "reject",
            _annotations.c.undone.is_(False),
        )
        .scalar_subquery()
    )
    connection.execute(sa.update(_tasks).values(rejections=rejections))
    overlapped = _tasks.c.queue.in_(("review", "active"))
    connection.execute(sa.update(_tasks).where(~overlapped).values(answers_needed=1))
    for project_id, settings in connection.execute(sa.select(_projects.c.id, _projects.c.settings)):
        review = (settings or {}).get("review") or {}
        overlap = int(review.get("overlap", 1))
        share = float(review.get("overlap_share", 1.0))
        selected = (_tasks.c.item_id * 7919) % 1000 < round(share * 1000)
        connection.execute(
            sa.update(_tasks)
            .where(_tasks.c.project_id == project_id, overlapped)
            .values(answers_needed=sa.case((selected, overlap), else_=1))
        )
    connection.execute(
        sa.update(_tasks).values(
            done=_tasks.c.answers >= _tasks.c.answers_needed + _tasks.c.rejections
        )
    )


def upgrade() -> None:
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rejections", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    _recount()
    op.create_table(
        "gold_leases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["annotator_id"], ["annotators.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "annotator_id", name="uq_gold_leases_item_annotator"),
    )
    op.create_index("ix_gold_leases_annotator", "gold_leases", ["annotator_id"])


def downgrade() -> None:
    op.drop_index("ix_gold_leases_annotator", table_name="gold_leases")
    op.drop_table("gold_leases")
    # The overlap plus one per rejection, as this revision's predecessor counted it.
    op.get_bind().execute(
        sa.update(_tasks).values(answers_needed=_tasks.c.answers_needed + _tasks.c.rejections)
    )
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.drop_column("rejections")
