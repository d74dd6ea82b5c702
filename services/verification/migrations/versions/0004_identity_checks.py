"""Pending identity checks (ADR 0026): the accounts whose providers have not given a
verdict yet, when to ask again and when a person takes over. Times are epoch seconds so
that both databases compare them the same way.

Revision ID: 0004_identity_checks
Revises: 0003_verification
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_identity_checks"
down_revision = "0003_verification"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_checks",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("review_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("identity_checks_due", "identity_checks", ["due_at"])


def downgrade() -> None:
    op.drop_table("identity_checks")
