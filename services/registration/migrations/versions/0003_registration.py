"""Registration's write-side look-up tables and its account list read model.

Revision ID: 0003_registration
Revises: 0002_idempotency

- ``registration_keys``: one row per identity / phone / device / network blind index,
  updated in the same transaction as the append: accounts counted (A10.1), the current
  velocity window (A10.3), the re-registration ban (A8.3). The row is also the lock that
  serializes concurrent registrations of one identity.
- ``registration_closed_names``: names of accounts closed under enforcement (A8.3).
- ``registration_account_list``: the columns the list and the sweep filter on (a read
  model kept by the ``accounts`` projection, rebuildable).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_registration"
down_revision = "0002_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registration_keys",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("accounts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("win_start", sa.Float, nullable=False, server_default="0"),
        sa.Column("win_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("win_seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("banned_until", sa.Float),
        sa.Column("ban_permanent", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("ban_measure_id", sa.Text),
    )
    op.create_table(
        "registration_closed_names",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Text, nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "registration_account_list",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("province", sa.Text, nullable=False),
        sa.Column("last_active_at", sa.Float, nullable=False),
        sa.Column("due_at", sa.Float),  # the next clock decision: deadline or expiry
    )
    op.create_index("registration_account_list_owner", "registration_account_list",
                    ["owner", "account_id"])
    op.create_index("registration_account_list_status", "registration_account_list",
                    ["status", "last_active_at"])


def downgrade() -> None:
    for table in ("registration_account_list", "registration_closed_names",
                  "registration_keys"):
        op.drop_table(table)
