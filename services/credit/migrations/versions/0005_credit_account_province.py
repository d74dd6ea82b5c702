"""The province of each account credit knows (A3: a provincial regulator reads only its
province's credit). Accounts linked before this revision have none until registration's
``AccountRegistrationSubmitted`` is delivered again (a replay): until then only staff and
the national office see them (docs/decisions/0031-regulator-scope.md).

Revision ID: 0005_credit_account_province
Revises: 0004_credit_detector_memory
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_credit_account_province"
down_revision = "0004_credit_detector_memory"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("credit_identities", sa.Column("province", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("credit_identities", "province")
