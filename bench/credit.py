"""Benchmark 12: credit's metric ingestion through the fake-traffic detector (A12.1).

``credit_metrics``: ``accounts`` x 5 metrics per hourly batch (10,000 samples by default),
``batches`` batches, each through ``handlers.ingest_metrics`` as ``POST /v1/metrics``
calls it (one transaction: the batch numbered on the detector's row, the baselines of the
batch's keys loaded into the process's memory when absent, judged against median/MAD per
hour of week a column at a time, learned, the samples journalled as one row, anomalies
appended on the accounts' streams; ADR 0029). The baselines are seeded first
with six values per key, so every sample is judged. The write-behind flush of everything
learned runs once at the end and is counted in the total. Three runs: samples kept with
the memory warm (a process that has run for a week holds every row it needs: loaded
untimed after the first batch), the same with the memory cold (every row is a first touch,
loaded from the table in the batch), and ``CREDIT_KEEP_SAMPLES=false`` warm. Figure:
samples per second over the whole run; per-batch latency p50/p99. Target: >= 50,000
samples/s. Baseline, in the same run: a bare batch INSERT of the same rows (one
``INSERT ... SELECT unnest(...)`` per batch over asyncpg, no detection). Sizes:
``BENCH_CREDIT_ACCOUNTS`` (2000), ``BENCH_CREDIT_BATCHES`` (20).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from libs.events import Database, EventStore
from libs.events.contracts import all_contracts
from libs.events.migrate import upgrade
from services.credit import bootstrap as credit_boot
from services.credit import handlers, rules
from services.credit.adapters import BaselineRows
from services.credit.settings import Settings

from .common import Config, Result, log, maybe_profile, percentiles, reset_db

T0 = datetime(2026, 6, 1, tzinfo=UTC)
RAW = ("CREATE TABLE IF NOT EXISTS raw_samples (account_id text, metric text, "
       "at timestamptz, value float8, PRIMARY KEY (account_id, metric, at))")
RAW_INSERT = ("INSERT INTO raw_samples SELECT * FROM unnest($1::text[], $2::text[], "
              "$3::timestamptz[], $4::float8[])")


def _batch(rng: random.Random, accounts: int, hour: int) -> list[rules.Sample]:
    at = T0 + timedelta(hours=hour)
    return [rules.Sample(f"acc-{a:06d}", m, at,
                         float(max(0, round(rng.gauss(base, base ** 0.5)))))
            for a in range(accounts)
            for m, base in (("clicks", 200), ("forwards", 10), ("comments", 6),
                            ("followers", 4), ("subscribers", 2))]


async def _seed(db: Database, batches: list[list[rules.Sample]], rng: random.Random,
                accounts: int) -> None:
    """Six weeks of history for every key the batches touch (same hours, earlier weeks)."""
    memory = rules.DetectorMemory(rules.DetectorModel())
    rows: set = set()
    for week in range(6, 0, -1):
        for batch in batches:
            at = batch[0].at - timedelta(weeks=week)
            _, touched = rules.detect(_batch(rng, accounts, int((at - T0).total_seconds()
                                                                // 3600)), memory)
            rows |= touched
    async with db.transaction() as tx:
        await BaselineRows().save(tx, sorted(rows), memory.blocks(sorted(rows)))


async def _side(cfg: Config, accounts: int, n: int, keep_samples: bool, warm: bool
                ) -> tuple[float, float, dict, dict, int]:
    """One run on a fresh database: ours and the bare INSERT, batch by batch alternately."""
    await reset_db(cfg)
    await asyncio.to_thread(upgrade, cfg.db_url, credit_boot.MIGRATIONS)
    rng = random.Random(12)
    batches = [_batch(rng, accounts, h) for h in range(n)]
    db = Database(cfg.db_url)
    store = EventStore(all_contracts(), dialect=db.dialect)
    deps = credit_boot.dependencies(Settings(keep_samples=keep_samples), db, store,
                                    clock=lambda: T0 + timedelta(days=1))
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        await _seed(db, batches, rng, accounts)
        await conn.execute(RAW)
        ours: list[float] = []
        cpu: list[float] = []  # this process's CPU time per batch (the rest is PostgreSQL)
        raw: list[float] = []
        anomalies = 0
        with maybe_profile(cfg, f"credit_metrics_{keep_samples}_{warm}"):
            for i, batch in enumerate(batches):
                if i == 1 and warm:  # a process that has run for a week holds every row
                    async with db.transaction() as tx:
                        await deps.baselines.ensure(tx, rules.rows_of(
                            [s for b in batches for s in b]))
                t, cpu0 = time.perf_counter(), time.process_time()
                out = await handlers.ingest_metrics(deps, handlers.MetricsBatch(samples=batch),
                                                    key=None, digest="-",
                                                    max_samples=len(batch) + 1)
                ours.append(time.perf_counter() - t)
                cpu.append(time.process_time() - cpu0)
                anomalies += len(out.anomalies)
                t = time.perf_counter()
                async with conn.transaction():
                    await conn.execute(RAW_INSERT, [s.account_id for s in batch],
                                       [s.metric for s in batch], [s.at for s in batch],
                                       [s.value for s in batch])
                raw.append(time.perf_counter() - t)
            # the memory written behind is part of the cost: the flush that the periodic
            # task (or the shutdown) would run, timed, counted in the total
            t, cpu0 = time.perf_counter(), time.process_time()
            flushed = await handlers.flush_baselines(deps)
            flush, flush_cpu = time.perf_counter() - t, time.process_time() - cpu0
        per = sum(len(b) for b in batches[1:])
        log(f"   write-behind flush: {flushed:,} baseline rows in {flush * 1000:.0f} ms; "
            f"this process's CPU: {(sum(cpu[1:]) + flush_cpu) / per * 1e6:.2f} us per sample "
            f"(flush {flush_cpu * 1000:.0f} ms)")
        counted = sum(len(b) for b in batches[1:])  # the first batch warms up
        return (counted / (sum(ours[1:]) + flush), counted / sum(raw[1:]),
                percentiles(ours[1:]), percentiles(raw[1:]), anomalies)
    finally:
        await conn.close()
        await db.dispose()


async def run(cfg: Config) -> list[Result]:
    accounts = int(os.environ.get("BENCH_CREDIT_ACCOUNTS", 200 if cfg.quick else 2000))
    n = int(os.environ.get("BENCH_CREDIT_BATCHES", 5 if cfg.quick else 20))
    log(f"== credit_metrics: {n} batches of {accounts * 5:,} samples")
    results = []
    for keep, warm in ((True, True), (True, False), (False, True)):
        figure, baseline, lat, raw_lat, anomalies = await _side(cfg, accounts, n, keep, warm)
        what = ("raw samples kept" if keep else "CREDIT_KEEP_SAMPLES=false") + (
            ", memory warm" if warm else ", memory cold: every row loaded on first touch")
        log(f"   {what}: ours {figure:,.0f} samples/s (p50 {lat['p50'] * 1000:.0f} ms, p99 "
            f"{lat['p99'] * 1000:.0f} ms per batch), bare INSERT {baseline:,.0f} samples/s; "
            f"{anomalies} anomalies flagged")
        results.append(Result(
            name=f"credit_metrics: samples/s through the detector ({what})",
            figure=figure, unit="samples/s", baseline=baseline,
            baseline_name="bare batch INSERT of the same rows", target_abs=50_000,
            ours_latency=lat, baseline_latency=raw_lat,
            notes=f"{accounts * 5:,} samples per batch, {n - 1} timed batches; "
                  f"{anomalies} anomalies; per batch " + orjson.dumps(
                      {k: round(v * 1000, 1) for k, v in lat.items()}).decode() + " ms"))
    return results
