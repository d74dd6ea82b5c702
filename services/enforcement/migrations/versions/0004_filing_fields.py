"""What a filing with the provincial office lists of an account (A7.1): the organization's
business name, registered address and USCC, and the account's verification state.

Revision ID: 0004_filing_fields
Revises: 0003_enforcement
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_filing_fields"
down_revision = "0003_enforcement"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("enforcement_accounts", sa.Column("business_name", sa.Text, nullable=True))
    op.add_column("enforcement_accounts",
                  sa.Column("registered_address", sa.Text, nullable=True))
    op.add_column("enforcement_accounts", sa.Column("uscc", sa.Text, nullable=True))
    op.add_column("enforcement_accounts",
                  sa.Column("verification", sa.Text, nullable=False, server_default="pending"))
    # The filing export pages through one province in account order.
    op.create_index("enforcement_accounts_filing", "enforcement_accounts",
                    ["province", "account_id"])


def downgrade() -> None:
    op.drop_index("enforcement_accounts_filing", "enforcement_accounts")
    for column in ("verification", "uscc", "registered_address", "business_name"):
        op.drop_column("enforcement_accounts", column)
