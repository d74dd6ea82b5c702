"""Registrations committed in groups: one transaction and five statements for all the
registrations that arrive while the previous group commits (ADR 0040).

Alone, a registration costs seven round trips (``BEGIN``, its Idempotency-Key's claim, its
keys counted, their bans read, its events appended, its answer remembered, ``COMMIT``),
and their per-statement cost, in the client and in PostgreSQL, is most of its database
work. Together, a group makes the same five statements once, each over every member's
rows, and shares one commit.

Each member keeps what it has alone:

- **Its Idempotency-Key.** The keys are claimed first, together. A key that a concurrent
  request holds is waited for and not taken; that member then runs alone once the group
  has committed, and finds the first request's answer there.
- **Its limits.** The group's counted keys (identity, phone, device, network) are
  disjoint: a registration that shares a key with an earlier member of its group waits
  for the next group. Across groups, and against registrations running alone, the
  counting statement's row locks order them exactly as before (ADR 0009).
- **Its decision.** The rules decide each member on its own keys' states, in its own
  request's context (its clock, its trace), as :func:`handlers.register_alone` does.
- **Its own failure.** A member whose identity or phone is banned is refused with an
  error, and errors are not kept. So a ban met inside a group, or any other error, rolls
  the group back, and each member then runs alone and gets its own answer.

Only on PostgreSQL: on SQLite, writers are serialized by the database anyway.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass

from libs.events.db import Tx
from libs.runtime.idempotency import claim_many, remember_many

from . import adapters
from .handlers import (
    REGISTRATION_SCOPE,
    DecidedRegistration,
    Deps,
    PendingRegistration,
    _Registration,
    decide_registration,
    register_alone,
)

log = logging.getLogger(__name__)

# One group is written at a time per process: two at once measured worse on two cores
# (smaller groups, more statements per registration: ADR 0040).
MAX_GROUP = 64


class _CommitFailed(Exception):
    """The group's ``COMMIT`` failed: whether it took effect is not known, so no member
    runs again on its own (one without an Idempotency-Key could register twice); each
    gets the error, as a registration alone would."""


@dataclass(eq=False)
class _Member:
    pending: PendingRegistration
    context: contextvars.Context
    future: asyncio.Future
    decided: DecidedRegistration | None = None


class RegistrationWriter:
    """Takes registrations from concurrent requests and commits them in groups: whatever
    arrived while the previous group was being written, up to ``max_group`` (ADR 0040)."""

    def __init__(self, deps: Deps, *, max_group: int = MAX_GROUP) -> None:
        self.deps = deps
        self.max_group = max_group
        self._queue: list[_Member] = []
        self._writing: asyncio.Task | None = None
        self.groups = 0  # groups committed (tests and diagnostics)

    async def submit(self, pending: PendingRegistration) -> _Registration:
        """The registration's result, once its group has committed (or once it has run
        alone)."""
        loop = asyncio.get_running_loop()
        member = _Member(pending, contextvars.copy_context(), loop.create_future())
        self._queue.append(member)
        writing = self._writing
        if writing is None or writing.done() or writing.get_loop() is not loop:
            # A context of its own: the writer must not carry the first member's clock or
            # span into the others' decisions (each decides in its own, _decide).
            self._writing = asyncio.create_task(self._write_queued(),
                                                context=contextvars.Context())
        return await asyncio.shield(member.future)

    async def _write_queued(self) -> None:
        while self._queue:
            await self._commit(self._take())

    def _take(self) -> list[_Member]:
        """The next group: members whose counted keys and Idempotency-Keys are disjoint
        from those of the members before them; the others wait for the next group."""
        group: list[_Member] = []
        later: list[_Member] = []
        keys: set[str] = set()
        idempotency: set[str] = set()
        queue = self._queue
        for i, member in enumerate(queue):
            if len(group) == self.max_group:
                later.extend(queue[i:])
                break
            p = member.pending
            own = {k for k, *_ in p.keys}
            if own & keys or (p.key is not None and p.key in idempotency):
                later.append(member)
                continue
            keys |= own
            if p.key is not None:
                idempotency.add(p.key)
            group.append(member)
        self._queue = later
        return group

    async def _commit(self, group: list[_Member]) -> None:
        alone: list[_Member] = []
        try:
            if len(group) == 1:
                alone = group
            else:
                alone = await self._together(group)
                for m in group:
                    if m not in alone and not m.future.done():
                        m.future.set_result(m.decided.result)
                self.groups += 1
                self.deps.committed()
        except _CommitFailed as exc:
            for m in group:
                if not m.future.done():
                    m.future.set_exception(exc.__cause__ or exc)
            return
        except Exception as exc:  # noqa: BLE001 - each member gets its own answer alone
            log.debug("registration group of %d rolled back (%s: %s); each runs alone",
                      len(group), type(exc).__name__, exc)
            alone = [m for m in group if not m.future.done()]
        await asyncio.gather(*(self._alone(m) for m in alone))

    async def _alone(self, member: _Member) -> None:
        try:
            result = await member.context.run(asyncio.ensure_future,
                                              register_alone(self.deps, member.pending))
        except BaseException as exc:  # noqa: BLE001 - the member's own error, its answer
            if not member.future.done():
                member.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not member.future.done():
                member.future.set_result(result)

    async def _together(self, group: list[_Member]) -> list[_Member]:
        """One transaction for the group; the members that must run alone (their
        Idempotency-Key held by another request)."""
        deps = self.deps
        committing = False
        try:
            async with deps.db.transaction() as tx:
                alone = await self._statements(tx, group)
                committing = True
        except Exception as exc:
            if committing:
                raise _CommitFailed(str(exc)) from exc
            raise
        return alone

    async def _statements(self, tx: Tx, group: list[_Member]) -> list[_Member]:
        """The group's statements; the members left to run alone."""
        deps = self.deps
        keyed = [(m.pending.key, m.pending.digest) for m in group
                 if m.pending.key is not None]
        taken = await claim_many(tx, scope=REGISTRATION_SCOPE, keys=keyed) if keyed \
            else set()
        alone = [m for m in group if m.pending.key is not None
                 and m.pending.key not in taken]
        members = [m for m in group if m not in alone]
        if not members:
            return alone
        await self._decide(tx, members)
        refused = [k for m in members for k in m.decided.uncount]
        if refused:
            await adapters.uncount(tx, refused)
        await deps.store.append_new_streams(tx, [
            m.context.run(self._envelopes, m.decided) for m in members])
        answers = [(m.pending.key, m.pending.digest, m.decided.result) for m in members
                   if m.pending.key is not None]
        if answers:
            await remember_many(tx, scope=REGISTRATION_SCOPE, answers=answers,
                                result=_Registration)
        return alone

    async def _decide(self, tx: Tx, members: list[_Member]) -> None:
        """Count every member's keys in one statement (their rows locked until commit),
        then decide each on its own keys, in its own request's context."""
        now = [m.context.run(self.deps.clock) for m in members]
        states = {s.key: s for s in await adapters.count_attempts(
            tx, [(m.pending.keys, t.timestamp()) for m, t in zip(members, now, strict=True)])}
        for m, t in zip(members, now, strict=True):
            # in key order, as a registration alone gets them (count_attempt)
            own = sorted((states[k] for k, *_ in m.pending.keys), key=lambda s: s.key)
            m.decided = m.context.run(decide_registration, self.deps, m.pending, own, t)

    def _envelopes(self, decided: DecidedRegistration):
        """The account's first events, stamped with the member's trace (run in its
        context)."""
        deps = self.deps
        return deps.store.stamp(deps.accounts.envelopes(decided.account_id, decided.payloads))
