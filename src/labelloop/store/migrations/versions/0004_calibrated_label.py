"""calibration: the label a calibrator vouches for

Vector scaling's per-label biases can put another label first; that label, not the labeler's
raw answer, is then what routing accepts and what people see.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("calibrated_label", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("predictions", "calibrated_label")
