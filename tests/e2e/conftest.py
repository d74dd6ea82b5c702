"""The whole system as it is deployed: five services on PostgreSQL and Kafka, driven over HTTP.

Started once per session through the same supervisor as ``make run`` (with fresh
databases and its own ports), and stopped with SIGTERM at the end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections import deque

import httpx
import pytest

from libs.events.topics import SERVICES
from tests.conftest import PG_PORT, ROOT, create_database, drop_database

BASE_PORT = int(os.environ.get("E2E_BASE_PORT", "18001"))


class System:
    def __init__(self, base_port: int) -> None:
        self.urls = {name: f"http://127.0.0.1:{base_port + i}" for i, name in enumerate(SERVICES)}
        self.output: deque[str] = deque(maxlen=400)

    def client(self, service: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.urls[service], timeout=10)


@pytest.fixture(scope="session")
def system(postgres_server, kafka_bootstrap):
    names = {s: asyncio.run(create_database(postgres_server, f"e2e_{s}")) for s in SERVICES}
    env = dict(os.environ)
    for service, db in names.items():
        env[f"{service.upper()}_DATABASE_URL"] = (
            f"postgresql+asyncpg://postgres@127.0.0.1:{PG_PORT}/{db}")
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    proc = subprocess.Popen(
        [sys.executable, "-m", "libs.runtime.supervisor", "--db", "postgres", "--no-infra",
         "--base-port", str(BASE_PORT)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    system = System(BASE_PORT)
    ready = threading.Event()

    def collect() -> None:
        for line in proc.stdout:
            system.output.append(line)
            if "all five services are ready" in line:
                ready.set()

    threading.Thread(target=collect, daemon=True).start()
    try:
        if not ready.wait(180) or proc.poll() is not None:
            pytest.fail("the system did not become ready:\n" + "".join(system.output),
                        pytrace=False)
        yield system
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        for db in names.values():
            asyncio.run(drop_database(postgres_server, db))
