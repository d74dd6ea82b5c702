"""Aggregate snapshots table.

Revision ID: 0003_snapshots
Revises: 0002_idempotency
"""

from libs.events.migrations import kernel_0003

revision = "0003_snapshots"
down_revision = "0002_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    kernel_0003.upgrade()


def downgrade() -> None:
    kernel_0003.downgrade()
