"""The broker goes away under a running service (issue 10, findings 2 and 3).

The test runs its OWN single-node broker (``deploy/local/kafka/kafka.sh`` with other ports
and its own ``KAFKA_VAR``), never the suite's: it stops and kills it. Against it, the
registration service runs in-process on a fresh PostgreSQL database:

- broker stopped: ``/readyz`` is 503 with ``kafka`` not ok (a real probe, not the client's
  cached metadata), ``/healthz`` stays 200, the relay's backlog gauge counts the events
  written meanwhile and the age of the oldest grows;
- broker back: readiness recovers, the backlog drains to 0, every event is on the topic
  exactly once;
- broker killed with SIGKILL and started again at once: ``kafka.sh start`` waits for the
  ports the dying broker still holds instead of calling them taken.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.events import Envelope
from libs.events.contracts.ops import DeadLetterSkipped
from libs.events.kafka_binding import from_kafka
from tests.conftest import PG_PORT, ROOT, create_database, drop_database, eventually
from tests.integration.kafka_helpers import read_topic

pytestmark = pytest.mark.kafka

KAFKA_SH = ROOT / "deploy/local/kafka/kafka.sh"
# Ports of this test's broker: beside the suite's (9092/9093) and the other fault tests'.
PORT = int(os.environ.get("FAULT_BASE_PORT", "18901")) + 20


class OwnBroker:
    def __init__(self, var: Path) -> None:
        self.var = var
        self.bootstrap = f"127.0.0.1:{PORT}"
        self.env = {**os.environ, "KAFKA_PORT": str(PORT),
                    "KAFKA_CONTROLLER_PORT": str(PORT + 1), "KAFKA_VAR": str(var),
                    "KAFKA_WAIT_TIMEOUT": "120", "PYTHON": sys.executable}
        # A start-up hook of the shell that runs the suite is for the suite's own broker;
        # this one is the test's to start and kill.
        self.env.pop("BASH_ENV", None)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(KAFKA_SH), *args], env=self.env,
                              capture_output=True, text=True, timeout=240)

    def must(self, *args: str) -> str:
        proc = self.run(*args)
        assert proc.returncode == 0, f"kafka.sh {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
        return proc.stdout

    def pid(self) -> int:
        return int((self.var / "kafka.pid").read_text())


@pytest.fixture
def own_broker(tmp_path_factory):
    broker = OwnBroker(tmp_path_factory.mktemp("kafka-outage"))
    try:
        broker.must("start")
        broker.must("wait")
        yield broker
    finally:
        broker.run("stop")


@pytest.fixture
async def registration(own_broker, postgres_server, monkeypatch):
    """The registration service's app, started against the test's broker."""
    db = await create_database(postgres_server, "outage")
    monkeypatch.setenv("REGISTRATION_DATABASE_URL",
                       f"postgresql+asyncpg://postgres@127.0.0.1:{PG_PORT}/{db}")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", own_broker.bootstrap)
    monkeypatch.setenv("KAFKA_NAMESPACE", f"out-{uuid.uuid4().hex[:8]}.")
    app = importlib.import_module("services.registration.main").app
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://registration",
                timeout=30) as http:
            yield app, http
    finally:
        await drop_database(postgres_server, db)


async def write(runtime, n: int, tag: str) -> list[Envelope]:
    """``n`` events in the service's own store (operator records: no projection reads them)."""
    stored = []
    for i in range(n):
        data = DeadLetterSkipped(operator="fault-test", consumer="none", dead_letter_id=i,
                                 reason=tag).to_data()
        async with runtime.db.transaction() as tx:
            stored += await runtime.store.append(tx, f"ops-{tag}-{i}", 0, [
                Envelope.new(type=DeadLetterSkipped.event_type, data=data,
                             stream_id=f"ops-{tag}-{i}", source="/tests",
                             time=datetime.now(UTC))])
        runtime.committed()
    return stored


async def gauge(http, name: str) -> float | None:
    text = (await http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                return s.value
    return None


async def readiness(http) -> tuple[int, dict]:
    r = await http.get("/readyz")
    return r.status_code, r.json()["checks"]


async def test_readiness_and_backlog_tell_the_truth_while_kafka_is_down(own_broker,
                                                                       registration):
    app, http = registration
    runtime = app.state.runtime

    async def ready() -> bool:
        status, checks = await readiness(http)
        return status == 200 and checks["kafka"] == "ok"

    await eventually(ready, timeout=60, interval=0.5, what="the service ready")
    before = await write(runtime, 5, "before")
    await eventually(lambda: _is(gauge(http, "relay_backlog_events"), 0), timeout=60,
                     interval=0.5, what="the first events published")

    own_broker.must("stop")

    async def kafka_reported_down() -> bool:
        status, checks = await readiness(http)
        return status == 503 and checks["kafka"] != "ok"

    await eventually(kafka_reported_down, timeout=20, interval=0.3,
                     what="/readyz to report Kafka down")
    assert (await http.get("/healthz")).status_code == 200, "liveness does not need Kafka"
    during = await write(runtime, 7, "during")

    async def backlog_counted() -> bool:
        return (await gauge(http, "relay_backlog_events") or 0) >= len(during)

    await eventually(backlog_counted, timeout=20, interval=0.3,
                     what="the backlog gauge to count the unpublished events")
    first_age = await gauge(http, "relay_backlog_oldest_age_seconds")

    async def older() -> bool:
        return (await gauge(http, "relay_backlog_oldest_age_seconds") or 0) > first_age + 1

    await eventually(older, timeout=20, interval=0.5,
                     what="the oldest unpublished event's age to grow")
    status, checks = await readiness(http)
    assert status == 503 and checks["kafka"] != "ok", checks

    own_broker.must("start")
    own_broker.must("wait")
    await eventually(ready, timeout=90, interval=0.5, what="readiness back with the broker")
    await eventually(lambda: _is(gauge(http, "relay_backlog_events"), 0), timeout=120,
                     interval=0.5, what="the backlog drained to 0")

    # Killed outright, then started again at once: start waits for the ports to be free.
    pid = own_broker.pid()
    os.kill(pid, signal.SIGKILL)  # and no waiting: the dying JVM still holds its ports
    proc = own_broker.run("start")
    assert proc.returncode == 0, f"start right after SIGKILL:\n{proc.stdout}{proc.stderr}"
    print(proc.stdout)  # shows whether it had to wait for the ports (-s to see it)
    own_broker.must("wait")
    after = await write(runtime, 3, "after")
    await eventually(ready, timeout=90, interval=0.5, what="readiness back after the kill")
    await eventually(lambda: _is(gauge(http, "relay_backlog_events"), 0), timeout=120,
                     interval=0.5, what="the backlog drained after the kill")

    wanted = [e.id for e in before + during + after]
    records = await read_topic(own_broker.bootstrap, runtime.topic, len(wanted), timeout=60)
    ids = [from_kafka(r.key, r.value, r.headers).id for r in records]
    assert sorted(ids) == sorted(wanted), "every event published, exactly once"


async def _is(value, expected) -> bool:
    return (await value) == expected
