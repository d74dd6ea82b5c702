"""The accounts enforcement knows of: province (from registration) and credit level (from
credit), kept in the consumer's transaction.

Revision ID: 0003_enforcement
Revises: 0002_idempotency
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_enforcement"
down_revision = "0002_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enforcement_accounts",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("province", sa.Text, nullable=True),
        sa.Column("category", sa.Text, nullable=True),
        sa.Column("entity_type", sa.Text, nullable=True),
        sa.Column("credit_level", sa.Text, nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("enforcement_accounts_province", "enforcement_accounts", ["province"])


def downgrade() -> None:
    op.drop_table("enforcement_accounts")
