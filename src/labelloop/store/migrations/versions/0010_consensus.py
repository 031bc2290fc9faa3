"""items: the posterior of the label under the weighted consensus

The final label of an item with several answers is the posterior mode of a model of annotator
quality; the posterior is kept beside it so that exports show how sure the team's label is.

Revision ID: 0010_consensus
Revises: 0009_guidelines
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_consensus"
down_revision: str | None = "0009_guidelines"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("items", sa.Column("label_posterior", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("items", "label_posterior")
