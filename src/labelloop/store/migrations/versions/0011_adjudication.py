"""adjudications and item flags: a reviewer's decisions, and annotators' requests for one

Items whose answers disagree, that everyone rejected, or that an annotator flagged go to an
adjudication queue; a reviewer's decision there becomes the final label (source `adjudicated`).

Revision ID: 0011_adjudication
Revises: 0010_consensus
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_adjudication"
down_revision: str | None = "0010_consensus"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _owner_columns() -> list[sa.Column]:
    return [
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer(),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("item_id", BIG_ID, sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    ]


def _person(name: str) -> sa.Column:
    return sa.Column(
        name, sa.Integer(), sa.ForeignKey("annotators.id", ondelete="SET NULL"), nullable=True
    )


def upgrade() -> None:
    op.create_table(
        "adjudications",
        *_owner_columns(),
        _person("reviewer_id"),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reasons", sa.String(100), nullable=True),
        sa.Column("previous_label", sa.String(200), nullable=True),
        sa.Column("previous_source", sa.String(16), nullable=True),
        sa.Column("undone", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_adjudications_item", "adjudications", ["item_id", "undone"])
    op.create_table(
        "item_flags",
        *_owner_columns(),
        _person("annotator_id"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("cleared", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_item_flags_item", "item_flags", ["item_id", "cleared"])


def downgrade() -> None:
    op.drop_index("ix_item_flags_item", "item_flags")
    op.drop_table("item_flags")
    op.drop_index("ix_adjudications_item", "adjudications")
    op.drop_table("adjudications")
