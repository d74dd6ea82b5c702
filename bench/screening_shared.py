"""Benchmark 8b: name screening from a shared PostgreSQL table against the in-memory index.

Issue 16 / ADR 0023: at 20 million closed or protected names the in-memory index costs
every worker its own copy. ``shared_name_screening`` measures the alternative on the same
names and the same queries as ``name_similarity`` and ``protected_name_screening``:

- in memory: :class:`libs.screening.NameIndex` (RSS growth of a fresh process);
- shared: a table of the names with their normalised, pinyin and digit look-alike keys,
  btree indexes on the three and a ``pg_trgm`` GIN index on the normalised key
  (:mod:`libs.screening.shared`), one statement per question over one connection, rows
  scored by the same code; its size is ``pg_total_relation_size``.

Closed names (``closed_names``, default 1M): ``similar`` as registration asks it (labels,
containment from 4 characters). Protected names (``protected_names``, 100k): the profile's
name (``similar`` + ``contained_in``) and its ~100-character description
(``contained_in``). Recall: the share of the in-memory answers (ids, per query, no limit)
that the shared index also returns. Targets: p99 <= 5 ms (closed), <= 10 ms (profile).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
import time

import asyncpg

from libs.screening import Affixes
from libs.screening.shared import (
    CONTAINED_SQL,
    DDL,
    SCREEN_SQL,
    TRIGRAM_THRESHOLD,
    SharedContained,
    SharedQuery,
    row_keys,
)

from .common import Config, Result, log, percentiles
from .screening import (
    CONTAINED_MIN_LENGTH,
    SUFFIXES,
    THRESHOLD,
    WARMUP,
    NameMaker,
    build,
    in_fresh_process,
    timed,
)

TABLE = "bench_shared_names"


def positional(sql: str, names: list[str]) -> str:
    """SQLAlchemy ``:name`` parameters as asyncpg's ``$n``, in the order of ``names``."""
    for i, name in enumerate(names, 1):
        sql = re.sub(rf":{name}\b", f"${i}", sql)
    return sql


SCREEN_NAMES = ["norms", "pinyins", "lookalike", "query", "fuzzy_cap"]
CONTAINED_NAMES = ["norms", "pinyins"]



def answered(screen, items: list) -> tuple[list[float], list[set[str]]]:
    """Each item's latency and the ids ``screen`` answered, after ``WARMUP`` untimed."""
    for item in items[:WARMUP]:
        screen(item)
    latencies, answers = timed(screen, items[WARMUP:])
    return latencies, [{m.id for m in a} for a in answers]


async def answered_async(screen, items: list) -> tuple[list[float], list[set[str]]]:
    """:func:`answered` for a screen that asks the database."""
    for item in items[:WARMUP]:
        await screen(item)
    pc = time.perf_counter
    latencies, ids = [], []
    for item in items[WARMUP:]:
        t = pc()
        answer = await screen(item)
        latencies.append(pc() - t)
        ids.append({m.id for m in answer})
    return latencies, ids

async def load_table(conn: asyncpg.Connection, prefix: str, names: list[str]) -> dict:
    """The names and their keys in a fresh table with its indexes; sizes and timings."""
    await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await conn.execute(DDL[0])
    await conn.execute(DDL[1].format(table=TABLE))
    start = time.perf_counter()
    rows = [(f"{prefix}-{i:07d}", name, *row_keys(name)) for i, name in enumerate(names)]
    keys_s = time.perf_counter() - start
    start = time.perf_counter()
    await conn.copy_records_to_table(TABLE, records=rows)
    copy_s = time.perf_counter() - start
    start = time.perf_counter()
    for ddl in DDL[2:]:
        await conn.execute(ddl.format(table=TABLE))
    await conn.execute(f"ANALYZE {TABLE}")
    index_s = time.perf_counter() - start
    size = await conn.fetchval(f"SELECT pg_total_relation_size('{TABLE}')") / 2**20
    trgm = await conn.fetchval(f"SELECT pg_relation_size('{TABLE}_norm_trgm')") / 2**20
    lengths = [r[0] for r in await conn.fetch(f"SELECT DISTINCT length(norm) FROM {TABLE}")]
    pinyin_max = await conn.fetchval(f"SELECT max(length(pinyin)) FROM {TABLE}")
    await conn.execute(f"SET pg_trgm.similarity_threshold = {TRIGRAM_THRESHOLD}")
    log(f"   table: keys {keys_s:.1f} s, COPY {copy_s:.1f} s, indexes {index_s:.1f} s, "
        f"{size:,.0f} MB with indexes (GIN trigram {trgm:,.0f} MB)")
    return {"size": size, "trgm": trgm, "lengths": sorted(lengths), "pinyin_max": pinyin_max,
            "load_s": keys_s + copy_s + index_s}


def recall(memory: list[set[str]], shared: list[set[str]]) -> tuple[float, int, int]:
    wanted = sum(map(len, memory))
    got = sum(len(m & s) for m, s in zip(memory, shared, strict=True))
    extra = sum(len(s - m) for m, s in zip(memory, shared, strict=True))
    return (got / wanted if wanted else 1.0), wanted, extra


async def closed(cfg: Config) -> list[Result]:
    n, q = cfg.closed_names, cfg.screening_queries
    log(f"== shared_name_screening (closed): {n:,} names, {q:,} queries")
    maker = NameMaker(seed=1)
    names = [maker.account_name() for _ in range(n)]
    queries: list[str] = []
    for _ in range(q + WARMUP):
        roll, source = maker.rng.random(), maker.rng.choice(names)
        queries.append(source if roll < 0.3 else maker.variant(source)[1] if roll < 0.7
                       else maker.account_name())
    index, _, grown, _ = build(names, "closed")
    affixes = Affixes()

    def in_memory(query: str):
        return index.similar(query, threshold=THRESHOLD, limit=None, affixes=affixes,
                             contained_min_length=CONTAINED_MIN_LENGTH)

    mem_lat, mem_sets = answered(in_memory, queries)

    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        table = await load_table(conn, "closed", names)
        statement = await conn.prepare(positional(SCREEN_SQL.format(table=TABLE),
                                                  SCREEN_NAMES))

        async def shared(query: str):
            sq = SharedQuery(query, threshold=THRESHOLD, limit=None, affixes=affixes,
                             contained_min_length=CONTAINED_MIN_LENGTH,
                             lengths=table["lengths"])
            params = sq.params()
            rows = await statement.fetch(*(params[k] for k in SCREEN_NAMES))
            return sq.matches(rows)

        sh_lat, sh_sets = await answered_async(shared, queries)
        await conn.execute(f"DROP TABLE {TABLE}")
    finally:
        await conn.close()
    share, wanted, extra = recall(mem_sets, sh_sets)
    return rows_for("closed names", n, mem_lat, sh_lat, grown, table, share, wanted, extra,
                    0.005)


async def profiles(cfg: Config) -> list[Result]:
    n, q = cfg.protected_names, cfg.screening_queries
    log(f"== shared_name_screening (protected): {n:,} names, {q:,} profiles")
    maker = NameMaker(seed=2)
    protected = [maker.protected_name() for _ in range(n)]
    items: list[tuple[str, str]] = []
    for _ in range(q + WARMUP):
        source, roll = maker.rng.choice(protected), maker.rng.random()
        name = (source + maker.rng.choice(SUFFIXES) if roll < 0.2 else
                maker.variant(source)[1] if roll < 0.35 else maker.account_name())
        embedded = maker.rng.choice(protected) if maker.rng.random() < 0.33 else None
        items.append((name, maker.description(100, embedded)))
    index, _, grown, _ = build(protected, "protected")

    def in_memory(item: tuple[str, str]):
        name, description = item
        return (index.similar(name, threshold=THRESHOLD, limit=None)
                + index.contained_in(name) + index.contained_in(description))

    mem_lat, mem_sets = answered(in_memory, items)

    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        table = await load_table(conn, "protected", protected)
        similar = await conn.prepare(positional(SCREEN_SQL.format(table=TABLE), SCREEN_NAMES))
        contained = await conn.prepare(positional(CONTAINED_SQL.format(table=TABLE),
                                                  CONTAINED_NAMES))

        async def inside(text: str):
            sc = SharedContained(text, table["lengths"], table["pinyin_max"])
            params = sc.params()
            return sc.matches(await contained.fetch(*(params[k] for k in CONTAINED_NAMES)))

        async def shared(item: tuple[str, str]):
            name, description = item
            sq = SharedQuery(name, threshold=THRESHOLD, limit=None)
            params = sq.params()
            found = sq.matches(await similar.fetch(*(params[k] for k in SCREEN_NAMES)))
            return found + await inside(name) + await inside(description)

        sh_lat, sh_sets = await answered_async(shared, items)
        await conn.execute(f"DROP TABLE {TABLE}")
    finally:
        await conn.close()
    share, wanted, extra = recall(mem_sets, sh_sets)
    return rows_for("profile (name + description), protected names", n, mem_lat, sh_lat,
                    grown, table, share, wanted, extra, 0.010)


def rows_for(what: str, n: int, mem_lat: list[float], sh_lat: list[float], grown: float,
             table: dict, share: float, wanted: int, extra: int, target: float
             ) -> list[Result]:
    mem, sh = percentiles(mem_lat), percentiles(sh_lat)
    log(f"   in memory p50 {mem['p50'] * 1e3:.2f} ms p99 {mem['p99'] * 1e3:.2f} ms, "
        f"RSS +{grown:,.0f} MB; shared p50 {sh['p50'] * 1e3:.2f} ms p99 "
        f"{sh['p99'] * 1e3:.2f} ms, {table['size']:,.0f} MB in PostgreSQL; recall "
        f"{share:.4f} of {wanted:,} in-memory answers, {extra:,} more")
    return [
        Result(f"shared screening (PostgreSQL pg_trgm), {n:,} {what}: vs in-memory index",
               1 / sh["mean"], "queries/s", 1 / mem["mean"],
               f"NameIndex in this process, same {len(mem_lat)} queries", target_p99=target,
               ours_latency=sh, baseline_latency=mem,
               check_failed=None if share >= 0.99 else f"recall {share:.4f} < 0.99",
               notes=f"recall {share:.4f} of {wanted:,} in-memory answers ({extra:,} "
                     f"answers only the shared index gave); shared: {table['size']:,.0f} MB "
                     f"in PostgreSQL (GIN trigram {table['trgm']:,.0f} MB), loaded and "
                     f"indexed in {table['load_s']:.0f} s, no per-worker memory; in memory: "
                     f"RSS +{grown:,.0f} MB per worker"),
    ]


async def run(cfg: Config) -> list[Result]:
    # each side in a fresh process: the RSS growth of an index means nothing after another
    # large heap was freed (see in_fresh_process)
    return [*await in_fresh_process("closed", cfg, module="bench.screening_shared"),
            *await in_fresh_process("profiles", cfg, module="bench.screening_shared")]


if __name__ == "__main__":
    from .screening import RESULTS_MARK

    config = json.loads(sys.argv[2])
    config["es_threads"] = tuple(config["es_threads"])
    body = {"closed": closed, "profiles": profiles}[sys.argv[1]]
    results = asyncio.run(body(Config(**config)))
    print(RESULTS_MARK + json.dumps([dataclasses.asdict(r) for r in results]), flush=True)
