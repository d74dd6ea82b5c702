"""The detector's memory kept in the process (ADR 0029): samples become a journal of ingest
batches (one row per batch, its samples as JSON columns); one row tells which process wrote
the last batch and up to which batch the baselines table holds what was learned; a baseline
row becomes one block of float64 values (a line per metric, NaN where nothing is known).

Revision ID: 0004_credit_detector_memory
Revises: 0003_credit
"""

import math
import struct

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0004_credit_detector_memory"
down_revision = "0003_credit"
branch_labels = None
depends_on = None


# the layout at this revision: the lines of a block, in order
METRICS = ("subscribers", "followers", "clicks", "forwards", "comments")
RATIOS = ("forwards_per_click", "comments_per_click")


def _block(bucket: int, doc: dict) -> bytes:
    names = RATIOS if bucket < 0 else METRICS
    width = max([len(doc.get(n, [])) for n in names] + [1])
    cells: list[float] = []
    for n in names:
        values = doc.get(n, [])
        cells += [math.nan] * (width - len(values)) + [float(v) for v in values]
    return struct.pack(f"<{len(cells)}d", *cells)


def upgrade() -> None:
    bind = op.get_bind()
    old = bind.execute(sa.text(
        "SELECT account_id, bucket, vals FROM credit_baselines WHERE metric = '*'")).all()
    op.drop_table("credit_baselines")
    op.create_table(
        "credit_baselines",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True),  # hour of week; -1: ratios
        sa.Column("data", sa.LargeBinary, nullable=False),  # float64 block, NaN: unknown
    )
    if old:
        bind.execute(sa.text("INSERT INTO credit_baselines (account_id, bucket, data) "
                             "VALUES (:a, :k, :d)"),
                     [{"a": a, "k": k, "d": _block(k, orjson.loads(v))} for a, k, v in old])
    op.create_table(
        "credit_sample_batches",
        sa.Column("batch", sa.BigInteger, primary_key=True),  # the ingest batch (its epoch)
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("samples", sa.LargeBinary, nullable=False),  # JSON columns
    )
    # what was kept before is already learned: batch 0, covered by flushed = 0
    rows = op.get_bind().execute(sa.text(
        "SELECT account_id, metric, at, value FROM credit_samples ORDER BY at")).all()
    if rows:
        payload = orjson.dumps({"account_id": [r[0] for r in rows],
                                "metric": [r[1] for r in rows],
                                "at": [r[2] if isinstance(r[2], str) else r[2].isoformat()
                                       for r in rows],
                                "value": [r[3] for r in rows]})
        op.get_bind().execute(sa.text(
            "INSERT INTO credit_sample_batches (batch, count, samples) VALUES (0, :n, :p)"),
            {"n": len(rows), "p": payload})
    op.drop_table("credit_samples")
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
    op.drop_table("credit_baselines")  # the learned values are not converted back
    op.create_table(
        "credit_baselines",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("metric", sa.Text, primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True),
        sa.Column("vals", sa.Text, nullable=False),
    )
    op.create_table(
        "credit_samples",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "metric", "at"),
    )
    op.drop_table("credit_sample_batches")  # the journal's samples are not moved back
