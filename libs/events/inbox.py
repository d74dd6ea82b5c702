"""The inbox: ids of events a consumer has handled, written in the handler's transaction.

Because the inbox row commits with the handler's effects, a redelivered event is
recognised and skipped: effects happen exactly once on at-least-once delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import bindparam, text

from .db import Tx

_SEEN_PG = text(
    "SELECT event_id FROM inbox WHERE consumer = :consumer "
    "AND event_id = ANY(CAST(:ids AS text[]))"
)
_SEEN_SQLITE = text(
    "SELECT event_id FROM inbox WHERE consumer = :consumer AND event_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_RECORD = text(
    "INSERT INTO inbox (consumer, event_id, handled_at) VALUES (:consumer, :event_id, :now)"
)
# One statement for the whole batch: executemany costs a bind/execute per row.
_RECORD_PG = text(
    "INSERT INTO inbox (consumer, event_id, handled_at) "
    "SELECT CAST(:consumer AS text), unnest(CAST(:ids AS text[])), CAST(:now AS timestamptz)"
)


async def already_handled(conn: Tx, consumer: str, event_ids: list[str]) -> set[str]:
    """Which of ``event_ids`` ``consumer`` has handled before."""
    if not event_ids:
        return set()
    stmt = _SEEN_PG if conn.dialect == "postgresql" else _SEEN_SQLITE
    return {r[0] for r in await conn.fetch(stmt, {"consumer": consumer, "ids": event_ids})}


async def record_handled(conn: Tx, consumer: str, event_ids: Iterable[str]) -> None:
    now = datetime.now(UTC)
    if conn.dialect == "postgresql":
        ids = list(event_ids)
        if ids:
            await conn.execute(_RECORD_PG, {"consumer": consumer, "ids": ids, "now": now})
        return
    await conn.executemany(
        _RECORD, [{"consumer": consumer, "event_id": eid, "now": now} for eid in event_ids]
    )
