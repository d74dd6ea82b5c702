"""Aggregate snapshots: one row per stream, the state folded up to a stream version."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def upgrade() -> None:
    # The latest snapshot of each stream only: an older one is never read again. ``aggregate``
    # and ``schema_version`` say which fold wrote ``state``; a reader with another schema
    # ignores the row and replays the stream (docs/decisions/0021-aggregate-snapshots.md).
    op.create_table(
        "snapshots",
        sa.Column("stream_id", sa.Text, primary_key=True),
        sa.Column("aggregate", sa.Text, nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("stream_version", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("snapshots")
