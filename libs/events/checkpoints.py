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
