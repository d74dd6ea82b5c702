"""The clock's decisions: inactivity (A10.2), expired corrections (A8.2), timed measures (A19.2).

Runs periodically inside the app (``SWEEP_INTERVAL_SECONDS``) and as a command with an
injectable clock::

    python -m services.registration.sweep --now 2027-06-01T00:00:00Z
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from datetime import datetime

from libs.runtime.cli import add_now

from . import handlers, views
from .handlers import Deps

log = logging.getLogger(__name__)


async def run(deps: Deps, *, now: datetime | None = None, only: list[str] | None = None
              ) -> dict:
    """Sweep every candidate account (or those of ``only``) once at ``now``."""
    now = now or deps.clock()
    async with deps.db.connect() as conn:
        candidates = await views.sweep_candidates(
            conn, now=now, inactivity_months=deps.policy.inactivity_months)
    if only is not None:
        candidates = [c for c in candidates if c in set(only)]
    done = await handlers.sweep(deps, now=now, candidates=candidates)
    return {"now": now.isoformat(), "candidates": len(candidates), **done}


async def periodically(deps: Deps, interval: float) -> None:
    """Sweep every ``interval`` seconds until cancelled; a failed sweep is logged."""
    while True:
        await asyncio.sleep(interval)
        try:
            result = await run(deps)
            if result["suspended"] or result["closed"] or result["lifted"]:
                log.info("sweep: %s", result)
        except Exception:  # noqa: BLE001 - the next run tries again
            log.exception("sweep failed")


async def _main(now: datetime | None) -> dict:
    from .bootstrap import bootstrap

    async with bootstrap().offline() as runtime:
        return await run(runtime.deps, now=now)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m services.registration.sweep",
                                description=__doc__.split("\n\n")[0])
    add_now(p)
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(_main(args.now)), indent=2))


if __name__ == "__main__":
    main()
