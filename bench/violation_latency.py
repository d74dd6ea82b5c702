"""Benchmark: a violation's intake to its ``MeasureApplied`` on Kafka (A19.1), under load.

The enforcement service runs in this process as it is deployed (its runtime started:
migrations, relay to ``enforcement.events``, consumers, projections) on the bench
database and the real broker. An open-loop client reports a violation and has an operator
confirm it, at a steady rate (default 50/s for 20 s; ``--quick`` 5 s), through the same
handlers the HTTP routes call. A Kafka consumer of ``enforcement.events`` notes when each
``MeasureApplied`` arrives. Latency = arrival on Kafka - the start of the report, so it
covers both transactions, the relay and the broker.

Reference figures (no target in the issue): p50/p99 and the rate sustained.
``python -m bench -k violation`` or ``python -m bench.violation_latency``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

import orjson
from aiokafka import AIOKafkaConsumer

from .common import Config, Result, log, percentiles, reset_db

RATE = 50.0


async def _arrivals(cfg: Config, topic: str, wanted: dict[str, float], seen: dict[str, float],
                    ready: asyncio.Event, expected: int, complete: asyncio.Event) -> None:
    """Note the time each MeasureApplied of a violation we sent reaches the topic."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=cfg.kafka, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    ready.set()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    headers = dict(r.headers)
                    if headers.get("ce_type") != b"enforcement.MeasureApplied":
                        continue
                    vid = orjson.loads(r.value).get("violation_id")
                    if vid in wanted and vid not in seen:
                        seen[vid] = now
            if len(seen) >= expected:
                complete.set()
    finally:
        await consumer.stop()


async def run(cfg: Config) -> list[Result]:
    from libs.events.contracts.enforcement import Evidence
    from services.enforcement import handlers
    from services.enforcement.bootstrap import bootstrap
    from services.enforcement.settings import Settings

    seconds = 5 if cfg.quick else float(os.environ.get("BENCH_VIOLATION_SECONDS", 20))
    rate = float(os.environ.get("BENCH_VIOLATION_RATE", RATE))
    log(f"== violation_latency: intake -> MeasureApplied on Kafka at {rate:.0f}/s "
        f"for {seconds:.0f} s")
    await reset_db(cfg)
    ns = f"bench-{uuid.uuid4().hex[:8]}."
    runtime = bootstrap(Settings(database_url=cfg.db_url, kafka_bootstrap_servers=cfg.kafka,
                                 kafka_namespace=ns, sweep_interval_seconds=0,
                                 log_level="WARNING"))
    await runtime.start()
    deps = runtime.deps
    wanted: dict[str, float] = {}
    seen: dict[str, float] = {}
    ready, complete = asyncio.Event(), asyncio.Event()
    n = int(rate * seconds)
    watcher = asyncio.create_task(_arrivals(cfg, runtime.topic, wanted, seen, ready, n,
                                            complete))
    await ready.wait()

    async def one(i: int) -> None:
        started = time.perf_counter()
        v = await handlers.report_violation(deps, handlers.NewViolation(
            account_id=f"acc-{i % 500}", category=1 + i % 10, province="440000",
            evidence=Evidence(urls=[f"https://example.com/{i}"], reporter="bench"),
            source="moderation"), by="bench", key=None, digest="-")
        wanted[v.violation_id] = started
        await handlers.decide_violation(deps, v.violation_id, confirm=True, by="bench",
                                        note="", key=None, digest="-")
        deps.committed()

    try:
        tasks, errors = [], 0
        t0 = time.perf_counter()
        for i in range(n):  # open loop: the next one starts on time whatever the last did
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = sum(isinstance(r, BaseException) for r in results)
        sent_for = time.perf_counter() - t0
        try:
            await asyncio.wait_for(complete.wait(), timeout=60)
        except TimeoutError:
            pass  # reported below as the measures that never arrived
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await runtime.stop()
    latencies = [seen[v] - wanted[v] for v in seen]
    lat = percentiles(latencies) if latencies else {}
    check = None
    if errors or len(seen) < n:
        check = f"{len(seen)} of {n} measures reached Kafka ({errors} command errors)"
    log(f"   {len(seen)}/{n} measures on Kafka; p50 {lat.get('p50', 0) * 1000:.0f} ms, "
        f"p99 {lat.get('p99', 0) * 1000:.0f} ms")
    return [Result(
        f"violation_latency: intake -> MeasureApplied on Kafka at {rate:.0f}/s",
        len(seen) / sent_for, "violations/s", None, "", reference=True, ours_latency=lat,
        check_failed=check,
        notes=f"{n} violations reported and confirmed over {seconds:.0f} s (open loop), "
              "latency from the report's start to the record's arrival on the topic")]


def main(argv: list[str]) -> int:
    cfg = Config.from_env(quick="--quick" in argv)
    [r] = asyncio.run(run(cfg))
    log(r.describe())
    return 0 if r.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
