"""The clock's decisions: expired qualifications (A9.1, A5) and re-inspections (A9.3),
periodic and by random sample.

Runs periodically inside the app (``VERIFICATION_SWEEP_SECONDS``) and as a command with
an injectable clock::

    python -m services.verification.sweep --now 2027-06-01T00:00:00Z [--fraction 0.1 --seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from datetime import datetime, timedelta

from libs.runtime.cli import add_now

from . import handlers, views
from .handlers import Deps, retrying

log = logging.getLogger(__name__)


async def run(deps: Deps, *, now: datetime | None = None, fraction: float | None = None,
              seed: int | None = None, periodic: bool = True,
              only: list[str] | None = None) -> dict:
    """Expire what is past its validity, then re-inspect the accounts due and a sample."""
    now = now or deps.clock()
    fraction = deps.sample_fraction if fraction is None else fraction
    async with deps.db.connect() as conn:
        docs = await views.everything(conn, "verification_schedule")
    if only is not None:
        docs = [d for d in docs if d["account_id"] in set(only)]
    expired: dict[str, list[str]] = {}
    for d in docs:
        if any(datetime.fromisoformat(v) <= now for v in d["approved_until"].values()):
            cases = await retrying(handlers.expire, deps, d["account_id"], now)
            if cases:
                expired[d["account_id"]] = cases
    verified = [d for d in docs if d["verified"] and d["account_id"] not in expired]
    cutoff = now - timedelta(days=deps.reinspection_interval_days)
    due = [d["account_id"] for d in verified if periodic and d["last_inspected_at"]
           and datetime.fromisoformat(d["last_inspected_at"]) <= cutoff]
    sampled = handlers.sample([d["account_id"] for d in verified if d["account_id"] not in due],
                              fraction, seed)
    results: dict[str, dict[str, str]] = {"periodic": {}, "sample": {}}
    for reason, ids in (("periodic", due), ("sample", sampled)):
        for account_id in ids:
            outcome = await retrying(handlers.reinspect, deps, account_id, reason=reason,
                                     now=now)
            if outcome:
                results[reason][account_id] = outcome
    deps.committed()
    return {"now": now.isoformat(), "accounts": len(docs), "expired": expired,
            "reinspected": results}


async def periodically(deps: Deps, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            result = await run(deps)
            if result["expired"] or any(result["reinspected"].values()):
                log.info("sweep: %s", result)
        except Exception:  # noqa: BLE001 - the next run tries again
            log.exception("verification sweep failed")


async def _main(now: datetime | None, fraction: float | None, seed: int | None) -> dict:
    from .bootstrap import bootstrap

    async with bootstrap().offline() as runtime:
        return await run(runtime.deps, now=now, fraction=fraction, seed=seed)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m services.verification.sweep",
                                description=__doc__.split("\n\n")[0])
    add_now(p)
    p.add_argument("--fraction", type=float, default=None, help="random sample share")
    p.add_argument("--seed", type=int, default=None, help="seed of the random sample")
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(_main(args.now, args.fraction, args.seed)), indent=2,
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
