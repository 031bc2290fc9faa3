"""adjudications: decisions on multi-label items are label sets

A reviewer settles a multi-label item with a set: the decision keeps it in `labels`, and the
set the item had before in `previous_labels` (JSON, like the other sets); `label` becomes
nullable, since such a decision has no single label.

Revision ID: 0014_adjudication_sets
Revises: 0013_adjudication_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_adjudication_sets"
down_revision: str | None = "0013_adjudication_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("labels", "previous_labels")


def upgrade() -> None:
    with op.batch_alter_table("adjudications") as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, sa.JSON(), nullable=True))
        batch.alter_column("label", existing_type=sa.String(200), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM adjudications WHERE label IS NULL")
    with op.batch_alter_table("adjudications") as batch:
        batch.alter_column("label", existing_type=sa.String(200), nullable=False)
        for column in reversed(COLUMNS):
            batch.drop_column(column)
