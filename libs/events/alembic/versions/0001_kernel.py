"""Event kernel tables.

Revision ID: 0001_kernel
Revises:
"""

from libs.events.migrations import kernel_0001

revision = "0001_kernel"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    kernel_0001.upgrade()


def downgrade() -> None:
    kernel_0001.downgrade()
