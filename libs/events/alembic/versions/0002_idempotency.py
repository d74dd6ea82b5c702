"""Idempotency keys table.

Revision ID: 0002_idempotency
Revises: 0001_kernel
"""

from libs.events.migrations import kernel_0002

revision = "0002_idempotency"
down_revision = "0001_kernel"
branch_labels = None
depends_on = None


def upgrade() -> None:
    kernel_0002.upgrade()


def downgrade() -> None:
    kernel_0002.downgrade()
