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
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from libs.events import Envelope
from libs.events.contracts import all_contracts
from libs.events.kafka_binding import to_kafka
from libs.events.topics import SERVICES
from libs.runtime.auth import issue_token
from libs.runtime.settings import DEV_AUTH_SECRET
from tests.conftest import PG_PORT, ROOT, create_database, drop_database

BASE_PORT = int(os.environ.get("E2E_BASE_PORT", "18001"))


class System:
    def __init__(self, base_port: int, namespace: str, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.urls = {name: f"http://127.0.0.1:{base_port + i}" for i, name in enumerate(SERVICES)}
        self.output: deque[str] = deque(maxlen=400)
        self.log: list[str] = []  # every line the services printed (the leak scan reads it)
        self.databases: dict[str, str] = {}  # service -> its database's name
        # Topics and groups of this run only: earlier runs' events stay on the broker.
        self.namespace = namespace

    def topic(self, service: str) -> str:
        """The events topic of ``service`` in this run's namespace."""
        return f"{self.namespace}{service}.events"

    def client(self, service: str, *roles: str, province: str | None = None,
               subject: str = "e2e") -> httpx.AsyncClient:
        """An HTTP client for ``service``, with a bearer token for ``roles`` if any."""
        headers = {}
        if roles:
            token = issue_token(DEV_AUTH_SECRET, subject=subject, roles=list(roles),
                                province=province)
            headers["Authorization"] = f"Bearer {token}"
        return httpx.AsyncClient(base_url=self.urls[service], timeout=10, headers=headers)

    async def publish(self, producer_service: str, event_type: str, data: dict,
                      *, subject: str, stream_id: str | None = None,
                      stream_version: int = 1) -> Envelope:
        """Publish an upstream service's event into its topic, as that service would.

        For reactions to services whose own issue has not produced the event yet; the
        payload is validated against its contract in ``libs.events.contracts`` first.
        """
        env = Envelope.new(type=event_type, data=data, stream_id=stream_id or subject,
                           source=f"/{producer_service}", subject=subject,
                           time=datetime.now(UTC))
        env = all_contracts().validate(env)._replace(stream_version=stream_version)
        key, value, headers = to_kafka(env)
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(self.topic(producer_service), value=value, key=key,
                                         headers=headers)
        finally:
            await producer.stop()
        return env


@contextmanager
def running_system(postgres_server: str, kafka_bootstrap: str, base_port: int,
                   prefix: str = "e2e", split: bool = False,
                   settings: dict[str, str] | None = None) -> Iterator[System]:
    """The five services under the supervisor on ``base_port``..``base_port + 4``, each on a
    fresh database, in their own topic namespace; stopped (SIGTERM) and dropped after.
    ``split``: each service as a worker and an API process (``make run SPLIT=1``);
    ``settings``: environment variables of the services (``REGISTRATION_...``)."""
    names = {s: asyncio.run(create_database(postgres_server, f"{prefix}_{s}")) for s in SERVICES}
    env = {**os.environ, **(settings or {})}
    for service, db in names.items():
        env[f"{service.upper()}_DATABASE_URL"] = (
            f"postgresql+asyncpg://postgres@127.0.0.1:{PG_PORT}/{db}")
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    namespace = f"{prefix}-{uuid.uuid4().hex[:8]}."
    env["KAFKA_NAMESPACE"] = namespace
    proc = subprocess.Popen(
        [sys.executable, "-m", "libs.runtime.supervisor", "--db", "postgres", "--no-infra",
         "--base-port", str(base_port), *(["--split"] if split else [])],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    system = System(base_port, namespace, kafka_bootstrap)
    system.databases = names
    ready = threading.Event()

    def collect() -> None:
        for line in proc.stdout:
            system.output.append(line)
            system.log.append(line)
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


@pytest.fixture(scope="session")
def system(postgres_server, kafka_bootstrap):
    with running_system(postgres_server, kafka_bootstrap, BASE_PORT) as running:
        yield running
