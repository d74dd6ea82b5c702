"""Credit's look-up tables: which identity runs which account (from registration), and
the traffic detector's seasonal baselines and raw samples (A12.1).

Revision ID: 0003_credit
Revises: 0002_idempotency
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_credit"
down_revision = "0002_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_identities",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("identity_blind", sa.Text, nullable=False),
    )
    op.create_index("credit_identities_blind", "credit_identities", ["identity_blind"])
    op.create_table(
        "credit_baselines",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("metric", sa.Text, primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True),  # hour of week; -1: ratios
        sa.Column("vals", sa.Text, nullable=False),  # JSON list of recent values
    )
    op.create_table(
        "credit_samples",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "metric", "at"),
    )


def downgrade() -> None:
    op.drop_table("credit_samples")
    op.drop_table("credit_baselines")
    op.drop_table("credit_identities")
