"""Benchmark: a registration command's cost against its account's age (issue 16).

Accounts whose streams hold 10, 1,000, 10,000 and 100,000 events (``--quick``: up to
10,000; env ``BENCH_COMMAND_LENGTHS``, e.g. ``10,1000``) are written by our own ``append``
(the first events of a registration, an activation, then ``AccountActivityRecorded`` in
transactions of 1,000), then ``VACUUM ANALYZE``. On each, the command
``handlers.record_activity`` (``POST /v1/accounts/{id}/activity`` without HTTP: load,
decide, append, one transaction) is timed one after the other:

- ours: the account streams as the service wires them, from a snapshot every 100 events
  (libs.events.snapshots), the lengths taken in turn (one command on each per round, so
  that all see the same load); a few untimed rounds first (the first command writes the
  snapshot a stream of that age has not had yet);
- baseline: the same command folding the whole stream (``snapshot_every=0``, the code
  before issue 16), fewer commands on long streams (``BENCH_COMMANDS_FULL``).

Per length one row (latency per command); then the target row: the p50 at the longest
length within 1.5x of the p50 at 10 events (figure and baseline are 1/p50, so the ratio
is p50(10) / p50(longest), target >= 0.67). Each side has its own accounts.
``python -m bench -k command_cost``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from libs.events import Database, EventStore
from libs.events.contracts import all_contracts
from libs.events.contracts.registration import (
    AccountActivated,
    AccountActivityRecorded,
    AccountRegistrationSubmitted,
)
from libs.events.migrate import upgrade
from libs.runtime.pii import Sealer
from services.registration import handlers
from services.registration.adapters import ClosedNames
from services.registration.bootstrap import MIGRATIONS
from services.registration.handlers import Deps, account_streams
from services.registration.rules import Policy

from .common import Config, Result, log, maybe_profile, percentiles, reset_db, vacuum_analyze

FLAT = 1.5  # the longest stream's p50 within this many times the 10-event one's
SEED_BATCH = 1000
OWNER = {"id_kind": "resident_id", "id_number_sealed": "v1:x", "id_number_blind": "b" * 32,
         "id_number_masked": "440106********1234", "holder_name_sealed": "v1:y",
         "holder_name_masked": "张*", "phone_sealed": "v1:z", "phone_blind": "c" * 32,
         "phone_masked": "139****0000"}


def lengths(cfg: Config) -> list[int]:
    default = "10,1000,10000" if cfg.quick else "10,1000,10000,100000"
    return [int(x) for x in os.environ.get("BENCH_COMMAND_LENGTHS", default).split(",")]


def commands(cfg: Config) -> tuple[int, int]:
    """Timed commands per length: with snapshots, and folding the whole stream (at most)."""
    return (int(os.environ.get("BENCH_COMMANDS", 50 if cfg.quick else 300)),
            int(os.environ.get("BENCH_COMMANDS_FULL", 20 if cfg.quick else 100)))


async def seed(deps: Deps, length: int) -> str:
    """A live account whose stream holds ``length`` events."""
    account_id = str(uuid.uuid4())
    accounts = deps.accounts
    first = [AccountRegistrationSubmitted(
        account_id=account_id, entity_type="natural_person", identity=OWNER,
        profile={"name": f"账号{account_id[:8]}", "description": "d",
                 "avatar_sha256": "ab" * 32}, category="health",
        province="440000", operations_province="440000", contact_sealed="v1:c",
        contact_masked="138****8000", agreement_version="2025-01", legal_basis=["A2"]),
        AccountActivated(account_id=account_id, legal_basis=["A8.1"])]
    version = 0
    async with deps.db.transaction() as tx:
        version += len(await accounts.append(tx, account_id, version, first))
    while version < length:
        n = min(SEED_BATCH, length - version)
        batch = [AccountActivityRecorded(account_id=account_id, kind="login",
                                         legal_basis=["A10.2"])] * n
        async with deps.db.transaction() as tx:
            version += len(await accounts.append(tx, account_id, version, batch))
    return account_id


async def command(deps: Deps, account_id: str) -> float:
    loop = asyncio.get_running_loop()
    t = loop.time()
    await handlers.record_activity(deps, account_id, "login", key=None, digest="")
    return loop.time() - t


async def interleaved(deps: Deps, ids: dict[int, str], count: int, warmup: int
                      ) -> dict[int, list[float]]:
    """``count`` timed commands on each account, taking the accounts in turn, so that the
    lengths are compared under the same load (the machine is shared and noisy)."""
    out: dict[int, list[float]] = {length: [] for length in ids}
    for i in range(warmup + count):
        for length, account_id in ids.items():
            took = await command(deps, account_id)
            if i >= warmup:
                out[length].append(took)
    return out


async def timed(deps: Deps, account_id: str, count: int, warmup: int) -> list[float]:
    return [await command(deps, account_id) for _ in range(warmup + count)][warmup:]


def _ms(lat: dict[str, float]) -> str:
    return f"p50 {lat['p50'] * 1000:.2f} ms, p99 {lat['p99'] * 1000:.2f} ms"


async def run(cfg: Config) -> list[Result]:
    sizes = lengths(cfg)
    n_snap, n_full = commands(cfg)
    log(f"== command_cost: record_activity on accounts of {', '.join(f'{n:,}' for n in sizes)}"
        " events, PostgreSQL")
    await reset_db(cfg)
    await asyncio.to_thread(upgrade, cfg.db_url, MIGRATIONS)
    db = Database(cfg.db_url, pool_size=2)
    store = EventStore(all_contracts(), dialect=db.dialect)

    def deps_with(every: int) -> Deps:
        return Deps(db=db, store=store, accounts=account_streams(store, snapshot_every=every),
                    policy=Policy(), agreement_version="2025-01", names=ClosedNames(),
                    sealer=Sealer("bench-only-key"))

    snapped, full = deps_with(handlers.SNAPSHOT_EVERY), deps_with(0)
    ids: dict[tuple[str, int], str] = {}
    for length in sizes:  # one account per side, so that neither adds to the other's
        for side in ("snapshots", "full"):
            ids[side, length] = await seed(full, length)
        log(f"   seeded two accounts of {length:,} events")
    await vacuum_analyze(cfg)

    results: list[Result] = []
    p50s: dict[int, dict[str, float]] = {}
    try:
        with maybe_profile(cfg, "command_cost"):
            snapshot_side = await interleaved(
                snapped, {n: ids["snapshots", n] for n in sizes}, n_snap, warmup=5)
        for length in sizes:
            ours = percentiles(snapshot_side[length])
            count = max(3, min(n_full, 200_000 // max(length, 1)))
            base = percentiles(await timed(full, ids["full", length], count, warmup=1))
            p50s[length] = ours
            log(f"   {length:>7,} events: snapshots {_ms(ours)}; whole stream {_ms(base)} "
                f"({count} commands)")
            results.append(Result(
                f"command_cost: record_activity on a {length:,}-event account", 1 / ours["mean"],
                "commands/s", 1 / base["mean"],
                "the same command folding the whole stream", ours_latency=ours,
                baseline_latency=base, reference=True,
                notes=f"{n_snap} commands with snapshots every {handlers.SNAPSHOT_EVERY} "
                      f"(the lengths in turn), {count} folding the whole stream"))
    finally:
        await db.dispose()
    short, long_ = sizes[0], sizes[-1]
    a, b = p50s[short], p50s[long_]
    results.append(Result(
        f"command_cost: p50 at {long_:,} events vs at {short:,} (snapshots)", 1 / b["p50"],
        "commands/s (1/p50)", 1 / a["p50"], f"1/p50 at {short:,} events",
        target_ratio=round(1 / FLAT, 2), ours_latency=b, baseline_latency=a,
        notes=f"p99 ratio {b['p99'] / a['p99']:.2f} (longest / shortest)"))
    return results


async def main(argv: list[str]) -> int:
    cfg = Config.from_env(quick="--quick" in argv)
    rs = await run(cfg)
    for r in rs:
        log(r.describe())
    return 0 if rs[-1].passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
