"""Kernel tables: events (append-only), checkpoints, inbox, dead letters, projection documents."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# One statement each: asyncpg prepares every statement, and a prepared statement
# cannot hold several commands.
_PG_APPEND_ONLY = [
    """CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'events are append-only: % on events refused', TG_OP
           USING ERRCODE = 'raise_exception', HINT = 'append a compensating event instead';
       END $$""",
    """CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
       FOR EACH ROW EXECUTE FUNCTION events_append_only()""",
    """CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
       FOR EACH STATEMENT EXECUTE FUNCTION events_append_only()""",
]

_SQLITE_APPEND_ONLY = [
    """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
       BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE on events refused'); END""",
    """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
       BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE on events refused'); END""",
]


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    if pg:
        # xid8 of the inserting transaction: readers only pass rows whose xid is below
        # the oldest running transaction, so a late commit can never land behind them
        # (docs/decisions/0001-gap-safe-global-order.md).
        op.execute(
            """
            CREATE TABLE events (
              position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              xid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
              event_id       text NOT NULL,
              stream_id      text NOT NULL,
              stream_version integer NOT NULL,
              type           text NOT NULL,
              schema_version integer NOT NULL,
              time           timestamptz NOT NULL,
              data           jsonb NOT NULL,
              source         text NOT NULL,
              subject        text NOT NULL,
              correlation_id text NOT NULL,
              causation_id   text,
              traceparent    text,
              CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
              CONSTRAINT events_event_id_key UNIQUE (event_id),
              CONSTRAINT events_stream_version_positive CHECK (stream_version > 0)
            )
            """
        )
        op.execute("CREATE INDEX events_log_order ON events (xid, position)")
        for ddl in _PG_APPEND_ONLY:
            op.execute(ddl)
    else:
        op.create_table(
            "events",
            sa.Column("position", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("xid", sa.BigInteger, nullable=False, server_default="0"),
            sa.Column("event_id", sa.Text, nullable=False),
            sa.Column("stream_id", sa.Text, nullable=False),
            sa.Column("stream_version", sa.Integer, nullable=False),
            sa.Column("type", sa.Text, nullable=False),
            sa.Column("schema_version", sa.Integer, nullable=False),
            sa.Column("time", sa.Text, nullable=False),
            sa.Column("data", sa.Text, nullable=False),
            sa.Column("source", sa.Text, nullable=False),
            sa.Column("subject", sa.Text, nullable=False),
            sa.Column("correlation_id", sa.Text, nullable=False),
            sa.Column("causation_id", sa.Text),
            sa.Column("traceparent", sa.Text),
            sa.UniqueConstraint("stream_id", "stream_version", name="events_stream_version_key"),
            sa.UniqueConstraint("event_id", name="events_event_id_key"),
            sa.CheckConstraint("stream_version > 0", name="events_stream_version_positive"),
            sqlite_autoincrement=True,
        )
        for ddl in _SQLITE_APPEND_ONLY:
            op.execute(ddl)
    # No other index on events: every index is paid on every append (see bench/). The
    # unique event_id stays: consumers' inboxes key on it, so a second event with the same
    # id (a caller-supplied id reused) would silently vanish downstream.

    op.create_table(
        "checkpoints",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("xid", sa.BigInteger, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text),
        sa.Column("event_type", sa.Text),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("key", sa.LargeBinary),
        sa.Column("value", sa.LargeBinary),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redriven_at", sa.DateTime(timezone=True)),
    )
    op.create_index("dead_letters_consumer", "dead_letters", ["consumer", "failed_at"])
    op.create_table(
        "projection_documents",
        sa.Column("projection", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("doc", sa.Text, nullable=False),
    )


def downgrade() -> None:
    bind = op.get_bind()
    for table in ("projection_documents", "dead_letters", "inbox", "checkpoints", "events"):
        op.drop_table(table)
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS events_append_only()")
