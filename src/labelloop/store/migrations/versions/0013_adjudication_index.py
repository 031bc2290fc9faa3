"""annotations: an index on (project, item, action, undone, label) for the adjudication queue

The queue groups a project's live labeling answers by item and counts their distinct labels;
the index holds every column it reads, so a store with several projects (or a large one) answers
from the index alone, in item order.

Revision ID: 0013_adjudication_index
Revises: 0012_multi_label
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_adjudication_index"
down_revision: str | None = "0012_multi_label"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["project_id", "item_id", "action", "undone", "label"]


def upgrade() -> None:
    op.create_index("ix_annotations_project_item", "annotations", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_annotations_project_item", table_name="annotations")
