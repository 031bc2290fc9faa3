"""predictions: the confidence a model wrote, told apart from a probability

Endpoints that return token log-probabilities give each prediction the label's probability as its
confidence. Where an endpoint gives none, the confidence is the number the model wrote in its
answer; `reported_confidence` holds it then (and only then), so that routing can say it trusts
self-reported, uncalibrated numbers. Existing labeled predictions without probabilities held
such a number: it is copied.

Revision ID: 0007_reported_confidence
Revises: 0006_queue_leases
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_reported_confidence"
down_revision: str | None = "0006_queue_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("reported_confidence", sa.Float(), nullable=True))
    op.execute(
        "UPDATE predictions SET reported_confidence = confidence"
        " WHERE label IS NOT NULL AND confidence IS NOT NULL"
        " AND (probs IS NULL OR CAST(probs AS TEXT) = 'null')"  # a JSON null, as stored
    )


def downgrade() -> None:
    op.drop_column("predictions", "reported_confidence")
