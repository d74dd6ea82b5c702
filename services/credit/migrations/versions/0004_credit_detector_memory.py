"""The detector's memory kept in the process (ADR 0029): samples become an append-only
journal numbered by ingest batch, and one row tells which process wrote the last batch
and up to which batch the baselines table holds what was learned.

Revision ID: 0004_credit_detector_memory
Revises: 0003_credit
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_credit_detector_memory"
down_revision = "0003_credit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table("credit_samples", "credit_samples_v1")
    op.create_table(
        "credit_samples",
        sa.Column("batch", sa.BigInteger, nullable=False),  # the ingest batch (its epoch)
        sa.Column("seq", sa.Integer, nullable=False),  # the sample's place in its batch
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_index("credit_samples_batch", "credit_samples", ["batch"])
    # what was kept before is already learned: batch 0, covered by flushed = 0
    op.execute("INSERT INTO credit_samples (batch, seq, account_id, metric, at, value) "
               "SELECT 0, 0, account_id, metric, at, value FROM credit_samples_v1")
    op.drop_table("credit_samples_v1")
    op.create_table(
        "credit_detector",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("epoch", sa.BigInteger, nullable=False),  # the last batch ingested
        sa.Column("writer", sa.Text, nullable=False),  # the process that ingested it
        sa.Column("prev_writer", sa.Text, nullable=False),  # ... and the one before
        sa.Column("flushed", sa.BigInteger, nullable=False),  # baselines hold batches <= it
    )
    op.execute("INSERT INTO credit_detector (id, epoch, writer, prev_writer, flushed) "
               "VALUES (1, 0, '', '', 0)")


def downgrade() -> None:
    op.drop_table("credit_detector")
    op.drop_index("credit_samples_batch", "credit_samples")
    op.rename_table("credit_samples", "credit_samples_v2")
    op.create_table(
        "credit_samples",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "metric", "at"),
    )
    op.execute("INSERT INTO credit_samples SELECT DISTINCT ON (account_id, metric, at) "
               "account_id, metric, at, value FROM credit_samples_v2 "
               "ORDER BY account_id, metric, at, batch DESC, seq DESC")
    op.drop_table("credit_samples_v2")
