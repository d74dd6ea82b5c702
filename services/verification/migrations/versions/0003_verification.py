"""Qualification documents, stored once by content hash (events carry only the hash).

Revision ID: 0003_verification
Revises: 0002_idempotency
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_verification"
down_revision = "0002_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verification_documents",
        sa.Column("sha256", sa.Text, primary_key=True),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("verification_documents")
