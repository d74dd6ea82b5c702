"""``make load``: registrations end to end through the whole running system, at a fixed rate.

From ``POST /v1/accounts`` accepted (202) to the account ``active`` in registration's view,
after verification's round trip over Kafka (registration -> verification's identity check
-> ``verification.AccountVerified`` -> registration's ``AccountActivated``), with all five
services running as ``make run DB=postgres`` runs them (:mod:`libs.runtime.supervisor`:
one process per service; ``--processes split`` for a worker and an API process each, as
``SPLIT=1`` runs them, ADR 0037), on fresh databases of the local PostgreSQL and a Kafka
namespace of this run, both removed at the end).

The client is open-loop: request ``i`` is due at ``start + i / rate`` whatever the answers
before it (a slow server does not slow the client down, so the latency is counted from
when the request was due: no coordinated omission). It speaks keep-alive HTTP/1.1 over
raw asyncio streams (httpx costs more CPU than the servers under test on a 2-CPU machine),
opening connections as the backlog needs, up to ``--max-connections``.

Reported per rate: the accepted rate (202/s over the send window), 503s (shed by the
admission control, ADR 0036, or by registration's activation backlog, ADR 0044) and other
answers, HTTP latency p50/p99 of the 202s, the activation delay p50/p99
(``AccountActivated``'s time minus ``AccountRegistrationSubmitted``'s in each account's
own stream), and the reconciliation: every 202 registered once and
activated exactly once in registration's log, verified exactly once in verification's, and
``active`` in registration's view; no registration appended for an answer that was not 202.
Also the CPU a registration costs the whole system: each service's processes, the
PostgreSQL backends of its database and the Kafka broker, from ``/proc`` over the step
(sending and settling), per accepted registration (the load client excluded).

Usage::

    python -m bench.load --rate 300 --duration 60
    python -m bench.load --rate 100,200,300,400 --duration 30    # a saturation curve
    RATE=300 DURATION=60 make load
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import orjson

from libs.events.topics import SERVICES
from libs.runtime.supervisor import WORKER_PORT_OFFSET

from .common import percentiles

ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = "postgresql://postgres@127.0.0.1:55432/postgres"
SUBMITTED = "registration.AccountRegistrationSubmitted"
ACTIVATED = "registration.AccountActivated"
VERIFIED = "verification.AccountVerified"


# -- the system --------------------------------------------------------------------------------
@dataclass
class System:
    base_port: int
    dsns: dict[str, str]  # asyncpg DSN per service
    proc: subprocess.Popen | None = None
    output: deque = field(default_factory=lambda: deque(maxlen=300))

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.base_port + SERVICES.index(service)}"


def _supervisor(env: dict[str, str], base_port: int, split: bool) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "libs.runtime.supervisor", "--db", "postgres", "--no-infra",
         "--base-port", str(base_port), *(["--split"] if split else [])],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


async def start_system(admin_dsn: str, base_port: int, kafka: str, env_extra: dict[str, str],
                       split: bool = False) -> System:
    """Fresh databases, a Kafka namespace of this run, the supervisor of ``make run``."""
    run = uuid.uuid4().hex[:8]
    admin = await asyncpg.connect(admin_dsn)
    host = admin_dsn.split("@", 1)[1].split("/", 1)[0]
    dsns = {}
    try:
        for s in SERVICES:
            name = f"load_{s}_{run}"
            await admin.execute(f'CREATE DATABASE "{name}"')
            dsns[s] = f"postgresql://postgres@{host}/{name}"
    finally:
        await admin.close()
    env = {**os.environ, "ENVIRONMENT": "development", "KAFKA_BOOTSTRAP_SERVERS": kafka,
           "KAFKA_NAMESPACE": f"load-{run}.", "LOG_LEVEL": "WARNING",
           "SUPERVISOR_READY_SECONDS": "300", **env_extra}
    for s, dsn in dsns.items():
        env[f"{s.upper()}_DATABASE_URL"] = dsn.replace("postgresql://",
                                                       "postgresql+asyncpg://", 1)
    system = System(base_port, dsns)
    system.proc = _supervisor(env, base_port, split)
    ready = threading.Event()

    def collect() -> None:
        for line in system.proc.stdout:
            system.output.append(line)
            if "all five services are ready" in line:
                ready.set()

    threading.Thread(target=collect, daemon=True).start()
    if not await asyncio.to_thread(ready.wait, 330) or system.proc.poll() is not None:
        await stop_system(system, admin_dsn)
        raise RuntimeError("the system did not become ready:\n" + "".join(system.output))
    return system


async def stop_system(system: System, admin_dsn: str, keep: bool = False) -> None:
    if system.proc is not None and system.proc.poll() is None:
        system.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(system.proc.wait, 60)
        except subprocess.TimeoutExpired:
            system.proc.kill()
    if keep:
        return
    admin = await asyncpg.connect(admin_dsn)
    try:
        for dsn in system.dsns.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" '
                                "WITH (FORCE)")
    finally:
        await admin.close()


# -- the requests ------------------------------------------------------------------------------
def bodies(n: int, seed: int) -> list[dict]:
    """Distinct identities, phones, devices, networks and names (no limit, velocity or name
    rule refuses them), in a field verification activates once the identity checks out."""
    from bench.registration import registration_body

    out = []
    for i in range(n):
        k = seed * 1_000_000 + i
        phone = f"13{k % 10**9:09d}"
        if phone[-4:] in ("0000", "9999", "1111"):  # the local provider's special numbers
            phone = phone[:-1] + "7"
        out.append(registration_body(k, category="technology", label="科技号",
                                     description="科技见闻", phone=phone))
    return out


@dataclass
class Answer:
    status: int  # 0: no answer (connection error or timeout)
    due: float  # when the request was due (perf_counter)
    latency: float  # from due to the last byte of the answer
    account_id: str | None = None
    retry_after: bool = False  # a 503 that says when to come back


class OpenLoop:
    """Send ``requests`` at ``rate`` per second on a pool of keep-alive connections."""

    def __init__(self, host: str, port: int, max_connections: int, timeout: float) -> None:
        self.host, self.port = host, port
        self.max_connections = max_connections
        self.timeout = timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0
        self.freed = asyncio.Condition()
        self.answers: list[Answer] = []
        self.not_sent = 0  # due while every connection was busy, past the timeout

    async def _connection(self, due: float):
        while True:
            while self.idle:
                conn = self.idle.pop()
                if not conn[0].at_eof():
                    return conn
                # the server closed it while idle (uvicorn's keep-alive timeout): a request
                # written to it would get no answer, so it is dropped before, not after
                self.open -= 1
                conn[1].close()
            if self.open < self.max_connections:
                self.open += 1
                try:
                    return await asyncio.open_connection(self.host, self.port)
                except OSError:
                    self.open -= 1
                    raise
            async with self.freed:
                await asyncio.wait_for(self.freed.wait(), self.timeout)

    async def _give_back(self, conn) -> None:
        self.idle.append(conn)
        async with self.freed:
            self.freed.notify()

    async def _drop(self, conn) -> None:
        self.open -= 1
        conn[1].close()
        async with self.freed:
            self.freed.notify()

    async def one(self, request: bytes, due: float) -> None:
        try:
            conn = await self._connection(due)
        except (TimeoutError, OSError):
            self.not_sent += 1
            self.answers.append(Answer(0, due, time.perf_counter() - due))
            return
        reader, writer = conn
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                length = next(int(h.split(b":")[1]) for h in lines
                              if h.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, StopIteration):
            await self._drop(conn)
            self.answers.append(Answer(0, due, time.perf_counter() - due))
            return
        status = int(lines[0].split()[1])
        account = orjson.loads(body).get("account_id") if status == 202 else None
        retry = status == 503 and any(h.lower().startswith(b"retry-after:") for h in lines)
        self.answers.append(Answer(status, due, time.perf_counter() - due, account, retry))
        if any(h.lower() == b"connection: close" for h in lines):
            await self._drop(conn)
        else:
            await self._give_back(conn)

    async def run(self, requests: list[bytes], rate: float) -> float:
        """Send every request on its schedule; the seconds the sending took."""
        tasks = []
        start = time.perf_counter()
        for i, req in enumerate(requests):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one(req, due)))
        sent = time.perf_counter() - start
        await asyncio.gather(*tasks)
        for _, writer in self.idle:
            writer.close()
        return max(sent, len(requests) / rate)


def http_request(host: str, token: str, body: dict) -> bytes:
    data = orjson.dumps(body)
    return (f"POST /v1/accounts HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Idempotency-Key: {uuid.uuid4().hex}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


# -- reconciliation ----------------------------------------------------------------------------
async def activated_count(dsn: str, ids: list[str]) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM registration_account_list WHERE status = 'active' "
            "AND account_id = ANY($1::text[])", ids)
    finally:
        await conn.close()


async def submitted_streams(system: System) -> set[str]:
    """The accounts registered so far (before a step: earlier steps' are not its own)."""
    reg = await asyncpg.connect(system.dsns["registration"])
    try:
        return {r[0] for r in await reg.fetch(
            "SELECT stream_id FROM events WHERE type = $1", SUBMITTED)}
    finally:
        await reg.close()


async def reconcile(system: System, accepted: list[str], unanswered: int,
                    before: frozenset[str] = frozenset()) -> dict:
    """Each account's own events: registered once, activated once, verified once, active in
    the view; the activation delay from its events' times. A registration the client got
    no 202 for is allowed only for a request it got no answer to at all (it timed out or
    its connection broke: the server may have accepted it), and must be activated once too.
    """
    reg = await asyncpg.connect(system.dsns["registration"])
    ver = await asyncpg.connect(system.dsns["verification"])
    try:
        rows = await reg.fetch(
            "SELECT stream_id, type, time FROM events WHERE type = ANY($1::text[])",
            [SUBMITTED, ACTIVATED])
        verified = await ver.fetch(
            "SELECT subject, count(*) FROM events WHERE type = $1 GROUP BY subject", VERIFIED)
        active = await reg.fetchval(
            "SELECT count(*) FROM registration_account_list WHERE status = 'active' "
            "AND account_id = ANY($1::text[])", accepted)
    finally:
        await reg.close()
        await ver.close()
    submitted: dict[str, list] = {}
    activated: dict[str, list] = {}
    for stream, type_, at in rows:
        (submitted if type_ == SUBMITTED else activated).setdefault(stream, []).append(at)
    streams = [f"account-{a}" for a in accepted]
    verified_n = {subject: n for subject, n in verified}
    delays = [(activated[s][0] - submitted[s][0]).total_seconds() for s in streams
              if len(submitted.get(s, ())) == 1 and len(activated.get(s, ())) == 1]
    extra = set(submitted) - set(streams) - before  # earlier steps' are not this one's
    rec = {
        "accepted": len(accepted),
        "registered_once": sum(len(submitted.get(s, ())) == 1 for s in streams),
        "activated_once": sum(len(activated.get(s, ())) == 1 for s in streams),
        "activated_twice_or_more": sum(len(v) > 1 for v in activated.values()),
        "not_activated": sum(s not in activated for s in streams),
        "verified_once": sum(verified_n.get(a) == 1 for a in accepted),
        "verified_twice_or_more": sum(n > 1 for n in verified_n.values()),
        "active_in_view": active,
        "registered_without_answer": len(extra),
        "unanswered": unanswered,
        "those_activated_once": sum(len(activated.get(s, ())) == 1 for s in extra),
        "activation": percentiles(delays),
    }
    n = len(accepted)
    rec["ok"] = (rec["registered_once"] == rec["activated_once"] == rec["verified_once"]
                 == rec["active_in_view"] == n
                 and rec["activated_twice_or_more"] == rec["verified_twice_or_more"] == 0
                 and len(extra) <= unanswered and rec["those_activated_once"] == len(extra))
    return rec


# -- CPU -----------------------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(system: System) -> dict[str, float]:
    """CPU time (user + system, from /proc) used so far by the system's parts: each
    service's processes (``registration``, or ``registration-worker`` when split), the
    PostgreSQL backends of its database (``pg:registration``), and the Kafka broker
    (``kafka``: shared with anything else using it). A step's difference over the
    registrations it accepted is the CPU a registration costs the whole system."""
    databases = {dsn.rsplit("/", 1)[1]: s for s, dsn in system.dsns.items()}
    worker_ports = {str(system.base_port + WORKER_PORT_OFFSET + i)
                    for i in range(len(SERVICES))}
    used: dict[str, float] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                words = f.read().decode(errors="replace").split("\0")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        part = None
        if words[0].startswith("postgres:") and len(words[0].split()) > 3:
            service = databases.get(words[0].split()[3])
            part = service and f"pg:{service}"
        elif "kafka.Kafka" in words:
            part = "kafka"
        else:
            app = next((w for w in words if w.startswith("services.") and w.endswith(":app")),
                       None)
            if app is not None and app.split(".")[1] in system.dsns:
                port = words[words.index("--port") + 1] if "--port" in words else ""
                part = app.split(".")[1] + ("-worker" if port in worker_ports else "")
        if part:
            used[part] = used.get(part, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
    return used


def cpu_per_registration(before: dict[str, float], after: dict[str, float], accepted: int
                         ) -> dict[str, float]:
    """Milliseconds of CPU per accepted registration, by part (a process that ended in
    between is not counted), and their ``total``."""
    per = {part: 1000 * (after[part] - before.get(part, 0.0)) / max(accepted, 1)
           for part in sorted(after)}
    return {**per, "total": sum(per.values())}


# -- one step ------------------------------------------------------------------------------------
async def step(system: System, token: str, rate: float, duration: float, seed: int,
               max_connections: int, timeout: float, settle: float) -> dict:
    host, port = "127.0.0.1", system.base_port
    n = int(rate * duration)
    requests = [http_request(f"{host}:{port}", token, b) for b in bodies(n, seed)]
    before = frozenset(await submitted_streams(system))
    client = OpenLoop(host, port, max_connections, timeout)
    cpu_before = cpu_seconds(system)
    print(f"load: {rate:g}/s for {duration:g} s ({n} registrations)...", file=sys.stderr,
          flush=True)
    seconds = await client.run(requests, rate)
    answers = client.answers
    ok = [a for a in answers if a.status == 202]
    accepted = [a.account_id for a in ok]
    shed = [a for a in answers if a.status == 503]
    other: dict[str, int] = {}
    for a in answers:
        if a.status not in (202, 503):
            other[str(a.status)] = other.get(str(a.status), 0) + 1
    # wait (with a deadline) until every accepted account is active in registration's view
    deadline = time.monotonic() + settle
    waited_from = time.monotonic()
    while time.monotonic() < deadline:
        if await activated_count(system.dsns["registration"], accepted) >= len(accepted):
            break
        await asyncio.sleep(0.5)
    drained = time.monotonic() - waited_from
    cpu = cpu_per_registration(cpu_before, cpu_seconds(system), len(ok))
    unanswered = sum(a.status == 0 for a in answers)
    rec = await reconcile(system, accepted, unanswered, before)
    return {
        "rate": rate, "duration": duration, "sent": len(answers), "seconds": seconds,
        "accepted_per_s": len(ok) / seconds, "accepted": len(ok), "shed_503": len(shed),
        "shed_with_retry_after": sum(a.retry_after for a in shed),
        "other": other, "not_sent": client.not_sent,
        "connections": client.open, "http": percentiles([a.latency for a in ok]),
        "http_503": percentiles([a.latency for a in shed]),
        "activation": rec["activation"], "drained_after_s": drained,
        "reconciliation": rec, "reconciled": rec["ok"], "cpu_ms_per_registration": cpu,
    }


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:,.0f} ms"


def table(results: list[dict]) -> str:
    lines = ["| rate | accepted/s | 503 | other | HTTP p50 / p99 | activation p50 / p99 "
             "| CPU/registration | reconciled |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        rec = r["reconciliation"]
        verdict = ("yes" if r["reconciled"] else
                   f"NO ({rec['activated_once']}/{rec['accepted']} activated once, "
                   f"{rec['activated_twice_or_more']} twice, {rec['not_activated']} not)")
        lines.append(
            f"| {r['rate']:g}/s | {r['accepted_per_s']:,.0f}/s | {r['shed_503']} | "
            f"{sum(r['other'].values()) + r['not_sent']} | {fmt_ms(r['http'].get('p50'))} / "
            f"{fmt_ms(r['http'].get('p99'))} | {fmt_ms(r['activation'].get('p50'))} / "
            f"{fmt_ms(r['activation'].get('p99'))} | "
            f"{r['cpu_ms_per_registration']['total']:.1f} ms | {verdict} |")
    return "\n".join(lines)


def cpu_table(results: list[dict]) -> str:
    """Each step's CPU per accepted registration, by part of the system."""
    parts = sorted({p for r in results for p in r["cpu_ms_per_registration"]} - {"total"})
    lines = ["| rate | " + " | ".join(parts) + " | total |",
             "|---|" + "---|" * (len(parts) + 1)]
    for r in results:
        cpu = r["cpu_ms_per_registration"]
        lines.append(f"| {r['rate']:g}/s | " + " | ".join(
            f"{cpu.get(p, 0.0):.2f}" for p in parts) + f" | {cpu['total']:.1f} |")
    return "\n".join(lines)


async def main(a: argparse.Namespace) -> list[dict]:
    from libs.runtime.auth import issue_token
    from libs.runtime.settings import DEV_AUTH_SECRET

    token = issue_token(DEV_AUTH_SECRET, subject="load", roles=["platform"])
    rates = [float(r) for r in str(a.rate).split(",")]
    env_extra = dict(v.split("=", 1) for v in a.env)
    system = await start_system(a.admin_dsn, a.base_port, a.kafka, env_extra,
                                split=a.processes == "split")
    results = []
    try:
        for i, rate in enumerate(rates):
            r = await step(system, token, rate, a.duration, seed=i + 1,
                           max_connections=a.max_connections, timeout=a.timeout,
                           settle=a.settle)
            results.append(r)
            print(table([r]).splitlines()[-1], file=sys.stderr, flush=True)
    finally:
        await stop_system(system, a.admin_dsn, keep=a.keep)
    print(table(results))
    print("\nCPU per accepted registration (ms; /proc, the load client excluded):")
    print(cpu_table(results))
    return results


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", default=os.environ.get("RATE", "300"),
                   help="registrations per second; a comma-separated list runs each in turn "
                        "on the same system (a saturation curve)")
    p.add_argument("--duration", type=float, default=float(os.environ.get("DURATION", 60)),
                   help="seconds of sending per rate")
    p.add_argument("--base-port", type=int, default=int(os.environ.get("LOAD_BASE_PORT", 8101)),
                   help="port of registration; the other services follow")
    p.add_argument("--admin-dsn", default=os.environ.get("LOAD_ADMIN_DSN", ADMIN_DSN),
                   help="PostgreSQL where the run's databases are created and dropped")
    p.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS",
                                                     "127.0.0.1:9092"))
    p.add_argument("--processes", choices=("one", "split"),
                   default=os.environ.get("PROCESSES", "one"),
                   help="one (default): one process per service, as make run runs them; "
                        "split: each service as an API and a worker process (SPLIT=1)")
    p.add_argument("--max-connections", type=int, default=512)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--settle", type=float, default=120.0,
                   help="seconds to wait after sending for every 202 to be active")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for the services (ADMISSION_MAX_IN_FLIGHT=…)")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--keep", action="store_true", help="keep the run's databases")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse(sys.argv[1:])
    figures = asyncio.run(main(args))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    # a run whose 202s do not reconcile (lost or applied twice) fails
    sys.exit(0 if all(r["reconciled"] for r in figures) else 1)
