"""Named log cursors (relay, projections), saved in the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from .db import CUSTOM_PLANS_SETTING, Tx
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
# A tailer's transaction reads the log after its cursor: the hold also asks, in the same
# round trip, for every later statement of the transaction to be planned for its
# parameters (Tx.plan_per_execution: a generic plan cached on a young log scans all of it,
# ADR 0047).
_HOLD = text("SELECT pg_try_advisory_xact_lock(hashtextextended(CAST(:name AS text), 0)), "
             + CUSTOM_PLANS_SETTING)
# The same for several names at once: every lock is tried (an aggregate reads every row), and
# the locks taken are released with the transaction whatever the answer.
_HOLD_MANY = text("SELECT bool_and(pg_try_advisory_xact_lock(hashtextextended(n, 0))), "
                  "min(" + CUSTOM_PLANS_SETTING + ") FROM unnest(CAST(:names AS text[])) AS n")
_LOAD_MANY = text("SELECT name, xid, position FROM checkpoints "
                  "WHERE name = ANY(CAST(:names AS text[]))")
_SAVE_MANY = text(
    """
    INSERT INTO checkpoints (name, xid, position, updated_at)
    SELECT n, CAST(:xid AS bigint), CAST(:position AS bigint), CAST(:now AS timestamptz)
    FROM unnest(CAST(:names AS text[])) AS n
    ON CONFLICT (name) DO UPDATE
      SET xid = excluded.xid, position = excluded.position, updated_at = excluded.updated_at
    """
)


async def hold_checkpoint(tx: Tx, name: str) -> bool:
    """Take the right to advance ``name`` until ``tx`` ends; False if another worker has it.

    Several processes of one service (uvicorn workers, replicas) each run a relay and
    projection runners over the same log: without this, two runners would read the same
    checkpoint and fold the same events twice, and two relays would publish every event
    twice. A transaction-scoped advisory lock makes one of them do each step and the others
    idle; it is released at commit or rollback, so a crashed worker never holds it. SQLite
    is single-process (and serializes writers anyway).

    The rest of ``tx`` is planned per execution, as :meth:`Tx.plan_per_execution` asks.
    """
    if tx.dialect != "postgresql":
        return True
    return bool((await tx.fetchrow(_HOLD, {"name": name}))[0])


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


# -- several checkpoints advanced together (libs.events.projections.ProjectionsRunner) ------

async def hold_checkpoints(tx: Tx, names: list[str]) -> bool:
    """:func:`hold_checkpoint` for every one of ``names``, in one statement: True only
    when this transaction holds them all."""
    if tx.dialect != "postgresql":
        return True
    return bool((await tx.fetchrow(_HOLD_MANY, {"names": names}))[0])


async def load_checkpoints(conn: Tx, names: list[str]) -> dict[str, LogCursor]:
    """The saved cursor of each of ``names`` (the start of the log for one never saved)."""
    if conn.dialect != "postgresql":
        return {name: await load_checkpoint(conn, name) for name in names}
    rows = await conn.fetch(_LOAD_MANY, {"names": names})
    saved = {row[0]: LogCursor(int(row[1]), int(row[2])) for row in rows}
    return {name: saved.get(name, START) for name in names}


async def save_checkpoints(conn: Tx, names: list[str], cursor: LogCursor) -> None:
    """Advance every one of ``names`` to ``cursor``."""
    if conn.dialect != "postgresql":
        for name in names:
            await save_checkpoint(conn, name, cursor)
        return
    await conn.execute(_SAVE_MANY, {"names": names, "xid": cursor.xid,
                                    "position": cursor.position, "now": datetime.now(UTC)})
