"""Benchmark: ``acctctl replay``'s rebuild of a projection into a shadow, against a raw read.

The log holds ``N`` small events (default 1,000,000; ``--quick`` 100,000; env
``BENCH_REPLAY_EVENTS``), written by our own ``append``, 1,000 per stream and transaction.
The projection keeps one document per (stream, version % 100): N/10 documents, each
folded from ten events. Then, after ``VACUUM ANALYZE``:

- ours: :func:`libs.events.projections.fold_shadow` from the start of the log (pages of
  5,000, documents folded in memory and written with the checkpoint every 100,000 events)
  into an empty shadow, timed end to end including every write;
- raw: one asyncpg server-side cursor over the same rows ``ORDER BY position``, each
  row's data decoded with ``orjson.loads`` (the cost of reading the log alone);
- the peak RSS of the process after the rebuild.

Target: >= 50,000 events/s. ``python -m bench -k replay`` or ``python -m bench.replay``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys

import asyncpg

from libs.events import Database, EventStore
from libs.events.projections import (
    DocumentProjection,
    ShadowProjection,
    count_documents,
    drop_documents,
    fold_shadow,
)

from .common import (
    Config,
    Result,
    Timer,
    log,
    make_registry,
    maybe_profile,
    reset_db,
    vacuum_analyze,
)
from .read_all import load_events, read_raw

TARGET = 50_000
PAGE = 5000


def events_for(cfg: Config) -> int:
    default = 100_000 if cfg.quick else 1_000_000
    return int(os.environ.get("BENCH_REPLAY_EVENTS", default))


def evolve(doc, e):
    doc = doc or {"n": 0, "sum": 0}
    return {"n": doc["n"] + 1, "sum": doc["sum"] + e.stream_version, "last": e.id}


def projection() -> DocumentProjection:
    return DocumentProjection("bench_replay", evolve,
                              key=lambda e: f"{e.stream_id}:{e.stream_version % 100}")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def run(cfg: Config) -> list[Result]:
    n = events_for(cfg)
    log(f"== replay: rebuild a projection from {n:,} events into a shadow")
    await reset_db(cfg)
    db = Database(cfg.db_url, pool_size=4)
    store = EventStore(make_registry(), dialect=db.dialect)
    with Timer() as t:
        await load_events(db, store, n)
    log(f"   loaded {n:,} events in {t.seconds:.1f} s")
    await vacuum_analyze(cfg)
    shadow = ShadowProjection(projection(), "bench_replay~shadow")
    raw = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        await read_raw(raw, PAGE)  # untimed: caches
        with Timer() as t:
            got_raw = await read_raw(raw, PAGE)
        raw_rate = got_raw / t.seconds
    finally:
        await raw.close()
    with maybe_profile(cfg, "replay"), Timer() as t:
        got = await fold_shadow(db, store, shadow, page_size=PAGE)
    ours_rate = got / t.seconds
    async with db.connect() as conn:
        docs = await count_documents(conn, shadow.name)
    await drop_documents(db, shadow.name)
    await db.dispose()
    rss = peak_rss_mb()
    check = None
    if got != n or docs != n // 10:
        check = f"folded {got:,} of {n:,} events into {docs:,} documents (expected {n // 10:,})"
    log(f"   ours {ours_rate:,.0f} events/s, raw read {raw_rate:,.0f} events/s, "
        f"ratio {ours_rate / raw_rate:.2f}, peak RSS {rss:,.0f} MiB")
    return [
        Result(f"replay: rebuild into a shadow, {n:,} events ({docs:,} docs)", ours_rate,
               "events/s", raw_rate, f"asyncpg cursor prefetch={PAGE} + orjson (read only)",
               target_abs=TARGET, check_failed=check,
               notes=f"peak RSS {rss:,.0f} MiB; ratio to the raw read "
                     f"{ours_rate / raw_rate:.2f}"),
    ]


async def main(argv: list[str]) -> int:
    cfg = Config.from_env(quick="--quick" in argv)
    [r] = await run(cfg)
    log(r.describe())
    return 0 if r.passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
