"""``python -m bench``: run the event kernel benchmarks and write ``bench/RESULTS.md``.

Examples::

    python -m bench                      # everything, full sizes (~5-10 min)
    python -m bench --quick              # everything, ~1/10 sizes (smoke run)
    python -m bench -k append            # the three append shapes only
    python -m bench -k relay -k consumer --relay-events 50000
    python -m bench -k read_all --profile   # cProfile our side into bench/profiles/
"""

from __future__ import annotations

import os

# The benchmarks run the development configuration against the local PostgreSQL and Kafka
# (the settings refuse it unless ENVIRONMENT=development is set explicitly).
os.environ.setdefault("ENVIRONMENT", "development")

import argparse  # noqa: E402
import asyncio
import shlex
import sys
import time
from datetime import datetime

from . import (
    command_cost,
    consumer,
    credit,
    filing_export,
    group_commit,
    read_all,
    registration,
    relay,
    replay,
    screening,
    screening_shared,
    store_append,
    verification,
    violation_latency,
)
from .common import (
    Config,
    Result,
    bench_lock,
    kafka_version,
    log,
    machine_description,
    pg_settings,
    write_report,
)

# name -> (coroutine function, needs Kafka)
BENCHMARKS = {
    "append_single": (store_append.bench_single, False),
    "append_concurrent": (store_append.bench_concurrent, False),
    "append_batch": (store_append.bench_batch, False),
    "group_commit": (group_commit.run, False),
    "read_all": (read_all.run, False),
    "replay": (replay.run, False),
    "relay": (relay.run, True),
    "consumer": (consumer.run, True),
    "name_similarity": (screening.run_name_similarity, False),
    "protected_name_screening": (screening.run_protected_names, False),
    "shared_name_screening": (screening_shared.run, False),
    "registration_http": (registration.run, True),
    "profile_screening": (verification.run, False),
    "filing_export": (filing_export.run, False),
    "violation_latency": (violation_latency.run, True),
    "credit_metrics": (credit.run, False),
    "command_cost": (command_cost.run, False),
}
# in-memory benchmarks: a run of only these neither takes the database lock nor needs one
NO_DATABASE = frozenset({"name_similarity", "protected_name_screening", "profile_screening"})


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, Config]:
    cfg = Config.from_env()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-k", action="append", default=[], metavar="NAME",
                   help="run only benchmarks whose name contains NAME (repeatable); names: "
                        + ", ".join(BENCHMARKS))
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--quick", action="store_true",
                   help="about 1/10 of the full sizes (also BENCH_QUICK=1)")
    p.add_argument("--profile", action="store_true",
                   help="cProfile our side of each benchmark into bench/profiles/")
    p.add_argument("--no-report", action="store_true", help="do not touch bench/RESULTS.md")
    p.add_argument("--db-url", default=cfg.db_url, help="SQLAlchemy URL (BENCH_DATABASE_URL)")
    p.add_argument("--kafka", default=cfg.kafka, help="bootstrap servers (BENCH_KAFKA)")
    for name in Config.SIZE_FIELDS:
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                       help=f"default {getattr(cfg, name)} (BENCH_{name.upper()})")
    p.add_argument("--es-threads", default=None,
                   help="eventsourcing thread counts for the concurrent shape, e.g. 4,8")
    args = p.parse_args(argv)
    cfg = Config.from_env(quick=args.quick)  # flags below override the environment
    for name in Config.SIZE_FIELDS:
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    if args.es_threads:
        cfg.es_threads = tuple(int(x) for x in args.es_threads.split(","))
    cfg.db_url, cfg.kafka, cfg.profile = args.db_url, args.kafka, args.profile
    return args, cfg


def selected(patterns: list[str]) -> list[str]:
    if not patterns:
        return list(BENCHMARKS)
    names = [n for n in BENCHMARKS if any(p in n for p in patterns)]
    if not names:
        sys.exit(f"no benchmark matches {patterns}; names: {', '.join(BENCHMARKS)}")
    return names


async def main(argv: list[str]) -> int:
    args, cfg = parse_args(argv)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    names = selected(args.k)
    if NO_DATABASE.issuperset(names):
        return await run(args, cfg, names, argv)
    # one benchmark run at a time per database: each one drops and recreates its schema
    async with bench_lock(cfg):
        return await run(args, cfg, names, argv)


async def run(args: argparse.Namespace, cfg: Config, names: list[str], argv: list[str]) -> int:
    started = datetime.now().astimezone()
    t0 = time.perf_counter()
    if NO_DATABASE.issuperset(names):
        pg = dict.fromkeys(("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers"),
                           "-") | {"server_version": "not used by this run"}
    else:
        pg = await pg_settings(cfg)
        log(f"PostgreSQL {pg['server_version']}: fsync={pg['fsync']}, "
            f"synchronous_commit={pg['synchronous_commit']}, "
            f"wal_sync_method={pg['wal_sync_method']}")
        if pg["fsync"] != "on" or pg["synchronous_commit"] != "on":
            log("WARNING: PostgreSQL is not at default durability; figures are not comparable")
    kafka = None
    if any(BENCHMARKS[n][1] for n in names):
        kafka = await kafka_version(cfg)
        log(f"Kafka at {cfg.kafka}: {kafka or 'UNREACHABLE'}")
    machine = machine_description(pg, kafka)
    for k, v in machine:
        log(f"  {k}: {v}")

    results: list[Result] = []
    failed: list[str] = []
    for name in names:
        fn, needs_kafka = BENCHMARKS[name]
        if needs_kafka and kafka is None:
            log(f"== {name}: SKIPPED (Kafka unreachable at {cfg.kafka})")
            failed.append(name)
            continue
        t = time.perf_counter()
        try:
            rs = await fn(cfg)
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            log(f"== {name}: ERROR {type(exc).__name__}: {exc}")
            import traceback

            traceback.print_exc()
            failed.append(name)
            continue
        for r in rs:
            log(r.describe())
        log(f"   ({time.perf_counter() - t:.0f} s)")
        results.extend(rs)

    seconds = time.perf_counter() - t0
    log("")
    log(f"{'benchmark':<62} {'figure':>12} {'baseline':>12} {'ratio':>7} {'target':>10}  result")
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        base = f"{r.baseline:,.0f}" if r.baseline is not None else "-"
        verdict = "ref" if r.reference else r.verdict
        log(f"{r.name:<62} {r.figure:>12,.0f} {base:>12} {ratio:>7} {r.target_text:>10}  {verdict}")
    log(f"total {seconds:.0f} s")
    if not args.no_report and results:
        command = "python -m bench" + ("" if not argv else " " + shlex.join(argv))
        path = write_report(results, machine=machine, command=command, cfg=cfg,
                            started=started, seconds=seconds)
        log(f"wrote {path}")
    if failed:
        log(f"did not complete: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
