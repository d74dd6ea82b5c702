"""Dead letters: list them, and redrive one through its consumer's handler once fixed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import text

from .consumer import BatchHandler
from .db import Database, Tx
from .envelope import Envelope
from .inbox import record_handled
from .kafka_binding import from_kafka
from .registry import EventRegistry


@dataclass(frozen=True)
class DeadLetter:
    id: int
    consumer: str
    event_id: str | None
    event_type: str | None
    topic: str
    partition: int
    offset: int
    error: str
    attempts: int
    failed_at: datetime
    redriven_at: datetime | None


_LIST = text(
    'SELECT id, consumer, event_id, event_type, topic, partition, "offset", error, attempts, '
    "failed_at, redriven_at FROM dead_letters WHERE consumer = :consumer "
    "AND (:pending = 0 OR redriven_at IS NULL) ORDER BY id"
)
_GET = text("SELECT key, value, headers, event_id, redriven_at FROM dead_letters WHERE id = :id")
_FORGET = text("DELETE FROM inbox WHERE consumer = :consumer AND event_id = :event_id")
_MARK = text("UPDATE dead_letters SET redriven_at = :now WHERE id = :id")


def _dt(value):
    return datetime.fromisoformat(value) if isinstance(value, str) else value


async def list_dead_letters(
    db: Database, consumer: str, *, pending_only: bool = True
) -> list[DeadLetter]:
    async with db.connect() as conn:
        rows = await conn.fetch(_LIST, {"consumer": consumer, "pending": int(pending_only)})
        return [
            DeadLetter(*r[:9], failed_at=_dt(r[9]), redriven_at=_dt(r[10])) for r in rows
        ]


async def redrive(
    db: Database, registry: EventRegistry, consumer: str, dead_letter_id: int, handler: BatchHandler
) -> None:
    """Run the dead-lettered event through ``handler`` in one transaction with its inbox record.

    Raises whatever the handler raises (the dead letter then stays pending).
    """
    async with db.transaction() as tx:
        row = await tx.fetchrow(_GET, {"id": dead_letter_id})
        if row is None:
            raise LookupError(f"no dead letter {dead_letter_id}")
        key, value, headers, event_id, redriven_at = row
        if redriven_at is not None:
            raise ValueError(f"dead letter {dead_letter_id} was already redriven")
        pairs = orjson.loads(headers) if isinstance(headers, str) else headers
        env = registry.upcast(from_kafka(key, value, [(k, v.encode()) for k, v in pairs]))
        await tx.execute(_FORGET, {"consumer": consumer, "event_id": env.id})
        await handler(tx, [env])
        await record_handled(tx, consumer, [env.id])
        await tx.execute(_MARK, {"now": datetime.now(UTC), "id": dead_letter_id})


_SKIP = text("UPDATE dead_letters SET redriven_at = :now WHERE id = :id AND redriven_at IS NULL")
_ONE = text(
    'SELECT id, consumer, event_id, event_type, topic, partition, "offset", error, attempts, '
    "failed_at, redriven_at, key, value, headers FROM dead_letters WHERE id = :id"
)


async def get_dead_letter(db: Database, registry: EventRegistry, dead_letter_id: int
                          ) -> tuple[DeadLetter, Envelope | None] | None:
    """One dead letter and its event decoded (None when the record cannot be decoded)."""
    async with db.connect() as conn:
        r = await conn.fetchrow(_ONE, {"id": dead_letter_id})
    if r is None:
        return None
    letter = DeadLetter(*r[:9], failed_at=_dt(r[9]), redriven_at=_dt(r[10]))
    key, value, headers = r[11], r[12], r[13]
    pairs = orjson.loads(headers) if isinstance(headers, str) else headers
    try:
        env = registry.upcast(from_kafka(key, value, [(k, v.encode()) for k, v in pairs]))
    except Exception:  # noqa: BLE001 - undecodable records are dead letters too
        env = None
    return letter, env


async def set_aside(tx: Tx, dead_letter_id: int) -> bool:
    """Mark a pending dead letter as dealt with, without handling it (an operator's skip,
    recorded by the caller with its reason); False if it was not pending."""
    row = await tx.fetchrow(text("SELECT redriven_at FROM dead_letters WHERE id = :id"),
                            {"id": dead_letter_id})
    if row is None or row[0] is not None:
        return False
    await tx.execute(_SKIP, {"now": datetime.now(UTC), "id": dead_letter_id})
    return True
