"""Load, decide, append: how every handler changes one aggregate.

A service's domain folds an aggregate's state from its stream (``evolve``) and decides
new events as contract instances (:class:`libs.events.EventPayload`). :class:`Streams`
does the rest the same way in every service: it reads the stream, hands the state to the
decision, turns the payloads into envelopes (the first one caused by the incoming event
when there is one, the rest caused by the first, so a command's events share one causal
chain), appends them at the version it read and folds them into the state after.

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
                 evolve: Evolve, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.source = source
        self.stream_id = stream_id
        self.evolve = evolve
        self.clock = clock

    def fold(self, events: Sequence[Envelope], state: S | None = None) -> S | None:
        for e in events:
            state = self.evolve(state, e)
        return state

    async def load(self, tx: Tx, key: str, *, as_of: datetime | None = None) -> S | None:
        """The aggregate folded from its stream (``None`` when the stream is empty)."""
        return self.fold(await self.store.read_stream(tx, self.stream_id(key), as_of=as_of))

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
        before = state if state is not None else await self.load(tx, key)
        payloads = decision(before)
        stored = await self.append(tx, key, version_of(before), payloads, cause=cause)
        return Changed(before, self.fold(stored, before), stored)


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
