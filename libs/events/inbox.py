"""The inbox: ids of events a consumer has handled, written in the handler's transaction.

Because the inbox row commits with the handler's effects, a redelivered event is
recognised and skipped: effects happen exactly once on at-least-once delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import bindparam, text

from .db import Tx

_SEEN_SQLITE = text(
    "SELECT event_id FROM inbox WHERE consumer = :consumer AND event_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
# PostgreSQL: claim the whole batch in one statement. The ids that come back are the ones
# not handled before; a rollback of the handler's transaction releases them again. (A
# separate "which ids are known?" look-up got a poor generic plan on a young inbox.)
_CLAIM_PG = text(
    """
    INSERT INTO inbox (consumer, event_id, handled_at)
    SELECT CAST(:consumer AS text), u.id, CAST(:now AS timestamptz)
    FROM unnest(CAST(:ids AS text[])) AS u(id)
    ON CONFLICT (consumer, event_id) DO NOTHING
    RETURNING event_id
    """
)
# Idempotent on both dialects: recording an id already there (a dead letter redelivered
# after a crash, a redrive of an event handled meanwhile) is a no-op, never an error that
# would end the consumer's task.
_RECORD = text(
    "INSERT INTO inbox (consumer, event_id, handled_at) VALUES (:consumer, :event_id, :now) "
    "ON CONFLICT (consumer, event_id) DO NOTHING"
)
# One statement for the whole batch: executemany costs a bind/execute per row.
_RECORD_PG = text(
    "INSERT INTO inbox (consumer, event_id, handled_at) "
    "SELECT CAST(:consumer AS text), unnest(CAST(:ids AS text[])), CAST(:now AS timestamptz) "
    "ON CONFLICT (consumer, event_id) DO NOTHING"
)


async def claim(conn: Tx, consumer: str, event_ids: list[str]) -> set[str]:
    """Record ``event_ids`` as handled by ``consumer``; return those it had not handled yet.

    Call it in the handler's transaction, before handling: if the handler fails, the
    rollback takes the claims back with everything else.
    """
    if not event_ids:
        return set()
    if conn.dialect == "postgresql":
        rows = await conn.fetch(
            _CLAIM_PG, {"consumer": consumer, "ids": list(dict.fromkeys(event_ids)),
                        "now": datetime.now(UTC)})
        return {r[0] for r in rows}
    # SQLite has one writer at a time: look up, then insert what is new.
    known = {r[0] for r in await conn.fetch(_SEEN_SQLITE, {"consumer": consumer,
                                                            "ids": event_ids})}
    new = [i for i in dict.fromkeys(event_ids) if i not in known]
    await record_handled(conn, consumer, new)
    return set(new)


async def record_handled(conn: Tx, consumer: str, event_ids: Iterable[str]) -> None:
    """Record ``event_ids`` as handled by ``consumer``; ids already recorded stay as they are."""
    now = datetime.now(UTC)
    if conn.dialect == "postgresql":
        ids = list(dict.fromkeys(event_ids))
        if ids:
            await conn.execute(_RECORD_PG, {"consumer": consumer, "ids": ids, "now": now})
        return
    await conn.executemany(
        _RECORD, [{"consumer": consumer, "event_id": eid, "now": now} for eid in event_ids]
    )
