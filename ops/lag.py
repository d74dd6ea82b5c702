"""``lag``: what each service's relay has not published yet, and its consumers' lag."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from libs.events import load_checkpoint
from libs.runtime.service import ServiceRuntime

from .kafka import committed_offsets, end_offsets
from .runtime import runtimes

_PG_BACKLOG = text(
    """
    SELECT COUNT(*), MIN(time) FROM events
    WHERE (xid, position) > (CAST(CAST(:xid AS text) AS xid8), CAST(:position AS bigint))
    """
)
_SQLITE_BACKLOG = text("SELECT COUNT(*), MIN(time) FROM events WHERE position > :position")


def relay_checkpoint(rt: ServiceRuntime) -> str:
    return f"relay:{rt.topic}"  # the Relay's default name (libs.events.outbox)


async def relay_backlog(rt: ServiceRuntime) -> dict[str, Any]:
    async with rt.db.connect() as conn:
        cursor = await load_checkpoint(conn, relay_checkpoint(rt))
        stmt = _PG_BACKLOG if rt.db.is_postgres else _SQLITE_BACKLOG
        count, oldest = await conn.fetchrow(stmt, {"xid": str(cursor.xid),
                                                   "position": cursor.position})
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest)
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
    return {"topic": rt.topic, "checkpoint": str(cursor), "unpublished": int(count),
            "oldest_unpublished_at": oldest, "oldest_age_seconds": round(max(age, 0.0), 3)}


async def consumer_lag(rt: ServiceRuntime) -> list[dict[str, Any]]:
    rows = []
    bootstrap = rt.settings.kafka_bootstrap_servers
    for sub in rt.subscriptions:
        group = rt.ns + sub.name
        topics = [rt.ns + t for t in sub.topics]
        ends = await end_offsets(bootstrap, topics)
        committed = await committed_offsets(bootstrap, group)
        for tp, end in sorted(ends.items(), key=lambda x: (x[0].topic, x[0].partition)):
            done = committed.get(tp)
            rows.append({"consumer": sub.name, "group": group, "topic": tp.topic,
                         "partition": tp.partition, "end_offset": end, "committed": done,
                         "lag": end - (done or 0)})
    return rows


async def lag(services: list[str], *, kafka: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with runtimes(services) as rts:
        for svc, rt in rts.items():
            entry: dict[str, Any] = {"relay": await relay_backlog(rt)}
            if kafka:
                try:
                    entry["consumers"] = await consumer_lag(rt)
                except Exception as exc:  # noqa: BLE001 - reported per service
                    entry["consumers_error"] = f"{type(exc).__name__}: {exc}"
            out[svc] = entry
    return out
