"""``verify-log``: prove that no checkpoint of a service skipped a position of its log.

What is checked (each finding names the transactions behind it):

- **gaps**: sequence positions missing from the log. A gap is a transaction that rolled
  back (harmless) or one still open (PostgreSQL: listed with its pid, xid, age and query);
  an open one is harmless too *unless* a checkpoint has passed its xid.
- **horizon**: a checkpoint whose xid is not older than the oldest open transaction has
  passed events that transaction may still commit behind it: a skip (ADR 0001 forbids it).
- **projections**: each projection's documents equal a fold, in memory, of every event up
  to its checkpoint (taken while holding the runner's lock): an event skipped by the
  runner would show as a difference.
- **relay** (``--kafka``): every event up to the relay's checkpoint is on the topic.
- **consumers** (``--kafka``): every wanted event below a group's committed offsets is in
  the consumer's inbox or dead letters.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import text

from libs.events import load_checkpoint
from libs.events.kafka_binding import event_type_of
from libs.events.projections import canonical_json, checkpoint_of, lock_projection
from libs.events.store import LogCursor
from libs.runtime.service import ServiceRuntime

from .kafka import committed_offsets, header, read_records
from .lag import relay_checkpoint
from .runtime import runtime

_GAPS = text(
    """
    SELECT position + 1, next_position - 1 FROM (
        SELECT position, LEAD(position) OVER (ORDER BY position) AS next_position FROM events
    ) AS t WHERE next_position > position + 1 ORDER BY position LIMIT :limit
    """
)
_FIRST = text("SELECT MIN(position), MAX(position), COUNT(*) FROM events")
_OPEN_PG = text(
    """
    SELECT pid, CAST(backend_xid AS text), xact_start, state, LEFT(query, 200)
    FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL AND datname = current_database() AND pid <> pg_backend_pid()
    ORDER BY xact_start
    """
)
_HORIZON = text("SELECT CAST(pg_snapshot_xmin(pg_current_snapshot()) AS text)")
_CHECKPOINTS = text("SELECT name, xid, position FROM checkpoints ORDER BY name")
_INBOX = text("SELECT event_id FROM inbox WHERE consumer = :c")
_DEAD = text("SELECT event_id FROM dead_letters WHERE consumer = :c")


async def _open_transactions(conn) -> list[dict[str, Any]]:
    if conn.dialect != "postgresql":
        return []
    return [{"pid": r[0], "xid": int(r[1]), "started": r[2], "state": r[3], "query": r[4]}
            for r in await conn.fetch(_OPEN_PG)]


async def _projection_check(rt: ServiceRuntime, p) -> dict[str, Any]:
    """The stored documents against an in-memory fold of the log up to the checkpoint."""
    async with rt.db.transaction() as tx:
        await lock_projection(tx, p.name)
        until = await load_checkpoint(tx, checkpoint_of(p.name))
        docs: dict[str, Any] = {}
        cursor = LogCursor()
        while True:
            page = await rt.store.read_range(tx, cursor, until, limit=5000)
            if not page.events:
                break
            for e in page.events:
                if p.wants(e):
                    k = p.key(e)
                    docs[k] = p.evolve(docs.get(k), e)
            cursor = page.cursor
        h = hashlib.sha256()
        for k in sorted(k for k, d in docs.items() if d is not None):
            h.update(k.encode())
            h.update(b"\0")
            h.update(canonical_json(docs[k]).encode())
            h.update(b"\n")
        stored = await p.state_hash(tx)
    ok = stored == h.hexdigest()
    return {"projection": p.name, "checkpoint": str(until), "ok": ok,
            "stored_hash": stored, "folded_hash": h.hexdigest()}


async def _relay_check(rt: ServiceRuntime) -> dict[str, Any]:
    async with rt.db.connect() as conn:
        until = await load_checkpoint(conn, relay_checkpoint(rt))
        passed: list[str] = []
        cursor = LogCursor()
        while True:
            page = await rt.store.read_range(conn, cursor, until, limit=5000)
            if not page.events:
                break
            passed += [e.id for e in page.events]
            cursor = page.cursor
    on_topic = {header(r, "ce_id") for r in
                await read_records(rt.settings.kafka_bootstrap_servers, rt.topic)}
    missing = [i for i in passed if i not in on_topic]
    return {"topic": rt.topic, "checkpoint": str(until), "passed": len(passed),
            "missing_on_topic": missing[:20], "ok": not missing}


async def _consumer_check(rt: ServiceRuntime) -> list[dict[str, Any]]:
    out = []
    bootstrap = rt.settings.kafka_bootstrap_servers
    for sub in rt.subscriptions:
        committed = await committed_offsets(bootstrap, rt.ns + sub.name)
        async with rt.db.connect() as conn:
            seen = {r[0] for r in await conn.fetch(_INBOX, {"c": sub.name})}
            seen |= {r[0] for r in await conn.fetch(_DEAD, {"c": sub.name})}
        missing = []
        checked = 0
        for topic in sub.topics:
            for r in await read_records(bootstrap, rt.ns + topic, until=committed):
                etype = event_type_of(r.headers)
                if sub.event_types is not None and etype not in sub.event_types:
                    continue
                checked += 1
                eid = header(r, "ce_id")
                if eid not in seen:
                    missing.append({"topic": r.topic, "partition": r.partition,
                                    "offset": r.offset, "event_id": eid, "type": etype})
        out.append({"consumer": sub.name, "checked": checked, "missing": missing[:20],
                    "ok": not missing})
    return out


async def verify(service: str, *, kafka: bool = False, gap_limit: int = 100) -> dict[str, Any]:
    async with runtime(service) as rt:
        async with rt.db.connect() as conn:
            first, last, count = await conn.fetchrow(_FIRST)
            gaps = [{"from": a, "to": b} for a, b in await conn.fetch(_GAPS, {"limit": gap_limit})]
            open_tx = await _open_transactions(conn)
            horizon = int(await conn.fetchval(_HORIZON)) if conn.dialect == "postgresql" else None
            checkpoints = [(n, LogCursor(int(x), int(p))) for n, x, p in
                           await conn.fetch(_CHECKPOINTS)]
        report: dict[str, Any] = {
            "service": service, "events": count, "first_position": first,
            "last_position": last, "gaps": gaps, "open_transactions": open_tx,
            "horizon_xid": horizon, "checkpoints": [], "projections": []}
        ok = True
        for name, c in checkpoints:
            behind = [t for t in open_tx if c.xid and t["xid"] <= c.xid]
            entry = {"name": name, "cursor": str(c), "ok": not behind,
                     "open_transactions_passed": behind}
            ok = ok and not behind
            report["checkpoints"].append(entry)
        for p in rt.projection_defs:
            check = await _projection_check(rt, p)
            ok = ok and check["ok"]
            report["projections"].append(check)
        if kafka:
            report["relay"] = await _relay_check(rt)
            report["consumers"] = await _consumer_check(rt)
            ok = ok and report["relay"]["ok"] and all(c["ok"] for c in report["consumers"])
        report["ok"] = ok
        return report
