"""predictions: the failures of an item kept when a re-run retries it

A prediction that failed (a timeout, a malformed answer) is asked again by the next run; the row
then holds the latest outcome and `failures` the earlier errors, oldest first.

Revision ID: 0008_prediction_failures
Revises: 0007_reported_confidence
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_prediction_failures"
down_revision: str | None = "0007_reported_confidence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("failures", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("predictions", "failures")
