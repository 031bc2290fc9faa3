"""items: whether each waits for a reviewer, so that counting the adjudication queue is one query

The flag is kept by the review service wherever answers, flags, tasks and decisions change
(`labelloop.review.waiting`). Here every item that cannot wait (gold, decided, or with neither
a live answer nor a live flag) starts as not waiting; the others are left null, "not settled",
and the review service settles them with its rule the first time the project's counts are read.

Revision ID: 0015_needs_reviewer
Revises: 0014_adjudication_sets
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_needs_reviewer"
down_revision: str | None = "0014_adjudication_sets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Pool items without a decision in force that hold a live answer or a live flag: those the
#: rule may find waiting.
UNSETTLED = """
UPDATE items SET needs_reviewer = NULL
WHERE split = 'pool'
  AND NOT EXISTS (
    SELECT 1 FROM adjudications d WHERE d.item_id = items.id AND d.undone = :no)
  AND (EXISTS (
         SELECT 1 FROM annotations a WHERE a.item_id = items.id AND a.undone = :no)
       OR EXISTS (
         SELECT 1 FROM item_flags f WHERE f.item_id = items.id AND f.cleared = :no))
"""


def upgrade() -> None:
    op.add_column(
        "items",
        sa.Column("needs_reviewer", sa.Boolean(), nullable=True, server_default=sa.false()),
    )
    op.create_index("ix_items_needs_reviewer", "items", ["project_id", "needs_reviewer"])
    op.get_bind().execute(sa.text(UNSETTLED), {"no": False})


def downgrade() -> None:
    op.drop_index("ix_items_needs_reviewer", table_name="items")
    # In place (SQLite 3.35+ and PostgreSQL): copying the table, as a batch would, drops it,
    # and the answers and tasks that cascade from items with it.
    op.execute("ALTER TABLE items DROP COLUMN needs_reviewer")
