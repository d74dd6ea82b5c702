"""Projections: read models as pure folds over events, with a checkpoint, rebuildable.

A :class:`DocumentProjection` keeps one JSON document per key (usually the account
id). Its ``evolve(doc, event) -> doc`` is a pure function, so the state depends only
on the events and their order: rebuilding from the start of the log yields the same
documents byte for byte (documents are stored as canonical JSON, and
:meth:`DocumentProjection.state_hash` proves it).

The :class:`ProjectionRunner` feeds a projection from the service's own global log;
a :class:`libs.events.consumer.Consumer` can feed one from other services' topics
(pass ``projection.apply`` as its handler).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
from collections.abc import Callable, Collection
from typing import Any

import orjson
from sqlalchemy import bindparam, text

from .checkpoints import (
    hold_checkpoint,
    hold_checkpoints,
    load_checkpoint,
    load_checkpoints,
    reset_checkpoint,
    save_checkpoint,
    save_checkpoints,
)
from .db import Database, Tx
from .envelope import Envelope
from .store import EventStore, LogCursor
from .tailer import IDLE_MAX_SECONDS, LINGER_SECONDS, LogTailer

Doc = dict[str, Any]
Evolve = Callable[[Doc | None, Envelope], Doc | None]

# One index probe per key, whatever the planner thinks of the table's size: a plain
# "key = ANY(:keys)" got a generic plan that filtered the projection's every row.
_LOAD_PG = text(
    """
    SELECT k.key, d.doc FROM unnest(CAST(:keys AS text[])) AS k(key)
    CROSS JOIN LATERAL (
        SELECT doc FROM projection_documents
        WHERE projection = CAST(:p AS text) AND key = k.key LIMIT 1) AS d
    """
)
_LOAD_SQLITE = text(
    "SELECT key, doc FROM projection_documents WHERE projection = :p AND key IN :keys"
).bindparams(bindparam("keys", expanding=True))
_GET = text("SELECT doc FROM projection_documents WHERE projection = :p AND key = :key")
_UPSERT = text(
    """
    INSERT INTO projection_documents (projection, key, doc) VALUES (:p, :key, :doc)
    ON CONFLICT (projection, key) DO UPDATE SET doc = excluded.doc
    """
)
_UPSERT_PG = text(
    """
    INSERT INTO projection_documents (projection, key, doc)
    SELECT CAST(:p AS text), k, d
    FROM unnest(CAST(:keys AS text[]), CAST(:docs AS text[])) AS u(k, d)
    ON CONFLICT (projection, key) DO UPDATE SET doc = excluded.doc
    """
)
_DELETE = text("DELETE FROM projection_documents WHERE projection = :p AND key = :key")
_RESET = text("DELETE FROM projection_documents WHERE projection = :p")
_ALL = text("SELECT key, doc FROM projection_documents WHERE projection = :p ORDER BY key")


def canonical_json(doc: Any) -> str:
    """Deterministic JSON text: sorted keys, no insignificant whitespace."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


class DocumentProjection:
    """A keyed read model folded from events by a pure ``evolve`` function."""

    def __init__(
        self,
        name: str,
        evolve: Evolve,
        *,
        event_types: Collection[str] | None = None,
        key: Callable[[Envelope], str] = lambda e: e.subject,
    ) -> None:
        self.name = name
        self.evolve = evolve
        self.event_types = frozenset(event_types) if event_types is not None else None
        self.key = key

    def wants(self, event: Envelope) -> bool:
        return self.event_types is None or event.type in self.event_types

    async def apply(self, conn: Tx, events: list[Envelope]) -> None:
        """Fold ``events`` (in order) into the stored documents, in the caller's transaction."""
        events = [e for e in events if self.wants(e)]
        if not events:
            return
        keys = sorted({self.key(e) for e in events})
        load = _LOAD_PG if conn.dialect == "postgresql" else _LOAD_SQLITE
        rows = await conn.fetch(load, {"p": self.name, "keys": keys})
        docs: dict[str, Doc | None] = {k: orjson.loads(d) for k, d in rows}
        for e in events:
            k = self.key(e)
            docs[k] = self.evolve(docs.get(k), e)
        await self.documents_changed(conn, {k: d for k, d in docs.items() if d is not None})
        kept = {k: canonical_json(d) for k, d in docs.items() if d is not None}
        deletes = [{"p": self.name, "key": k} for k, d in docs.items() if d is None]
        if conn.dialect == "postgresql":
            if kept:  # one statement for the batch, not a bind/execute per document
                await conn.execute(_UPSERT_PG, {"p": self.name, "keys": list(kept),
                                                "docs": list(kept.values())})
        else:
            await conn.executemany(
                _UPSERT, [{"p": self.name, "key": k, "doc": d} for k, d in kept.items()])
        await conn.executemany(_DELETE, deletes)

    async def documents_changed(self, conn: Tx, docs: dict[str, Doc]) -> None:
        """Called with the documents a batch changed, in its transaction: a subclass keeps
        side tables in step here (filter columns a list query needs, for instance)."""

    async def get(self, conn: Tx, key: str) -> Doc | None:
        row = await conn.fetchrow(_GET, {"p": self.name, "key": key})
        return orjson.loads(row[0]) if row else None

    async def reset(self, conn: Tx) -> None:
        await conn.execute(_RESET, {"p": self.name})

    async def state_hash(self, conn: Tx) -> str:
        """SHA-256 over every (key, canonical document) in key order."""
        h = hashlib.sha256()
        for key, doc in await conn.fetch(_ALL, {"p": self.name}):
            h.update(key.encode())
            h.update(b"\0")
            h.update(doc.encode())
            h.update(b"\n")
        return h.hexdigest()


class ProjectionRunner(LogTailer):
    """Keeps a projection up to date with the service's own global log."""

    def __init__(
        self,
        *,
        db: Database,
        store: EventStore,
        projection: DocumentProjection,
        batch_size: int = 1000,
        idle_seconds: float = 0.05,
        idle_max_seconds: float = IDLE_MAX_SECONDS,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        super().__init__(name=f"projection:{projection.name}", batch_size=batch_size,
                         idle_seconds=idle_seconds, idle_max_seconds=idle_max_seconds,
                         linger_seconds=linger_seconds)
        self.db = db
        self.store = store
        self.projection = projection
        self.checkpoint = self.name

    async def step(self) -> int:
        """Apply one page of the log and advance the checkpoint in the same transaction."""
        async with self.db.transaction() as tx:
            if not await hold_checkpoint(tx, self.checkpoint):
                return 0  # another worker is folding this page
            cursor = await load_checkpoint(tx, self.checkpoint)
            page = await self.store.read_all(tx, cursor, limit=self.batch_size)
            if not page.events:
                return 0
            await self.projection.apply(tx, page.events)
            await save_checkpoint(tx, self.checkpoint, page.cursor)
        return len(page.events)

    async def rebuild(self) -> int:
        """Drop the read model and its checkpoint and fold the whole log again."""
        async with self.db.transaction() as tx:
            await self.projection.reset(tx)
            await reset_checkpoint(tx, self.checkpoint)
        return await self.catch_up()


class ProjectionsRunner(LogTailer):
    """Keeps several projections of one service up to date with one read of each page.

    Each projection keeps its own checkpoint (``projection:<name>``, as a
    :class:`ProjectionRunner` would), so operators' tools, rebuilds and the lag read them
    as before. One step holds them all, reads one page after the lowest of them, folds it
    into every projection at that cursor and advances their checkpoints together, in one
    transaction: the page is read and decoded once, not once per projection
    (docs/decisions/0046-one-tailer-for-a-service-s-projections.md). A projection ahead of
    the others (rebuilt meanwhile) is left alone until the others reach it; once all are
    at the end of the log they move as one.
    """

    def __init__(
        self,
        *,
        db: Database,
        store: EventStore,
        projections: list[DocumentProjection],
        batch_size: int = 1000,
        idle_seconds: float = 0.05,
        idle_max_seconds: float = IDLE_MAX_SECONDS,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        if not projections:
            raise ValueError("a projections runner needs at least one projection")
        super().__init__(name="projections", batch_size=batch_size, idle_seconds=idle_seconds,
                         idle_max_seconds=idle_max_seconds, linger_seconds=linger_seconds)
        self.db = db
        self.store = store
        self.projections = list(projections)
        self.checkpoints = [checkpoint_of(p.name) for p in self.projections]

    async def step(self) -> int:
        """Fold one page into the projections at the lowest checkpoint; the events read."""
        async with self.db.transaction() as tx:
            if not await hold_checkpoints(tx, self.checkpoints):
                return 0  # another worker is folding this page
            cursors = await load_checkpoints(tx, self.checkpoints)
            lowest = min(cursors.values(), key=lambda c: (c.xid, c.position))
            behind = [(p, name) for p, name in zip(self.projections, self.checkpoints,
                                                    strict=True) if cursors[name] == lowest]
            page = await self.store.read_all(tx, lowest, limit=self.batch_size)
            if not page.events:
                return 0
            for projection, _ in behind:
                await projection.apply(tx, page.events)
            await save_checkpoints(tx, [name for _, name in behind], page.cursor)
        return len(page.events)


# -- shadow rebuilds (acctctl replay; docs/decisions/0016-operations-tool.md) ------------
#
# A projection is rebuilt beside the live one, under another name in the same
# ``projection_documents`` table (``accounts~shadow``), with its own checkpoint, while the
# service's runner keeps the live documents current. A shadow writes documents only: the
# projection's side tables (``documents_changed``) are skipped while it is folded, and
# rebuilt from the swapped-in documents inside the swap transaction.

SHADOW_SUFFIX = "~shadow"
OLD_SUFFIX = "~old"

_COUNT = text("SELECT COUNT(*) FROM projection_documents WHERE projection = :p")
_RENAME = text("UPDATE projection_documents SET projection = :to WHERE projection = :p")
_PAGE = text(
    "SELECT key, doc FROM projection_documents WHERE projection = :p AND key > :after "
    "ORDER BY key LIMIT :limit"
)
_DIFF = text(
    """
    SELECT a.key, a.doc, b.doc FROM projection_documents a
    LEFT JOIN projection_documents b ON b.projection = :b AND b.key = a.key
    WHERE a.projection = :a AND (b.doc IS NULL OR b.doc <> a.doc)
    ORDER BY a.key LIMIT :limit
    """
)
_MISSING = text(
    """
    SELECT b.key, b.doc FROM projection_documents b
    WHERE b.projection = :b AND NOT EXISTS (
        SELECT 1 FROM projection_documents a WHERE a.projection = :a AND a.key = b.key)
    ORDER BY b.key LIMIT :limit
    """
)
_LOCK_PG = text("SELECT pg_advisory_xact_lock(hashtextextended(CAST(:name AS text), 0))")


def checkpoint_of(name: str) -> str:
    """The checkpoint name a :class:`ProjectionRunner` keeps for projection ``name``."""
    return f"projection:{name}"


class ShadowProjection(DocumentProjection):
    """``live``'s fold written under another document name, without its side tables."""

    def __init__(self, live: DocumentProjection, name: str) -> None:
        super().__init__(name, live.evolve, event_types=live.event_types, key=live.key)
        self.live = live

    def wants(self, event: Envelope) -> bool:
        return self.live.wants(event)

    async def documents_changed(self, conn: Tx, docs: dict[str, Doc]) -> None:
        """Side tables are the live projection's; the swap rebuilds them."""

    async def reset(self, conn: Tx) -> None:
        await conn.execute(_RESET, {"p": self.name})


def has_side_tables(projection: DocumentProjection) -> bool:
    return type(projection).documents_changed is not DocumentProjection.documents_changed


async def count_documents(conn: Tx, name: str) -> int:
    return int(await conn.fetchval(_COUNT, {"p": name}))


async def documents_hash(conn: Tx, name: str) -> str:
    """:meth:`DocumentProjection.state_hash` of the documents stored under ``name``."""
    return await DocumentProjection(name, lambda d, e: d).state_hash(conn)


async def differing_documents(conn: Tx, a: str, b: str, *, limit: int = 10
                              ) -> list[tuple[str, Doc | None, Doc | None]]:
    """Up to ``limit`` keys whose documents differ between ``a`` and ``b`` (None: absent)."""
    rows = [(k, orjson.loads(x), orjson.loads(y) if y is not None else None)
            for k, x, y in await conn.fetch(_DIFF, {"a": a, "b": b, "limit": limit})]
    rows += [(k, None, orjson.loads(y))
             for k, y in await conn.fetch(_MISSING, {"a": a, "b": b, "limit": limit})]
    return sorted(rows, key=lambda r: r[0])[:limit]


async def lock_projection(tx: Tx, name: str) -> None:
    """Wait for, then hold until ``tx`` ends, the right to advance projection ``name``:
    the service's runner (which only tries, :func:`hold_checkpoint`) idles meanwhile."""
    if tx.dialect == "postgresql":
        await tx.execute(_LOCK_PG, {"name": checkpoint_of(name)})


async def fold_shadow(
    db: Database,
    store: EventStore,
    shadow: ShadowProjection,
    *,
    start=None,
    page_size: int = 5000,
    flush_every: int = 100_000,
    cache_size: int = 1_000_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Fold the log after the shadow's checkpoint (or ``start``) into the shadow, pure.

    Documents are folded in memory and written with the checkpoint every ``flush_every``
    events (and at the end), each flush one transaction: an interrupted rebuild resumes
    from its last flush. Nothing else runs: no relay, consumers or side tables.
    Returns the events read.

    The cyclic garbage collector is paused while folding (the documents and pages are
    millions of young objects it would otherwise rescan over and over: about a third of
    the time) and catches up on the young generations at each flush.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return await _fold_shadow(db, store, shadow, start=start, page_size=page_size,
                                  flush_every=flush_every, cache_size=cache_size,
                                  progress=progress)
    finally:
        if paused:
            gc.enable()


async def _fold_shadow(db, store, shadow, *, start, page_size, flush_every, cache_size,
                       progress) -> int:
    name = checkpoint_of(shadow.name)
    async with db.transaction() as tx:
        if start is not None:
            await save_checkpoint(tx, name, start)
        cursor = await load_checkpoint(tx, name)
        stored = await count_documents(tx, shadow.name) > 0
    docs: dict[str, Doc | None] = {}
    dirty: set[str] = set()
    total = pending = 0
    wants, key, evolve = shadow.wants, shadow.key, shadow.evolve
    load = _LOAD_PG if db.is_postgres else _LOAD_SQLITE

    async def flush(cursor) -> None:
        nonlocal stored
        async with db.transaction() as tx:
            kept = {k: canonical_json(docs[k]) for k in dirty if docs[k] is not None}
            gone = [{"p": shadow.name, "key": k} for k in dirty if docs[k] is None]
            if tx.dialect == "postgresql":
                if kept:
                    await tx.execute(_UPSERT_PG, {"p": shadow.name, "keys": list(kept),
                                                  "docs": list(kept.values())})
            else:
                await tx.executemany(_UPSERT, [{"p": shadow.name, "key": k, "doc": d}
                                               for k, d in kept.items()])
            await tx.executemany(_DELETE, gone)
            await save_checkpoint(tx, name, cursor)
        dirty.clear()
        if len(docs) > cache_size:  # forget them: later pages load what they need
            docs.clear()
            stored = True
        gc.collect(1)

    async with db.connect() as conn:
        # The next page is read while this one is folded (the server works meanwhile).
        reading = asyncio.ensure_future(store.read_all(conn, cursor, limit=page_size))
        while True:
            page = await reading
            if not page.events:
                break
            reading = asyncio.ensure_future(store.read_all(conn, page.cursor, limit=page_size))
            events = [e for e in page.events if wants(e)]
            keys = [key(e) for e in events]
            unknown = set(keys) - docs.keys()
            if unknown:
                docs.update(dict.fromkeys(unknown))
                if stored:  # only a resumed or large shadow has documents to load
                    async with db.connect() as c2:
                        rows = await c2.fetch(load, {"p": shadow.name, "keys": sorted(unknown)})
                    docs.update({k: orjson.loads(d) for k, d in rows})
            for k, e in zip(keys, events, strict=True):
                docs[k] = evolve(docs[k], e)
            dirty.update(keys)
            cursor = page.cursor
            n = len(page.events)
            total += n
            pending += n
            if progress:
                progress(n)
            if pending >= flush_every:
                await flush(cursor)
                pending = 0
    if pending or dirty:
        await flush(cursor)
    return total


async def swap_shadow(
    db: Database,
    store: EventStore,
    live: DocumentProjection,
    *,
    shadow_name: str | None = None,
    old_name: str | None = None,
    page_size: int = 5000,
) -> LogCursor:
    """Swap the shadow in for ``live`` atomically; the live documents are kept as ``old``.

    In one transaction: hold the live runner's lock (it idles), fold the log's last events
    into the shadow, rename live -> old and shadow -> live (with their checkpoints), reset
    and rebuild the live projection's side tables from the new documents. The service's
    runner then continues from the shadow's checkpoint: nothing is lost or folded twice.
    Returns the live projection's new checkpoint.
    """
    shadow_name = shadow_name or live.name + SHADOW_SUFFIX
    old_name = old_name or live.name + OLD_SUFFIX
    shadow = ShadowProjection(live, shadow_name)
    async with db.transaction() as tx:
        await lock_projection(tx, live.name)
        if await count_documents(tx, old_name):
            raise ValueError(f"{old_name} still holds documents: drop it first")
        cursor = await load_checkpoint(tx, checkpoint_of(shadow_name))
        while True:
            page = await store.read_all(tx, cursor, limit=page_size)
            if not page.events:
                break
            await shadow.apply(tx, page.events)
            cursor = page.cursor
        live_cursor = await load_checkpoint(tx, checkpoint_of(live.name))
        await tx.execute(_RENAME, {"p": live.name, "to": old_name})
        await save_checkpoint(tx, checkpoint_of(old_name), live_cursor)
        await live.reset(tx)  # no live documents are left: this clears the side tables
        await tx.execute(_RENAME, {"p": shadow_name, "to": live.name})
        await save_checkpoint(tx, checkpoint_of(live.name), cursor)
        await reset_checkpoint(tx, checkpoint_of(shadow_name))
        if has_side_tables(live):
            after = ""
            while rows := await tx.fetch(_PAGE, {"p": live.name, "after": after,
                                                 "limit": 1000}):
                await live.documents_changed(tx, {k: orjson.loads(d) for k, d in rows})
                after = rows[-1][0]
    return cursor


async def drop_documents(db: Database, name: str) -> int:
    """Delete the documents and checkpoint kept under ``name`` (a shadow or an old copy)."""
    async with db.transaction() as tx:
        n = await count_documents(tx, name)
        await tx.execute(_RESET, {"p": name})
        await reset_checkpoint(tx, checkpoint_of(name))
    return n


async def _fold_range(tx: Tx, store: EventStore, projection: DocumentProjection,
                      after: LogCursor, until: LogCursor, page_size: int) -> None:
    cursor = after
    while True:
        page = await store.read_range(tx, cursor, until, limit=page_size)
        if not page.events:
            return
        await projection.apply(tx, page.events)
        cursor = page.cursor


async def compare_shadow(
    db: Database,
    store: EventStore,
    live: DocumentProjection,
    *,
    shadow_name: str | None = None,
    sample: int = 10,
    page_size: int = 5000,
) -> dict[str, Any]:
    """Compare the shadow with the live documents at one place in the log.

    Holding the live runner's lock, whichever of the two is behind is folded up to the
    other's checkpoint (the live one through its own ``apply``, side tables included, as
    its runner would), then both are counted, hashed and sampled for differing keys.
    """
    shadow_name = shadow_name or live.name + SHADOW_SUFFIX
    shadow = ShadowProjection(live, shadow_name)
    async with db.transaction() as tx:
        await lock_projection(tx, live.name)
        at_live = await load_checkpoint(tx, checkpoint_of(live.name))
        at_shadow = await load_checkpoint(tx, checkpoint_of(shadow_name))
        if at_shadow < at_live:
            await _fold_range(tx, store, shadow, at_shadow, at_live, page_size)
            await save_checkpoint(tx, checkpoint_of(shadow_name), at_live)
        elif at_live < at_shadow:
            await _fold_range(tx, store, live, at_live, at_shadow, page_size)
            await save_checkpoint(tx, checkpoint_of(live.name), at_shadow)
        at = max(at_live, at_shadow)
        live_hash = await documents_hash(tx, live.name)
        shadow_hash = await documents_hash(tx, shadow_name)
        diffs = [] if live_hash == shadow_hash else await differing_documents(
            tx, shadow_name, live.name, limit=sample)
        return {
            "projection": live.name, "shadow": shadow_name, "checkpoint": str(at),
            "live_documents": await count_documents(tx, live.name),
            "shadow_documents": await count_documents(tx, shadow_name),
            "live_hash": live_hash, "shadow_hash": shadow_hash,
            "identical": live_hash == shadow_hash,
            "differences": [{"key": k, "shadow": s, "live": v} for k, s, v in diffs],
        }
