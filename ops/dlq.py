"""``dlq``: dead letters of a service's consumers: list, show, retry (redrive), skip."""

from __future__ import annotations

from typing import Any

from libs.events import Envelope, list_dead_letters, redrive
from libs.events.contracts.ops import DeadLetterRetried, DeadLetterSkipped
from libs.events.deadletters import DeadLetter, get_dead_letter, set_aside
from libs.runtime.service import ServiceRuntime, Subscription

from . import CheckFailed, NotFound, OpsError
from .output import mask
from .runtime import record, runtime


def subscription(rt: ServiceRuntime, consumer: str | None) -> list[Subscription]:
    subs = list(rt.subscriptions)
    if consumer is None:
        return subs
    chosen = [s for s in subs if s.name == consumer]
    if not chosen:
        names = ", ".join(s.name for s in subs) or "none"
        raise NotFound(f"{rt.settings.service} has no consumer {consumer!r} (it has: {names})")
    return chosen


def _letter(d: DeadLetter, env: Envelope | None = None) -> dict[str, Any]:
    out = {"id": d.id, "consumer": d.consumer, "event_id": d.event_id,
           "event_type": d.event_type, "topic": d.topic, "partition": d.partition,
           "offset": d.offset, "error": d.error, "attempts": d.attempts,
           "failed_at": d.failed_at, "resolved_at": d.redriven_at,
           "status": "pending" if d.redriven_at is None else "resolved"}
    if env is not None:
        out["account_id"] = env.subject
        out["stream_id"], out["stream_version"] = env.stream_id, env.stream_version
    return out


async def list_letters(service: str, consumer: str | None, *, all_: bool = False
                       ) -> list[dict[str, Any]]:
    async with runtime(service) as rt:
        rows = []
        for sub in subscription(rt, consumer):
            for d in await list_dead_letters(rt.db, sub.name, pending_only=not all_):
                rows.append(_letter(d))
        return rows


async def _get(rt: ServiceRuntime, letter_id: int) -> tuple[DeadLetter, Envelope | None]:
    got = await get_dead_letter(rt.db, rt.registry, letter_id)
    if got is None:
        raise NotFound(f"{rt.settings.service} has no dead letter {letter_id}")
    return got


async def show(service: str, letter_id: int) -> dict[str, Any]:
    async with runtime(service) as rt:
        d, env = await _get(rt, letter_id)
        out = _letter(d, env)
        out["event"] = None if env is None else {
            "type": env.type, "time": env.time, "stream_id": env.stream_id,
            "stream_version": env.stream_version, "causation_id": env.causation_id,
            "data": mask(env.data)}
        return out


async def retry(service: str, letter_id: int, *, operator: str, reason: str,
                whole_account: bool = True) -> list[dict[str, Any]]:
    """Redrive the dead letter and, with ``whole_account``, every pending dead letter of the
    same consumer about the same account, in stream order; stops at the first failure
    (a later event of the account must not overtake it)."""
    async with runtime(service) as rt:
        first, env = await _get(rt, letter_id)
        if first.redriven_at is not None:
            raise OpsError(f"dead letter {letter_id} is not pending")
        [sub] = subscription(rt, first.consumer)
        batch = [(first, env)]
        if whole_account and env is not None:
            batch = []
            for d in await list_dead_letters(rt.db, sub.name):
                d2, e2 = await _get(rt, d.id)
                if e2 is not None and e2.subject == env.subject:
                    batch.append((d2, e2))
            batch.sort(key=lambda x: (x[1].stream_id, x[1].stream_version, x[0].offset))
        results = []
        for d, e in batch:
            error = None
            try:
                await redrive(rt.db, rt.registry, sub.name, d.id, sub.handler)
            except Exception as exc:  # noqa: BLE001 - recorded and reported
                error = f"{type(exc).__name__}: {exc}"
            await record(rt, DeadLetterRetried(
                operator=operator, reason=reason, consumer=sub.name, dead_letter_id=d.id,
                event_id=d.event_id, event_type_retried=d.event_type, succeeded=error is None,
                error=error), subject=e.subject if e else str(d.id))
            results.append({"id": d.id, "event_type": d.event_type,
                            "stream_version": e.stream_version if e else None,
                            "succeeded": error is None, "error": error})
            if error is not None:
                raise CheckFailed(f"dead letter {d.id} failed again: {error}",
                                  ) from _Partial(results)
        return results


class _Partial(Exception):
    def __init__(self, results):
        super().__init__("partial")
        self.results = results


async def skip(service: str, letter_id: int, *, operator: str, reason: str) -> dict[str, Any]:
    if not reason.strip():
        raise OpsError("skip needs --reason: why this event is set aside")
    async with runtime(service) as rt:
        d, env = await _get(rt, letter_id)
        async with rt.db.transaction() as tx:
            if not await set_aside(tx, letter_id):
                raise OpsError(f"dead letter {letter_id} is not pending")
        await record(rt, DeadLetterSkipped(operator=operator, reason=reason,
                                           consumer=d.consumer, dead_letter_id=d.id,
                                           event_id=d.event_id),
                     subject=env.subject if env else str(d.id))
        return {"id": d.id, "skipped": True, "reason": reason}
