"""Verified persons by phone (a changed contact that belongs to a different verified
person, A11.2), the accounts' province (a regulator lists its own, A3) and the end of a
transfer's follower opt-out period (the sweep completes it afterwards, A11.2).

Revision ID: 0004_transfer_persons_opt_outs
Revises: 0003_transfer
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_transfer_persons_opt_outs"
down_revision = "0003_transfer"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transfer_persons",
        sa.Column("phone_blind", sa.Text, primary_key=True),
        sa.Column("id_blind", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "transfer_verified_accounts",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("transfer_accounts", sa.Column("province", sa.Text, nullable=True))
    op.add_column("transfer_applications",
                  sa.Column("opt_out_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("transfer_applications_opt_out", "transfer_applications",
                    ["status", "opt_out_until"])


def downgrade() -> None:
    op.drop_index("transfer_applications_opt_out", "transfer_applications")
    op.drop_column("transfer_applications", "opt_out_until")
    op.drop_column("transfer_accounts", "province")
    op.drop_table("transfer_verified_accounts")
    op.drop_table("transfer_persons")
