"""Shared helpers of the benchmarks: configuration, timing, result records, DB reset, report.

Nothing here is specific to one benchmark. Every benchmark module exposes
``async def run(cfg: Config) -> list[Result]``; :mod:`bench.__main__` runs them and
writes ``bench/RESULTS.md`` with :func:`write_report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import asyncpg

from libs.events import Envelope, EventPayload, EventRegistry
from libs.events.migrate import upgrade

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "RESULTS.md"

DEFAULT_DB_URL = "postgresql+asyncpg://postgres@127.0.0.1:55432/bench"
DEFAULT_KAFKA = "127.0.0.1:9092"


# -- configuration ---------------------------------------------------------------------
@dataclass
class Config:
    """Sizes and endpoints; every size can be overridden by env var or CLI flag."""

    db_url: str = DEFAULT_DB_URL
    kafka: str = DEFAULT_KAFKA
    # 1. append, one event per transaction, one connection (transactions per side)
    single_txns: int = 3000
    # 2. append, 8 concurrent writers (transactions per side, over all writers)
    concurrent_txns: int = 8000
    writers: int = 8
    # 3. append, 100 events per transaction (transactions per side)
    batch_txns: int = 300
    batch_size: int = 100
    # 4. eventsourcing's recorder: thread counts of the concurrent shape
    es_threads: tuple[int, ...] = (4, 8)
    # 5. read-all: events in the log, page size
    read_events: int = 200_000
    read_page: int = 5000
    # 6. relay: events to publish
    relay_events: int = 100_000
    # 7. consumer: events to consume
    consumer_events: int = 100_000
    warmup: int = 200
    # history written into a freshly reset database before the append and consumer
    # benchmarks (events, raw_events, inbox, projection documents), then ANALYZE: the
    # figures are for a store that has been running, not for empty tables (0 = none)
    seed_events: int = 50_000
    # 8-9. name screening (no database): index sizes, timed queries, baseline queries
    closed_names: int = 1_000_000
    protected_names: int = 100_000
    screening_queries: int = 2000
    screening_baseline: int = 20
    profile: bool = False  # cProfile our side of each benchmark into bench/profiles/
    quick: bool = False

    SIZE_FIELDS: ClassVar[tuple[str, ...]] = (
        "single_txns", "concurrent_txns", "writers", "batch_txns", "batch_size",
        "read_events", "read_page", "relay_events", "consumer_events", "warmup", "seed_events",
        "closed_names", "protected_names", "screening_queries", "screening_baseline",
    )

    @classmethod
    def from_env(cls, *, quick: bool = False) -> Config:
        """Defaults (quick ones with ``quick`` or ``BENCH_QUICK=1``), then ``BENCH_*`` vars."""
        cfg = cls(
            db_url=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL),
            kafka=os.environ.get("BENCH_KAFKA", DEFAULT_KAFKA),
        )
        if quick or os.environ.get("BENCH_QUICK", "") not in ("", "0"):
            cfg.make_quick()
        for name in cls.SIZE_FIELDS:
            env = os.environ.get(f"BENCH_{name.upper()}")
            if env:
                setattr(cfg, name, int(env))
        return cfg

    def make_quick(self) -> None:
        """About a tenth of the full sizes: a smoke run of every benchmark in ~1 minute."""
        self.quick = True
        self.single_txns = 300
        self.concurrent_txns = 800
        self.batch_txns = 30
        self.read_events = 20_000
        self.relay_events = 10_000
        self.consumer_events = 10_000
        self.warmup = 50
        self.closed_names = 100_000
        self.protected_names = 20_000
        self.screening_queries = 500
        self.screening_baseline = 5

    @property
    def asyncpg_dsn(self) -> str:
        """The same database as ``db_url`` in the form asyncpg/libpq take."""
        return self.db_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    @property
    def pg_params(self) -> dict[str, Any]:
        u = urlsplit(self.asyncpg_dsn)
        return {
            "host": u.hostname or "127.0.0.1",
            "port": u.port or 5432,
            "user": u.username or "postgres",
            "password": u.password or "",
            "dbname": (u.path or "/postgres").lstrip("/"),
        }


# -- results ---------------------------------------------------------------------------
@dataclass
class Result:
    """One line of the report: our figure against a baseline measured in the same run.

    ``target_ratio`` is the minimum figure/baseline; ``target_abs`` a minimum figure;
    ``target_p99`` a maximum p99 of ``ours_latency`` (seconds).
    Latencies are per transaction (seconds) where that makes sense.
    """

    name: str
    figure: float
    unit: str
    baseline: float | None
    baseline_name: str
    target_ratio: float | None = None
    target_abs: float | None = None
    target_p99: float | None = None
    ours_latency: dict[str, float] = field(default_factory=dict)
    baseline_latency: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    reference: bool = False  # informational row (no target)
    check_failed: str | None = None  # a correctness check failed: the row fails whatever its figure

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.figure / self.baseline

    @property
    def target_text(self) -> str:
        if self.target_ratio is not None:
            return f">= {self.target_ratio:g}x"
        if self.target_abs is not None:
            return f">= {self.target_abs:,.0f} {self.unit}"
        if self.target_p99 is not None:
            return f"p99 <= {self.target_p99 * 1000:g} ms"
        return "-"

    @property
    def passed(self) -> bool | None:
        if self.check_failed:
            return False
        if self.target_ratio is not None:
            return self.ratio is not None and self.ratio >= self.target_ratio
        if self.target_abs is not None:
            return self.figure >= self.target_abs
        if self.target_p99 is not None:
            return "p99" in self.ours_latency and self.ours_latency["p99"] <= self.target_p99
        return None

    @property
    def verdict(self) -> str:
        p = self.passed
        return "-" if p is None else ("PASS" if p else "FAIL")

    def describe(self) -> str:
        lines = [f"  {self.name}: {fmt_rate(self.figure)} {self.unit}"]
        if self.ours_latency:
            lat = self.ours_latency
            lines[-1] += f"  (p50 {fmt_ms(lat['p50'])}, p99 {fmt_ms(lat['p99'])})"
        if self.baseline is not None:
            line = f"    baseline [{self.baseline_name}]: {fmt_rate(self.baseline)} {self.unit}"
            if self.baseline_latency:
                line += (f"  (p50 {fmt_ms(self.baseline_latency['p50'])}, "
                         f"p99 {fmt_ms(self.baseline_latency['p99'])})")
            lines.append(line)
        ratio = f"{self.ratio:.2f}x" if self.ratio is not None else "-"
        lines.append(f"    ratio {ratio}, target {self.target_text}: {self.verdict}")
        if self.notes:
            lines.append(f"    note: {self.notes}")
        if self.check_failed:
            lines.append(f"    CHECK FAILED: {self.check_failed}")
        return "\n".join(lines)


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    s = sorted(samples)

    def pick(q: float) -> float:
        return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]

    return {"p50": pick(0.50), "p99": pick(0.99), "mean": statistics.fmean(s)}


class Timer:
    """Wall-clock seconds of a block: ``with Timer() as t: ...; t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def log(msg: str) -> None:
    print(msg, flush=True)


# -- the bench event contract ----------------------------------------------------------
class BenchEvent(EventPayload):
    """A small payload (~100 bytes of JSON), like an account event."""

    event_type: ClassVar[str] = "bench.AccountTouched"
    schema_version: ClassVar[int] = 1
    account_id: str
    n: int
    name: str


def make_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.contract(BenchEvent)
    return registry


SOURCE = "/bench"
_NAMES = ("alice-public-account", "bob-public-account", "carol-public-account")


def payload(stream_id: str, n: int) -> dict[str, Any]:
    """The bench payload: ``{"account_id", "n", "name"}``, ~100 bytes as JSON."""
    return {"account_id": stream_id, "n": n, "name": _NAMES[n % 3]}


def envelope(stream_id: str, n: int) -> Envelope:
    return Envelope.new(
        type=BenchEvent.event_type,
        data=payload(stream_id, n),
        stream_id=stream_id,
        source=SOURCE,
        time=datetime.now(UTC),
    )


def new_stream_id() -> str:
    return f"acct-{uuid.uuid4()}"


def run_id() -> str:
    """A short random suffix for topic and consumer-group names of one run."""
    return uuid.uuid4().hex[:8]


# -- database --------------------------------------------------------------------------
RUN_LOCK = 0x62656E6368  # advisory lock key ("bench")


@contextlib.asynccontextmanager
async def bench_lock(cfg: Config):
    """Hold the bench database's advisory lock: one run at a time resets its schema."""
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RUN_LOCK):
            log("another benchmark run is using this database; waiting for it to finish")
            await conn.execute("SELECT pg_advisory_lock($1)", RUN_LOCK)
        yield
    finally:
        await conn.close()


async def reset_db(cfg: Config) -> None:
    """Drop and recreate the ``public`` schema of the bench database, then migrate it."""
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        await conn.execute("CREATE SCHEMA public")
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, cfg.db_url)
    await vacuum_analyze(cfg)


async def vacuum_analyze(cfg: Config) -> None:
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def pg_settings(cfg: Config) -> dict[str, str]:
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        out = {"server_version": await conn.fetchval("SHOW server_version")}
        for name in ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes",
                     "shared_buffers", "max_connections"):
            out[name] = await conn.fetchval(f"SHOW {name}")
        return out
    finally:
        await conn.close()


RAW_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS raw_events (
  id        bigserial PRIMARY KEY,
  stream_id text NOT NULL,
  version   integer NOT NULL,
  type      text NOT NULL,
  data      jsonb NOT NULL,
  time      timestamptz NOT NULL,
  UNIQUE (stream_id, version)
)
"""
RAW_INSERT = (
    "INSERT INTO raw_events (stream_id, version, type, data, time) "
    "VALUES ($1, $2, $3, $4::jsonb, $5)"
)


_SEED_SQL = [
    # events: streams of 50 events, written as by many transactions of the past
    """
    INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, time, data,
                        source, subject, correlation_id)
    SELECT gen_random_uuid()::text, 'seed-' || (g / 50), g % 50 + 1, 'bench.AccountTouched', 1,
           now(), jsonb_build_object('account_id', 'seed-' || (g / 50), 'n', g,
                                     'name', 'alice-public-account'),
           '/bench', 'seed-' || (g / 50), gen_random_uuid()::text
    FROM generate_series(0, $1 - 1) AS g
    """,
    """
    INSERT INTO inbox (consumer, event_id, handled_at)
    SELECT 'seed', gen_random_uuid()::text, now() FROM generate_series(1, $1) AS g
    """,
    """
    INSERT INTO projection_documents (projection, key, doc)
    SELECT 'seed', 'seed-' || g, '{"count":1}' FROM generate_series(1, $1 / 50) AS g
    """,
]
_SEED_RAW = """
    INSERT INTO raw_events (stream_id, version, type, data, time)
    SELECT 'seed-' || (g / 50), g % 50 + 1, 'bench.AccountTouched',
           jsonb_build_object('account_id', 'seed-' || (g / 50), 'n', g,
                              'name', 'alice-public-account'), now()
    FROM generate_series(0, $1 - 1) AS g
"""


async def seed_history(cfg: Config, *, raw: bool = False) -> None:
    """Give the fresh kernel tables (and ``raw_events``) ``seed_events`` rows of history.

    Without it every benchmark would start on empty tables, where PostgreSQL plans index
    lookups as sequential scans and keeps those plans cached on the connections (see
    bench/README.md): that is a real effect, but of a store's first minute, not of the
    steady state the targets are about. ``--seed-events 0`` measures the empty store.
    """
    if cfg.seed_events <= 0:
        return
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        for sql in _SEED_SQL + ([_SEED_RAW] if raw else []):
            await conn.execute(sql, cfg.seed_events)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def create_raw_table(cfg: Config) -> None:
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        await conn.execute(RAW_TABLE_DDL)
    finally:
        await conn.close()


# -- kafka -----------------------------------------------------------------------------
async def kafka_version(cfg: Config) -> str | None:
    """The broker's version as the local script reports it (None if unreachable)."""
    try:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=cfg.kafka, request_timeout_ms=5000)
        await asyncio.wait_for(admin.start(), 10)
        await admin.close()
    except Exception:  # noqa: BLE001 - unreachable broker: no version
        return None
    script = BENCH_DIR.parent / "deploy/local/kafka/kafka.sh"
    version = "reachable"
    with contextlib.suppress(Exception):
        out = (await asyncio.to_thread(
            subprocess.run, ["bash", str(script), "status"], capture_output=True, text=True,
            timeout=20)).stdout
        if "Kafka " in out:
            version = "Kafka " + out.split("Kafka ", 1)[1].split(",", 1)[0]
    return version


# -- profiling -------------------------------------------------------------------------
@contextlib.contextmanager
def maybe_profile(cfg: Config, name: str):
    """cProfile the block into ``bench/profiles/<name>.txt`` when ``--profile`` is on."""
    if not cfg.profile:
        yield
        return
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        out_dir = BENCH_DIR / "profiles"
        out_dir.mkdir(exist_ok=True)
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf).sort_stats("cumulative")
        stats.print_stats(45)
        buf.write("\n\n--- by internal time ---\n")
        stats.sort_stats("tottime").print_stats(30)
        (out_dir / f"{name}.txt").write_text(buf.getvalue())
        prof.dump_stats(str(out_dir / f"{name}.prof"))


async def timed_ops(op: Callable[[int], Awaitable[Any]], count: int,
                    latencies: list[float]) -> None:
    """Run ``op(i)`` for ``i`` in ``range(count)`` one after the other, recording each latency."""
    pc = time.perf_counter
    for i in range(count):
        t = pc()
        await op(i)
        latencies.append(pc() - t)


def shuffled(seq: list[Any], seed: int = 7) -> list[Any]:
    out = list(seq)
    random.Random(seed).shuffle(out)
    return out


# -- report ----------------------------------------------------------------------------
def machine_description(pg: dict[str, str], kafka: str | None) -> list[tuple[str, str]]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return [
        ("CPUs (nproc)", str(os.cpu_count())),
        ("CPU model", cpu),
        ("Memory", mem),
        ("OS", platform.platform()),
        ("Python", sys.version.split()[0]),
        ("PostgreSQL", pg.get("server_version", "?")),
        ("PostgreSQL durability",
         f"fsync={pg.get('fsync')}, synchronous_commit={pg.get('synchronous_commit')}, "
         f"wal_sync_method={pg.get('wal_sync_method')}, shared_buffers={pg.get('shared_buffers')}"),
        ("Kafka", kafka or "unreachable"),
        ("Code measured", git_revision()),
    ]


def git_revision() -> str:
    """The commit of the working tree, and whether libs/ differs from it."""
    root = BENCH_DIR.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        diff = subprocess.run(["git", "diff", "HEAD", "--", "libs"], cwd=root,
                              capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    if not diff:
        return head
    import hashlib

    digest = hashlib.sha1(diff).hexdigest()[:10]
    return f"{head} + uncommitted changes in libs/ (sha1 of `git diff HEAD -- libs`: {digest})"


def write_report(results: list[Result], *, machine: list[tuple[str, str]], command: str,
                 cfg: Config, started: datetime, seconds: float) -> Path:
    """Write (or update) ``bench/RESULTS.md``.

    A run of a subset (``-k``) replaces only the rows of the benchmarks it ran and keeps
    the others from the previous file, marked with the date they were measured.
    """
    rows = {r.name: _row(r, started) for r in results}
    old = _read_rows(RESULTS_FILE) if RESULTS_FILE.exists() else {}
    merged = {**old, **rows} if old else rows
    order = [r.name for r in results]
    # keep the previous file's row order; rows new to it go at the end
    names = list(old) + [n for n in order if n not in old] if old else order

    lines = [
        "# Event kernel benchmarks",
        "",
        f"Run: {started:%Y-%m-%d %H:%M:%S %Z} ({seconds:.0f} s), command: `{command}`"
        + (" (quick sizes)" if cfg.quick else ""),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine),
        "",
        "## Results",
        "",
        "Figures are operations per second (events/s unless the unit says transactions/s);",
        "the baseline is measured in the same run on the same database or broker; ratio =",
        "figure / baseline. p50/p99 are per-transaction latencies. Rows marked `ref` are",
        "for reference (no target).",
        "",
        "| Benchmark | Figure | Baseline | Ratio | Target | Result | Measured |",
        "|---|---|---|---|---|---|---|",
        *(merged[n] for n in names),
        "",
        "## Sizes",
        "",
        ", ".join(f"{n}={getattr(cfg, n)}" for n in Config.SIZE_FIELDS)
        + f", es_threads={','.join(map(str, cfg.es_threads))}",
        "",
        "See `bench/README.md` for what each benchmark measures.",
        "",
    ]
    RESULTS_FILE.write_text("\n".join(lines))
    return RESULTS_FILE


def _row(r: Result, started: datetime) -> str:
    fig = f"{fmt_rate(r.figure)} {r.unit}"
    if r.ours_latency:
        fig += f" (p50 {fmt_ms(r.ours_latency['p50'])}, p99 {fmt_ms(r.ours_latency['p99'])})"
    base = "-"
    if r.baseline is not None:
        base = f"{fmt_rate(r.baseline)} {r.unit} [{r.baseline_name}]"
        if r.baseline_latency:
            base += (f" (p50 {fmt_ms(r.baseline_latency['p50'])}, "
                     f"p99 {fmt_ms(r.baseline_latency['p99'])})")
    ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
    verdict = "ref" if r.reference and not r.check_failed else r.verdict
    if verdict == "FAIL":
        verdict = "**FAIL**"
    if r.check_failed:
        verdict += f" ({r.check_failed})"
    return (f"| {r.name} | {fig} | {base} | {ratio} | {r.target_text} | {verdict} | "
            f"{started:%Y-%m-%d %H:%M} |")


def _read_rows(path: Path) -> dict[str, str]:
    rows: dict[str, str] = {}
    in_table = False
    for line in path.read_text().splitlines():
        if line.startswith("| Benchmark |"):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            if line.startswith("|---"):
                continue
            name = line.split("|")[1].strip()
            rows[name] = line
    return rows


async def start_producer(cfg: Config):
    """An ``AIOKafkaProducer(acks="all", enable_idempotence=True)``, started."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka, acks="all", enable_idempotence=True)
    await producer.start()
    return producer


async def warm_producer(producer, topic: str, count: int = 200) -> None:
    """Send ``count`` small records to ``topic`` and wait for them (connections, metadata)."""
    futs = [await producer.send(topic, value=b"{}", key=str(i).encode()) for i in range(count)]
    await asyncio.gather(*futs)


async def topic_size(cfg: Config, topic: str) -> int:
    """Number of records in ``topic`` (sum of its partitions' end offsets)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.kafka)
    await admin.start()
    try:
        (desc,) = await admin.describe_topics([topic])
        tps = [TopicPartition(topic, p["partition"]) for p in desc["partitions"]]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=cfg.kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a server a benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
