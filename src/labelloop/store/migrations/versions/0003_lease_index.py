"""review server: a partial lease index (only leased tasks)

The lease index held one entry per task, almost all NULL: after ANALYZE the planners judged it
useless and scanned the whole queue to find a person's lease. Indexing only leased tasks keeps
it as small as the number of people at work, and the lookup a single index probe.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEASED = sa.text("lease_owner IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_review_tasks_lease", table_name="review_tasks")
    op.create_index(
        "ix_review_tasks_leased",
        "review_tasks",
        ["lease_owner"],
        sqlite_where=LEASED,
        postgresql_where=LEASED,
    )


def downgrade() -> None:
    op.drop_index("ix_review_tasks_leased", table_name="review_tasks")
    op.create_index("ix_review_tasks_lease", "review_tasks", ["lease_owner"])
