"""Named log cursors (relay, projections), saved in the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from .db import Tx
from .store import START, LogCursor

_LOAD = text("SELECT xid, position FROM checkpoints WHERE name = :name")
_SAVE = text(
    """
    INSERT INTO checkpoints (name, xid, position, updated_at)
    VALUES (:name, :xid, :position, :now)
    ON CONFLICT (name) DO UPDATE
      SET xid = excluded.xid, position = excluded.position, updated_at = excluded.updated_at
    """
)
_DELETE = text("DELETE FROM checkpoints WHERE name = :name")
_HOLD = text("SELECT pg_try_advisory_xact_lock(hashtextextended(CAST(:name AS text), 0))")


async def hold_checkpoint(tx: Tx, name: str) -> bool:
    """Take the right to advance ``name`` until ``tx`` ends; False if another worker has it.

    Several processes of one service (uvicorn workers, replicas) each run a relay and
    projection runners over the same log: without this, two runners would read the same
    checkpoint and fold the same events twice, and two relays would publish every event
    twice. A transaction-scoped advisory lock makes one of them do each step and the others
    idle; it is released at commit or rollback, so a crashed worker never holds it. SQLite
    is single-process (and serializes writers anyway).
    """
    if tx.dialect != "postgresql":
        return True
    return bool(await tx.fetchval(_HOLD, {"name": name}))


async def load_checkpoint(conn: Tx, name: str) -> LogCursor:
    """The saved cursor of ``name``, or the start of the log."""
    row = await conn.fetchrow(_LOAD, {"name": name})
    return LogCursor(int(row[0]), int(row[1])) if row else START


async def save_checkpoint(conn: Tx, name: str, cursor: LogCursor) -> None:
    await conn.execute(
        _SAVE,
        {"name": name, "xid": cursor.xid, "position": cursor.position, "now": datetime.now(UTC)},
    )


async def reset_checkpoint(conn: Tx, name: str) -> None:
    await conn.execute(_DELETE, {"name": name})
