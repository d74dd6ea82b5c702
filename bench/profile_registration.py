"""Where a registration's CPU goes: ``POST /v1/accounts`` sampled with py-spy.

One ``uvicorn services.registration.main:app`` process (relay, projection and consumer
running) on a fresh database of the local PostgreSQL and a Kafka namespace of this run,
loaded by the client of :mod:`bench.registration` (32 keep-alive connections, pre-built
bodies) while ``py-spy record`` samples the server. Printed: requests/s, and the functions
by share of the server's samples, inclusive and own (``--top``). py-spy is in the ``bench``
extra; it needs ptrace rights (root, or ``kernel.yama.ptrace_scope=0``).

``--gil`` samples only while the server runs Python (holds the GIL): its CPU, without the
time its event loop waits. Usage:
``python -m bench.profile_registration [--count 3000] [--top 40] [--gil]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg

from .load import ADMIN_DSN
from .registration import _run_load, _serve, _stop

ROOT = Path(__file__).resolve().parents[1]


def summarise(raw: str, top: int) -> str:
    """py-spy's collapsed stacks -> the top functions, inclusive and own, in % of samples."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1]
                  + ")" if " (" in f else f for f in stack.split(";")]
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    out = [f"{total} samples", "", "inclusive %  function"]
    out += [f"{100 * n / total:10.1f}  {f}" for f, n in inclusive.most_common(top)]
    out += ["", "own %       function"]
    out += [f"{100 * n / total:10.1f}  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


def _py_spy(pid: int, out: Path, gil: bool = False) -> subprocess.Popen:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([exe, "record", "-p", str(pid), "--format", "raw", "-o", str(out),
                             "--rate", "250", "--nonblocking", *(["--gil"] if gil else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def main(a: argparse.Namespace) -> None:
    from libs.events.migrate import upgrade
    from services.registration.bootstrap import MIGRATIONS

    name = f"prof_registration_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(a.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    host = a.admin_dsn.split("@", 1)[1].split("/", 1)[0]
    url = f"postgresql+asyncpg://postgres@{host}/{name}"
    try:
        await asyncio.to_thread(upgrade, url, MIGRATIONS)
        env = {"REGISTRATION_DATABASE_URL": url, "KAFKA_NAMESPACE": f"prof-{name}.",
               "REGISTRATION_SWEEP_INTERVAL_SECONDS": "0", "LOG_LEVEL": "WARNING",
               "ENVIRONMENT": "development",
               # no verification here: the activation backlog (ADR 0044) would fill
               "REGISTRATION_MAX_AWAITING_VERIFICATION": "0"}
        os.environ.setdefault("ENVIRONMENT", "development")
        proc, base = await _serve("services.registration.main:app", env, "/readyz",
                                  workers=1)
        out = Path(tempfile.mkdtemp()) / "stacks.txt"
        try:
            await _run_load(base, 300, 100, seed=3)  # warm-up
            spy = _py_spy(proc.pid, out, gil=a.gil)
            await asyncio.sleep(1.0)
            figures = await _run_load(base, a.count, 0, seed=4)
            spy.send_signal(subprocess.signal.SIGINT)
            await asyncio.to_thread(spy.wait, 30)
        finally:
            _stop(proc)
        rate = figures["accepted"] / figures["seconds"]
        print(json.dumps({"registrations_per_s": round(rate, 1),
                          "p50_ms": round(figures.get("p50", 0) * 1000, 1),
                          "p99_ms": round(figures.get("p99", 0) * 1000, 1),
                          "statuses": figures["statuses"]}))
        print(summarise(out.read_text(), a.top) if out.exists() else "py-spy wrote nothing")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.profile_registration",
                                description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--gil", action="store_true",
                   help="sample only while the server holds the GIL (its CPU, not its waits)")
    p.add_argument("--admin-dsn", default=os.environ.get("LOAD_ADMIN_DSN", ADMIN_DSN))
    asyncio.run(main(p.parse_args()))
    sys.exit(0)
