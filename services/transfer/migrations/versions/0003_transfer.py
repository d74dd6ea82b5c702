"""The transfer service's look-up tables: accounts as registration announced them (and
as transfers changed them), enforcement's measures, the applications' index and the
completed moves (A11.1, A11.2, A17.3).

Revision ID: 0003_transfer
Revises: 0002_idempotency
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_transfer"
down_revision = "0002_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transfer_accounts",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("entity_type", sa.Text, nullable=True),
        sa.Column("owner_name", sa.Text, nullable=True),
        sa.Column("owner_id_blind", sa.Text, nullable=True),
        sa.Column("owner_phone_blind", sa.Text, nullable=True),
        sa.Column("owner_masked", sa.Text, nullable=True),
        sa.Column("last_transferred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "transfer_measures",
        sa.Column("measure_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("measure", sa.Text, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("transfer_measures_account", "transfer_measures", ["account_id"])
    op.create_table(
        "transfer_applications",
        sa.Column("transfer_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("transferee_id_blind", sa.Text, nullable=False),
        sa.Column("transferee_phone_blind", sa.Text, nullable=False),
        sa.Column("transferee_masked", sa.Text, nullable=False),
        sa.Column("entity_type", sa.Text, nullable=False),
        sa.Column("accepted_by", sa.Text, nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("transfer_applications_account", "transfer_applications", ["account_id"])
    op.create_index("transfer_applications_status", "transfer_applications",
                    ["status", "deadline"])
    op.create_table(
        "transfer_moves",
        sa.Column("transfer_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("from_blind", sa.Text, nullable=True),
        sa.Column("to_blind", sa.Text, nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("transfer_moves", "transfer_applications", "transfer_measures",
                  "transfer_accounts"):
        op.drop_table(table)
