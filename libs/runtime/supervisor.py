"""``make run``: start Kafka (and PostgreSQL with ``--db postgres``), create the topics,
start the five services, prefix every line they print with the process's name, and on
Ctrl-C stop everything it started, services first.

Usage: python -m libs.runtime.supervisor [--db sqlite|postgres] [--no-infra] [--base-port N]
                                        [--split]

``--split`` (PostgreSQL only) runs each service as two processes, as a deployment scales
them (ADR 0037): a worker (``SERVICE_ROLE=worker``: relay, projections, consumers, sweeps;
its health, readiness and metrics on ``base port + 100 + i``) started first, then the API
(``SERVICE_ROLE=api``) on the service's own port.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from libs.events.topics import SERVICES, ensure_topics, events_topic

ROOT = Path(__file__).resolve().parents[2]
KAFKA = ROOT / "deploy/local/kafka/kafka.sh"
POSTGRES = ROOT / "deploy/local/postgres/postgres.sh"


def ports(base: int) -> dict[str, int]:
    """registration on ``base``, verification on ``base + 1``, ... (8001-8005 by default)."""
    return {name: base + i for i, name in enumerate(SERVICES)}

COLORS = ["\033[36m", "\033[32m", "\033[35m", "\033[33m", "\033[34m", "\033[31m"]
RESET = "\033[0m"


def say(name: str, line: str, color: str = "") -> None:
    tty = sys.stdout.isatty()
    prefix = f"{color}{name:>12} |{RESET if tty else ''} " if tty else f"{name:>12} | "
    sys.stdout.write(prefix + line.rstrip("\n") + "\n")
    sys.stdout.flush()


def running(script: Path) -> bool:
    return subprocess.run(["bash", str(script), "status"], capture_output=True).returncode == 0


def infra(script: Path, *args: str) -> str:
    """Run an infrastructure script; its output is shown prefixed, failure stops make run."""
    proc = subprocess.run(["bash", str(script), *args], capture_output=True, text=True)
    for line in (proc.stdout + proc.stderr).splitlines():
        say(script.parent.name, line)
    if proc.returncode != 0:
        raise SystemExit(f"{script.name} {' '.join(args)} failed (exit {proc.returncode})")
    return proc.stdout.strip()


async def pump(name: str, stream: asyncio.StreamReader, color: str) -> None:
    while line := await stream.readline():
        say(name, line.decode(errors="replace"), color)


async def wait_ready(port_map: dict[str, int], deadline_s: float = 120,
                     what: str = "services") -> None:
    pending = dict(port_map)
    deadline = time.monotonic() + deadline_s
    async with httpx.AsyncClient(timeout=2) as client:
        while pending and time.monotonic() < deadline:
            for name, port in list(pending.items()):
                try:
                    r = await client.get(f"http://127.0.0.1:{port}/readyz")
                    if r.status_code == 200:
                        say("supervisor", f"{name} ready on http://127.0.0.1:{port} "
                                          f"(OpenAPI: http://127.0.0.1:{port}/docs)")
                        del pending[name]
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.5)
    if pending:
        raise RuntimeError(f"not ready after {deadline_s:.0f}s: {', '.join(pending)}")
    say("supervisor", f"all five {what} are ready; Ctrl-C stops everything")


WORKER_PORT_OFFSET = 100


async def start_service(service: str, label: str, port: int, env: dict[str, str], color: str,
                        pumps: list) -> asyncio.subprocess.Process:
    """One uvicorn process of ``service`` on ``port``, its output prefixed with ``label``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", f"services.{service}.main:app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    pumps.append(asyncio.create_task(pump(label, proc.stdout, color)))
    return proc


async def main(db: str, with_infra: bool, base_port: int, split: bool = False) -> int:
    env = dict(os.environ)
    port_map = ports(base_port)
    started_infra: list[Path] = []
    # Stop on exit only what this run started: a broker someone else runs stays up.
    if with_infra:
        if not running(KAFKA):
            started_infra.append(KAFKA)
        infra(KAFKA, "start")
        infra(KAFKA, "wait")
    if db == "postgres":
        if with_infra:
            if not running(POSTGRES):
                started_infra.append(POSTGRES)
            infra(POSTGRES, "start")
        for name in SERVICES:
            key = f"{name.upper()}_DATABASE_URL"
            env.setdefault(key, infra(POSTGRES, "url", name).splitlines()[-1])
    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    ns = env.get("KAFKA_NAMESPACE", "")
    created = await ensure_topics(bootstrap, [ns + events_topic(s) for s in SERVICES])
    say("supervisor", f"topics ready ({len(created)} created)")

    procs: dict[str, asyncio.subprocess.Process] = {}
    pumps: list[asyncio.Task] = []
    ready_seconds = float(os.environ.get("SUPERVISOR_READY_SECONDS", 120))
    if split:
        # The workers first: each migrates its database and creates its topics before
        # any API process of the service starts (two migrations at once could collide).
        workers: dict[str, int] = {}
        for i, name in enumerate(SERVICES):
            label, port = f"{name}-worker", port_map[name] + WORKER_PORT_OFFSET
            workers[label] = port
            procs[label] = await start_service(name, label, port,
                                               {**env, "SERVICE_ROLE": "worker"}, COLORS[i],
                                               pumps)
        try:
            await wait_ready(workers, ready_seconds, what="workers")
        except RuntimeError as exc:
            say("supervisor", str(exc))
            for proc in procs.values():
                if proc.returncode is None:
                    proc.kill()
            return 1
    for i, name in enumerate(SERVICES):
        procs[name] = await start_service(
            name, name, port_map[name], {**env, "SERVICE_ROLE": "api"} if split else env,
            COLORS[i], pumps)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiters = {asyncio.create_task(p.wait()): n for n, p in procs.items()}
    # a loaded machine may need longer (bench.load sets it)
    ready = asyncio.create_task(wait_ready(port_map, ready_seconds))
    stopper = asyncio.create_task(stop.wait())
    code = 0
    while True:
        watched = [*waiters, stopper] + ([] if ready.done() else [ready])
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            break
        exited = [waiters[t] for t in done if t in waiters]
        if exited:
            say("supervisor", f"{', '.join(exited)} exited; stopping everything")
            code = 1
            break
        if ready in done and ready.exception() is not None:
            say("supervisor", str(ready.exception()))
            code = 1
            break
    ready.cancel()

    say("supervisor", "stopping services")
    for proc in procs.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs.values())), 20)
    except TimeoutError:
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
    await asyncio.gather(*pumps, return_exceptions=True)
    for script in reversed(started_infra):
        infra(script, "stop")
    say("supervisor", "stopped")
    return code


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--no-infra", action="store_true",
                        help="use an already running Kafka (and PostgreSQL); stop none")
    parser.add_argument("--base-port", type=int, default=int(os.environ.get("BASE_PORT", 8001)),
                        help="port of the first service; the others follow (default 8001)")
    parser.add_argument("--split", action="store_true",
                        default=os.environ.get("SPLIT", "") not in ("", "0"),
                        help="each service as a worker process and an API process "
                             "(PostgreSQL only; SPLIT=1)")
    args = parser.parse_args()
    if args.split and args.db != "postgres":
        parser.error("--split needs --db postgres: two processes share each database")
    sys.exit(asyncio.run(main(args.db, not args.no_infra, args.base_port, args.split)))
