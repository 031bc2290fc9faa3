"""label sets: items, predictions and answers of multi-label projects

A multi-label project's items take any subset of its labels. The sets live in JSON columns
beside the single-label ones (which stay null there): the gold, final and suggested sets of an
item and the labels a reviewer is asked about, the set a labeler predicted (and the one its
per-label calibration gives), and the set a person answered.

Revision ID: 0012_multi_label
Revises: 0011_adjudication
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_multi_label"
down_revision: str | None = "0011_adjudication"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("items", "gold_labels"),
    ("items", "final_labels"),
    ("items", "llm_labels"),
    ("items", "uncertain_labels"),
    ("predictions", "labels"),
    ("predictions", "calibrated_labels"),
    ("annotations", "labels"),
)


def upgrade() -> None:
    for table, column in COLUMNS:
        op.add_column(table, sa.Column(column, sa.JSON(), nullable=True))


def downgrade() -> None:
    for table, column in reversed(COLUMNS):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
