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

import hashlib
from collections.abc import Callable, Collection
from typing import Any

import orjson
from sqlalchemy import bindparam, text

from .checkpoints import hold_checkpoint, load_checkpoint, reset_checkpoint, save_checkpoint
from .db import Database, Tx
from .envelope import Envelope
from .store import EventStore
from .tailer import LogTailer

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
    ) -> None:
        super().__init__(name=f"projection:{projection.name}", batch_size=batch_size,
                         idle_seconds=idle_seconds)
        self.db = db
        self.store = store
        self.projection = projection
        self.checkpoint = self.name

    async def step(self) -> int:
        """Apply one page of the log and advance the checkpoint in the same transaction."""
        async with self.db.transaction() as tx:
            if not await hold_checkpoint(tx, self.checkpoint):
                return 0  # another worker is folding this page
            await tx.plan_per_execution()
            cursor = await load_checkpoint(tx, self.checkpoint)
            page = await self.store.read_all(tx, cursor, limit=self.batch_size)
            if not page.events:
                return 0
            await self.projection.apply(tx, page.events)
            await save_checkpoint(tx, self.checkpoint, page.cursor)
        return len(page.events)

    async def catch_up(self) -> int:
        """Apply pages until the log has nothing more to give; returns the events read."""
        total = 0
        while n := await self.step():
            total += n
        return total

    async def rebuild(self) -> int:
        """Drop the read model and its checkpoint and fold the whole log again."""
        async with self.db.transaction() as tx:
            await self.projection.reset(tx)
            await reset_checkpoint(tx, self.checkpoint)
        return await self.catch_up()
