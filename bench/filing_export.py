"""Benchmark: enforcement's filing export (A7.1) of N accounts as CSV and XLSX.

``enforcement_accounts`` holds N accounts (default 1,000,000; ``--quick`` 100,000; env
``BENCH_FILING_ACCOUNTS``) in 31 provinces, a third of them organizations with a business
name, address and USCC, loaded with ``COPY``. Each export then runs in a child process of
its own, so that its peak RSS is the export's and not the loading's:

- ours: :meth:`AccountDirectory.filed_pages` (keyset pages of 5,000) into
  :func:`views.write_filing_csv` / :func:`views.write_filing_xlsx` (openpyxl write-only),
  file digest included, for every province at once (the national office's filing);
- baseline (CSV only): PostgreSQL's own ``COPY (SELECT ...) TO STDOUT WITH CSV`` of the
  same columns into a file through asyncpg — the cost of getting the rows out at all.

Targets: CSV <= 20 s with peak RSS <= 300 MB. ``python -m bench -k filing`` or
``python -m bench.filing_export``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from .common import Config, Result, log, reset_db, vacuum_analyze

CSV_SECONDS, RSS_MB = 20.0, 300.0
PROVINCES = [f"{p}0000" for p in (11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37,
                                  41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64,
                                  65)]
COLUMNS = ("account_id", "province", "category", "entity_type", "business_name",
           "registered_address", "uscc", "verification", "registered_at", "updated_at")


def accounts_for(cfg: Config) -> int:
    default = 100_000 if cfg.quick else 1_000_000
    return int(os.environ.get("BENCH_FILING_ACCOUNTS", default))


def _rows(start: int, count: int):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(start, start + count):
        org = i % 3 == 0
        at = t0 + timedelta(seconds=i)
        yield (f"acc-{i:08d}", PROVINCES[i % len(PROVINCES)],
               "technology" if org else "health", "legal_person" if org else "natural_person",
               f"某某科技有限公司{i}" if org else None, f"广州市天河区某路{i}号" if org else None,
               f"91440101{i:09d}X" if org else None, "verified" if i % 10 else "pending",
               at, at)


async def load(cfg: Config, n: int) -> None:
    await reset_db(cfg)
    # the enforcement service's own tables on top of the kernel's
    from libs.events.migrate import upgrade
    from services.enforcement.bootstrap import MIGRATIONS

    await asyncio.to_thread(upgrade, cfg.db_url, MIGRATIONS)
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        for start in range(0, n, 50_000):
            await conn.copy_records_to_table("enforcement_accounts", columns=COLUMNS,
                                             records=_rows(start, min(50_000, n - start)))
    finally:
        await conn.close()
    await vacuum_analyze(cfg)


async def _export(db_url: str, fmt: str, path: str) -> dict:
    """One export as the service runs it (in the child process)."""
    from libs.events import Database
    from services.enforcement import views
    from services.enforcement.adapters import AccountDirectory

    db = Database(db_url)
    started = time.perf_counter()
    pages = AccountDirectory().filed_pages(db, None)
    if fmt == "csv":
        with open(path, "wb") as out:  # noqa: ASYNC230 - the benchmark's own file
            written = await views.write_filing_csv(pages, out)
    else:
        written = await views.write_filing_xlsx(pages, path)
    seconds = time.perf_counter() - started
    await db.dispose()
    return {"seconds": seconds, "rows": written.rows, "bytes": written.bytes,
            "rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    """This process's peak RSS (MiB) since its exec: VmHWM belongs to the process image.
    ``ru_maxrss`` does not: it keeps the high-water mark of the forked parent's image the
    child replaced, so after the bench's earlier benchmarks had grown the parent, the
    export's figure was the parent's (398 MiB where the export itself peaks at ~100)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _copy_baseline(dsn: str, path: str) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await conn.copy_from_query(
            "SELECT account_id, province, category, entity_type, business_name, "
            "registered_address, uscc, verification, registered_at FROM enforcement_accounts "
            "ORDER BY province, account_id", output=path, format="csv", header=True)
        return time.perf_counter() - started
    finally:
        await conn.close()


def _child(cfg: Config, fmt: str, path: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.filing_export", "--child", fmt, path],
                         capture_output=True, text=True, env={**os.environ,
                                                              "BENCH_DATABASE_URL": cfg.db_url},
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


async def run(cfg: Config) -> list[Result]:
    n = accounts_for(cfg)
    log(f"== filing_export: {n:,} accounts as CSV and XLSX (enforcement, A7.1)")
    started = time.perf_counter()
    await load(cfg, n)
    log(f"   loaded {n:,} accounts in {time.perf_counter() - started:.1f} s")
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        raw_seconds = await _copy_baseline(cfg.asyncpg_dsn, str(Path(tmp) / "copy.csv"))
        for fmt in ("csv", "xlsx"):
            got = await asyncio.to_thread(_child, cfg, fmt, str(Path(tmp) / f"filing.{fmt}"))
            rate = got["rows"] / got["seconds"]
            check = None if got["rows"] == n else f"exported {got['rows']:,} of {n:,} accounts"
            if fmt == "csv" and got["rss_mb"] > RSS_MB:
                check = f"peak RSS {got['rss_mb']:,.0f} MiB above {RSS_MB:.0f} MiB"
            log(f"   {fmt}: {got['seconds']:.1f} s ({rate:,.0f} accounts/s, "
                f"{got['bytes'] / 1e6:,.0f} MB), peak RSS {got['rss_mb']:,.0f} MiB"
                + (f"; COPY TO baseline {raw_seconds:.1f} s" if fmt == "csv" else ""))
            results.append(Result(
                f"filing_export: {n:,} accounts as {fmt.upper()}", rate, "accounts/s",
                n / raw_seconds if fmt == "csv" else None,
                "PostgreSQL COPY ... TO STDOUT WITH CSV" if fmt == "csv" else "",
                target_abs=n / CSV_SECONDS if fmt == "csv" else None,
                reference=fmt == "xlsx", check_failed=check,
                notes=f"{got['seconds']:.1f} s, peak RSS {got['rss_mb']:,.0f} MiB"
                      + (f" (targets <= {CSV_SECONDS:.0f} s, <= {RSS_MB:.0f} MiB)"
                         if fmt == "csv" else "")))
    return results


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        fmt, path = argv[1], argv[2]
        print(json.dumps(asyncio.run(_export(Config.from_env().db_url, fmt, path))))
        return 0
    cfg = Config.from_env(quick="--quick" in argv)
    results = asyncio.run(run(cfg))
    for r in results:
        log(r.describe())
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
