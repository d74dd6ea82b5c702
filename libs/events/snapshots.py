"""Aggregate snapshots: a command's cost that does not grow with its stream's length.

Loading an aggregate folds its whole stream, so a command on an account with 100,000
events reads and folds 100,000 events. With :class:`Snapshots` given to
:class:`libs.events.Streams`, the state folded up to some version is kept beside the stream
(the kernel table ``snapshots``, one row per stream), and a load reads that row plus the
events after it: at most ``every`` of them.

A snapshot is a cache, never a source of truth: it is written in the transaction that
appended the events it covers (so it never runs ahead of a committed stream), and it is
labelled with the aggregate's name and ``schema_version``. Bump ``schema_version`` whenever
the state's shape or the fold (``evolve``, or an upcaster it relies on) changes: rows
written under another version are ignored, the stream is replayed in full, and the next
command on it writes a fresh snapshot. docs/decisions/0021-aggregate-snapshots.md.

Example::

    accounts = Streams(store, source="/registration", stream_id=stream_of, evolve=evolve,
                       clock=clock, snapshots=Snapshots(Account, schema_version=1))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import text

from .db import Tx

S = TypeVar("S")

_READ = text(
    "SELECT stream_version, state FROM snapshots WHERE stream_id = :stream_id "
    "AND aggregate = :aggregate AND schema_version = :schema_version"
)
# Same statement on both databases (SQLite >= 3.24 has the upsert). Never move a snapshot
# backwards under the same schema; a row from another schema is always replaced.
_SAVE = text(
    """
    INSERT INTO snapshots (stream_id, aggregate, schema_version, stream_version, state)
    VALUES (:stream_id, :aggregate, :schema_version, :stream_version, :state)
    ON CONFLICT (stream_id) DO UPDATE
    SET aggregate = excluded.aggregate, schema_version = excluded.schema_version,
        stream_version = excluded.stream_version, state = excluded.state
    WHERE snapshots.stream_version < excluded.stream_version
       OR snapshots.schema_version <> excluded.schema_version
       OR snapshots.aggregate <> excluded.aggregate
    """
)


@dataclass(frozen=True)
class Snapshot(Generic[S]):
    """A state folded up to ``version`` of its stream."""

    state: S
    version: int


@dataclass(frozen=True)
class Snapshots(Generic[S]):
    """How one kind of aggregate is snapshotted.

    ``state_type`` is the aggregate's state class (a dataclass or pydantic model: it is
    encoded to JSON and back with a pydantic ``TypeAdapter``, so its fields need types that
    round-trip: datetimes, tuples, dicts of JSON values); ``schema_version`` labels the
    snapshots it writes; a snapshot is written once at least ``every`` events were folded
    since the last one. ``aggregate`` defaults to the class's name.
    """

    state_type: type[S]
    schema_version: int
    every: int = 100
    aggregate: str = ""
    _adapter: TypeAdapter[Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError("every must be >= 1")
        object.__setattr__(self, "_adapter", TypeAdapter(self.state_type))
        if not self.aggregate:
            object.__setattr__(self, "aggregate", self.state_type.__name__)

    def encode(self, state: S) -> str:
        return self._adapter.dump_json(state).decode()

    def decode(self, raw: str) -> S:
        return self._adapter.validate_json(raw)

    async def read(self, tx: Tx, stream_id: str) -> Snapshot[S] | None:
        """The stream's snapshot under this schema, or ``None`` (none yet, or another
        schema's: the caller then folds the stream from its start)."""
        row = await tx.fetchrow(_READ, {"stream_id": stream_id, "aggregate": self.aggregate,
                                        "schema_version": self.schema_version})
        if row is None:
            return None
        return Snapshot(self.decode(row[1]), row[0])

    async def save(self, tx: Tx, stream_id: str, state: S, version: int) -> None:
        """Keep ``state``, folded up to ``version``, as the stream's snapshot (in ``tx``)."""
        await tx.execute(_SAVE, {"stream_id": stream_id, "aggregate": self.aggregate,
                                 "schema_version": self.schema_version,
                                 "stream_version": version, "state": self.encode(state)})

    def due(self, *, base: int | None, before: int, after: int) -> bool:
        """Whether to snapshot the state at ``after``: ``every`` events or more were folded
        on top of the snapshot the load started from (``base``; 0 when there was none or
        it was another schema's), or, when the caller brought the state itself
        (``base is None``), the append crossed a multiple of ``every``."""
        if after <= before:
            return False
        if base is not None:
            return after - base >= self.every
        return after // self.every > before // self.every
