"""``streams show`` and ``state``: an account across every service, from the logs."""

from __future__ import annotations

import heapq
from datetime import UTC, datetime
from typing import Any

from libs.events import Envelope
from libs.events.topics import SERVICES
from libs.runtime.pii import Sealer, subjects_in

from . import NotFound, Refused
from .output import mask
from .runtime import operator_name, principal, record, runtimes

REVEAL_ROLE = "operator"


def stream_ids(service: str, account_id: str) -> list[str]:
    """Streams named after the account: ``account-<id>``, ``<service>-<id>``, ``<id>``."""
    return [f"account-{account_id}", f"{service}-{account_id}", account_id]


def causal_order(items: list[tuple[str, Envelope]]) -> list[tuple[str, Envelope]]:
    """Merge per-service events: by time, but never an effect before its cause, nor a
    stream's event before its predecessor in that stream."""
    by_id = {e.id: i for i, (_, e) in enumerate(items)}
    after: dict[int, list[int]] = {i: [] for i in range(len(items))}
    needs = [0] * len(items)
    last_in_stream: dict[tuple[str, str], int] = {}
    for i, (svc, e) in sorted(enumerate(items),
                              key=lambda x: (x[1][0], x[1][1].stream_id,
                                             x[1][1].stream_version)):
        prev = last_in_stream.get((svc, e.stream_id))
        if prev is not None:
            after[prev].append(i)
            needs[i] += 1
        last_in_stream[(svc, e.stream_id)] = i
    for i, (_, e) in enumerate(items):
        cause = by_id.get(e.causation_id) if e.causation_id else None
        if cause is not None and cause != i:
            after[cause].append(i)
            needs[i] += 1

    def rank(i: int):
        svc, e = items[i]
        return (e.time, SERVICES.index(svc) if svc in SERVICES else 99, e.position)

    ready = [(rank(i), i) for i in range(len(items)) if needs[i] == 0]
    heapq.heapify(ready)
    out: list[int] = []
    while ready:
        _, i = heapq.heappop(ready)
        out.append(i)
        for j in after[i]:
            needs[j] -= 1
            if needs[j] == 0:
                heapq.heappush(ready, (rank(j), j))
    if len(out) < len(items):  # a causal cycle cannot happen; keep the rest by time
        out += sorted(set(range(len(items))) - set(out), key=rank)
    return [items[i] for i in out]


PAGE = 1000  # events per read: a long-lived account's streams are never read in one go


async def _pages(rt, svc: str, account_id: str, as_of: datetime | None, page_size: int):
    """The service's events about the account, a page (one short query) at a time."""
    after = 0
    while True:
        async with rt.db.connect() as conn:
            events = await rt.store.read_subject(conn, account_id,
                                                 stream_ids=stream_ids(svc, account_id),
                                                 as_of=as_of, after_position=after,
                                                 limit=page_size)
        if events:
            yield events
        if len(events) < page_size:
            return
        after = events[-1].position


async def _events(rts, account_id: str, as_of: datetime | None, page_size: int = PAGE):
    items: list[tuple[str, Envelope]] = []
    for svc, rt in rts.items():
        try:
            async for events in _pages(rt, svc, account_id, as_of, page_size):
                items += [(svc, e) for e in events]
        except Exception as exc:  # noqa: BLE001 - one service's database may be away
            raise NotFound(f"{svc}: cannot read its event store: {exc}") from exc
    return items


def _row(svc: str, e: Envelope, data: Any) -> dict[str, Any]:
    return {"service": svc, "position": e.position, "stream_id": e.stream_id,
            "stream_version": e.stream_version, "time": e.time.isoformat(), "type": e.type,
            "schema_version": e.schema_version, "id": e.id, "causation_id": e.causation_id,
            "correlation_id": e.correlation_id, "data": data}


async def show(account_id: str, *, services: list[str], reveal: bool, token: str | None,
               reason: str, as_of: datetime | None = None, page_size: int = PAGE
               ) -> list[dict[str, Any]]:
    async with runtimes(services) as rts:
        sealer = None
        who = None
        if reveal:
            rt = next(iter(rts.values()))
            who = principal(rt, token)
            if who is None or not who.has(REVEAL_ROLE):
                raise Refused(f"--reveal needs an operator token (--token / ACCTCTL_TOKEN) "
                              f"with the role {REVEAL_ROLE!r}")
            if not reason:
                raise Refused("--reveal needs --reason (it is recorded)")
            sealer = Sealer.from_settings(rt.settings)
        items = causal_order(await _events(rts, account_id, as_of, page_size))
        if not items:
            raise NotFound(f"no events about account {account_id!r} in {', '.join(services)}")
        rows, opened_by_service = [], {}
        for svc, e in items:
            opened: set[str] = set()
            # the subjects its values may be sealed for: those the event names, then the
            # event's own subject (the rule for a v1: value of no known subject, ADR 0033)
            subjects = [*subjects_in(e.data), e.subject] if sealer else None
            rows.append(_row(svc, e, mask(e.data, sealer=sealer, opened=opened,
                                          subjects=subjects)))
            if opened:
                opened_by_service.setdefault(svc, set()).update(opened)
        if reveal:
            from libs.events.contracts.ops import PersonalDataRevealed

            for svc, fields in opened_by_service.items():
                await record(rts[svc], PersonalDataRevealed(
                    operator=operator_name(who), reason=reason, account_id=account_id,
                    fields=sorted(fields)), subject=account_id)
        return rows


async def state(account_id: str, *, services: list[str], as_of: datetime | None
                ) -> dict[str, Any]:
    """Each service's read models of the account at ``as_of``, folded from its log with the
    projections' own pure ``evolve`` (nothing is read from the stored documents)."""
    as_of = as_of or datetime.now(UTC)
    out: dict[str, Any] = {"account_id": account_id, "as_of": as_of.isoformat(), "services": {}}
    found = False
    async with runtimes(services) as rts:
        for svc, rt in rts.items():
            events = [e for s, e in await _events({svc: rt}, account_id, as_of)]
            found = found or bool(events)
            models: dict[str, Any] = {}
            for p in rt.projection_defs:
                docs: dict[str, Any] = {}
                for e in events:
                    if p.wants(e):
                        k = p.key(e)
                        docs[k] = p.evolve(docs.get(k), e)
                kept = {k: mask(d) for k, d in docs.items() if d is not None}
                if kept:
                    models[p.name] = kept
            out["services"][svc] = {
                "events": len(events),
                "last_event": ({"type": events[-1].type, "time": events[-1].time.isoformat(),
                                "position": events[-1].position} if events else None),
                "projections": models,
            }
    if not found:
        raise NotFound(f"no events about account {account_id!r} at or before {as_of}")
    return out
