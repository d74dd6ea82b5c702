"""Load, decide, append: how every handler changes one aggregate.

A service's domain folds an aggregate's state from its stream (``evolve``) and decides
new events as contract instances (:class:`libs.events.EventPayload`). :class:`Streams`
does the rest the same way in every service: it reads the stream, hands the state to the
decision, turns the payloads into envelopes (the first one caused by the incoming event
when there is one, the rest caused by the first, so a command's events share one causal
chain), appends them at the version it read and folds them into the state after.

With :class:`libs.events.snapshots.Snapshots`, a load starts from the stream's snapshot
and folds only the events after it, and a decision that folded ``every`` events or more
on top of it keeps a new one in the same transaction; without, it folds the whole stream.
Either way the state is the same (tests/integration/test_snapshots.py).

A version conflict means another transaction changed the stream between our read and our
append; the transaction is then unusable. :func:`transact` runs a unit of work again in a
new transaction, re-reading everything, a bounded number of times.

Example::

    accounts = Streams(store, source="/registration", stream_id=lambda k: f"account-{k}",
                       evolve=domain.evolve, clock=clock)

    async with db.transaction() as tx:
        changed = await accounts.decide(tx, account_id, lambda acc: acc.activate(...))
    changed.after.status
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from .db import Database, Tx
from .envelope import Envelope
from .errors import ConcurrencyError
from .registry import EventPayload
from .snapshots import Snapshots
from .store import EventStore

log = logging.getLogger(__name__)

S = TypeVar("S")
T = TypeVar("T")

#: The state after one more event; the aggregate keeps ``version = event.stream_version``.
Evolve = Callable[[Any, Envelope], Any]


def version_of(state: Any) -> int:
    """The stream version an aggregate state was folded to (0 for no state)."""
    return 0 if state is None else state.version


@dataclass(frozen=True)
class Changed(Generic[S]):
    """What a decision did: the state before, the events stored, the state after."""

    before: S | None
    after: S | None
    events: list[Envelope]

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]


class Streams(Generic[S]):
    """The streams of one kind of aggregate in one event store."""

    def __init__(self, store: EventStore, *, source: str, stream_id: Callable[[str], str],
                 evolve: Evolve, clock: Callable[[], datetime],
                 snapshots: Snapshots[S] | None = None) -> None:
        self.store = store
        self.source = source
        self.stream_id = stream_id
        self.evolve = evolve
        self.clock = clock
        self.snapshots = snapshots

    def fold(self, events: Sequence[Envelope], state: S | None = None) -> S | None:
        for e in events:
            state = self.evolve(state, e)
        return state

    async def load(self, tx: Tx, key: str, *, as_of: datetime | None = None) -> S | None:
        """The aggregate folded from its stream (``None`` when the stream is empty); from
        its snapshot on, when there is one, except ``as_of`` a time (then in full)."""
        if as_of is not None or self.snapshots is None:
            return self.fold(await self.store.read_stream(tx, self.stream_id(key),
                                                          as_of=as_of))
        return (await self._load(tx, key))[0]

    async def _load(self, tx: Tx, key: str) -> tuple[S | None, int | None]:
        """The state, and the version of the snapshot it was folded from (0 when none
        was usable; ``None`` without snapshots)."""
        stream_id = self.stream_id(key)
        if self.snapshots is None:
            return self.fold(await self.store.read_stream(tx, stream_id)), None
        snap = await self.snapshots.read(tx, stream_id)
        base, state = (snap.version, snap.state) if snap else (0, None)
        return self.fold(await self.store.read_stream(tx, stream_id, after_version=base),
                         state), base

    def envelopes(self, key: str, payloads: Sequence[EventPayload], *,
                  cause: Envelope | None = None) -> list[Envelope]:
        """New envelopes for ``payloads`` on ``key``'s stream, in one causal chain."""
        common = {"stream_id": self.stream_id(key), "source": self.source,
                  "time": self.clock(), "subject": key}
        envs: list[Envelope] = []
        for p in payloads:
            parent = cause if cause is not None else (envs[0] if envs else None)
            data = p.to_data()
            envs.append(parent.caused(type=p.event_type, data=data, **common) if parent
                        else Envelope.new(type=p.event_type, data=data, **common))
        return envs

    async def append(self, tx: Tx, key: str, expected_version: int,
                     payloads: Sequence[EventPayload], *, cause: Envelope | None = None
                     ) -> list[Envelope]:
        """Append decided payloads at ``expected_version``; the stored envelopes."""
        if not payloads:
            return []
        return await self.store.append(tx, self.stream_id(key), expected_version,
                                       self.envelopes(key, payloads, cause=cause))

    async def decide(self, tx: Tx, key: str,
                     decision: Callable[[S | None], Sequence[EventPayload]], *,
                     cause: Envelope | None = None, state: S | None = None) -> Changed[S]:
        """Load ``key``'s aggregate (or take ``state``, already loaded in this transaction),
        run ``decision`` on it, append what it decided and fold it in."""
        before, base = (state, None) if state is not None else await self._load(tx, key)
        payloads = decision(before)
        stored = await self.append(tx, key, version_of(before), payloads, cause=cause)
        after = self.fold(stored, before)
        snaps = self.snapshots
        if snaps is not None and after is not None and snaps.due(
                base=base, before=version_of(before), after=version_of(after)):
            await snaps.save(tx, self.stream_id(key), after, version_of(after))
        return Changed(before, after, stored)


async def transact(db: Database, work: Callable[[Tx], Awaitable[T]], *,
                   attempts: int = 3) -> T:
    """Run ``work`` in one transaction; when a stream moved on meanwhile
    (:class:`ConcurrencyError`), run it again in a new one, up to ``attempts`` times."""
    for attempt in range(1, attempts + 1):
        try:
            async with db.transaction() as tx:
                return await work(tx)
        except ConcurrencyError as exc:
            if attempt == attempts:
                raise
            log.info("%s; retrying (%d/%d)", exc, attempt, attempts - 1)
    raise AssertionError("unreachable")
