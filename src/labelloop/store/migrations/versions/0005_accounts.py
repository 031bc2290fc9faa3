"""accounts: token expiry, a Label Studio user link, and a version to drop cached tokens

`api_tokens.expires_at` (null: never) makes tokens expire; `annotators.labelstudio_user` links
an account to the Label Studio user whose webhook answers are credited to it; a project's
`accounts_version` grows with every account change, so that a server's token cache notices a
change made by another process (the CLI) without reading every token again.

Revision ID: 0005_accounts
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_accounts"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("annotators", sa.Column("labelstudio_user", sa.Integer(), nullable=True))
    op.create_index(
        "uq_annotators_labelstudio_user",
        "annotators",
        ["project_id", "labelstudio_user"],
        unique=True,
    )
    op.add_column(
        "projects",
        sa.Column("accounts_version", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch_op:
        batch_op.drop_column("accounts_version")
    op.drop_index("uq_annotators_labelstudio_user", table_name="annotators")
    with op.batch_alter_table("annotators") as batch_op:
        batch_op.drop_column("labelstudio_user")
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.drop_column("expires_at")
