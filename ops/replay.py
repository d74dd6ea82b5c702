"""``replay``: rebuild a projection in a shadow beside the live one, compare, swap.

The service keeps running: its runner folds the live documents while the shadow is
folded here, from the same log, by the projection's pure ``evolve`` alone (no relay, no
consumers, no provider calls, no side tables). See docs/decisions/0016-operations-tool.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from libs.events import LogCursor
from libs.events.contracts.ops import ProjectionSwapped
from libs.events.projections import (
    OLD_SUFFIX,
    SHADOW_SUFFIX,
    DocumentProjection,
    ShadowProjection,
    checkpoint_of,
    compare_shadow,
    count_documents,
    documents_hash,
    drop_documents,
    fold_shadow,
    swap_shadow,
)
from libs.runtime.service import ServiceRuntime

from . import CheckFailed, NotFound, OpsError
from .runtime import record, runtime


def projection_named(rt: ServiceRuntime, name: str) -> DocumentProjection:
    for p in rt.projection_defs:
        if p.name == name:
            return p
    names = ", ".join(p.name for p in rt.projection_defs) or "none"
    raise NotFound(f"{rt.settings.service} has no projection {name!r} (it has: {names})")


async def log_size(rt: ServiceRuntime) -> int:
    from sqlalchemy import text

    async with rt.db.connect() as conn:
        return int(await conn.fetchval(text("SELECT COUNT(*) FROM events")))


async def run(service: str, projection: str, *, start: str | None = None, swap: bool = False,
              drop_old: bool = False, sample: int = 10, operator: str = "",
              progress: Callable[[int | None], Any] | None = None,
              page_size: int = 5000) -> dict[str, Any]:
    async with runtime(service) as rt:
        live = projection_named(rt, projection)
        shadow_name, old_name = live.name + SHADOW_SUFFIX, live.name + OLD_SUFFIX
        out: dict[str, Any] = {"service": service, "projection": live.name}
        if drop_old and not swap:  # only drop the kept generation
            out["dropped_old"] = await drop_documents(rt.db, old_name)
            return out
        shadow = ShadowProjection(live, shadow_name)
        if start is None:  # a fresh rebuild from the start of the log
            await drop_documents(rt.db, shadow_name)
            cursor = LogCursor()
        else:
            try:
                cursor = LogCursor.parse(start)
            except ValueError as exc:
                raise OpsError(str(exc)) from None
        advance = progress(await log_size(rt)) if progress else None
        out["events_read"] = await fold_shadow(rt.db, rt.store, shadow, start=cursor,
                                               page_size=page_size, progress=advance)
        out["comparison"] = cmp = await compare_shadow(rt.db, rt.store, live,
                                                       shadow_name=shadow_name, sample=sample)
        if swap:
            try:
                at = await swap_shadow(rt.db, rt.store, live, shadow_name=shadow_name,
                                       old_name=old_name)
            except ValueError as exc:
                raise CheckFailed(f"{exc} (acctctl replay ... --drop-old)") from None
            async with rt.db.connect() as conn:
                documents = await count_documents(conn, live.name)
                digest = await documents_hash(conn, live.name)
            await record(rt, ProjectionSwapped(
                operator=operator, projection=live.name, old_name=old_name, checkpoint=str(at),
                documents=documents, content_hash=digest,
                reason="identical" if cmp["identical"] else
                f"{len(cmp['differences'])}+ differing documents replaced"),
                subject=live.name)
            out["swapped"] = {"checkpoint": str(at), "documents": documents, "hash": digest,
                              "old": old_name, "checkpoint_name": checkpoint_of(live.name)}
            if drop_old:
                out["dropped_old"] = await drop_documents(rt.db, old_name)
        return out
