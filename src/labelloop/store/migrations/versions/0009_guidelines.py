"""guidelines: a project's guidelines and label descriptions, one row per version

Revision ID: 0009_guidelines
Revises: 0008_prediction_failures
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_guidelines"
down_revision: str | None = "0008_prediction_failures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guidelines",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer(),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("label_descriptions", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("source", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "version", name="uq_guidelines_version"),
    )


def downgrade() -> None:
    op.drop_table("guidelines")
