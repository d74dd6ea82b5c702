"""Identity numbers out of URLs (issue 10): a look-up by owner goes through
``POST /v1/accounts/search`` (the number in the body); ``GET /v1/accounts?owner=`` is
refused; and whatever a client puts in a query string, the exported spans and uvicorn's
access log carry none of it.

Registration runs under a real uvicorn server in this process (access log on, as
uvicorn's default), over a migrated SQLite database, without its lifespan (no relay, no
consumers); its spans go through the process's tracer provider, query redactor first,
to an in-memory exporter.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx
import pytest
import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from libs.events.migrate import upgrade
from libs.runtime.auth import issue_token
from libs.runtime.settings import DEV_AUTH_SECRET
from libs.runtime.tracing import configure_tracing
from services.registration.bootstrap import MIGRATIONS, bootstrap
from services.registration.main import app
from services.registration.settings import Settings
from tests.registration_support import resident_id

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def served(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/registration.db"
    await asyncio.to_thread(upgrade, url, MIGRATIONS)
    runtime = bootstrap(Settings(database_url=url))
    app.state.runtime = runtime
    configure_tracing("registration", processors=[])  # a no-op if the process has one
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    lines = _Lines()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           access_log=True, log_level="info"))
    access = logging.getLogger("uvicorn.access")
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)  # bounded: 10 s for the server to bind
        assert server.started, "uvicorn did not start"
        access.addHandler(lines)  # uvicorn configured its loggers while starting
        yield f"http://127.0.0.1:{port}", exporter, lines
    finally:
        access.removeHandler(lines)
        server.should_exit = True
        await task
        await runtime.db.dispose()
        del app.state.runtime


async def test_owner_look_up_keeps_the_id_number_out_of_spans_and_access_logs(served):
    base, exporter, lines = served
    number = resident_id()
    token = issue_token(DEV_AUTH_SECRET, subject="t", roles=["operator"])
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                 timeout=10) as http:
        found = await http.post("/v1/accounts/search", json={"owner": number})
        assert found.status_code == 200, found.text
        assert found.json() == {"items": [], "next_cursor": None}
        # a client that still puts the number in the URL is refused, and it is not kept
        refused = await http.get("/v1/accounts", params={"owner": number, "limit": 5})
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "identity-in-url"
        listed = await http.get("/v1/accounts", params={"status": number})
        assert listed.status_code == 200, listed.text
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind == trace.SpanKind.SERVER]
    assert len(servers) >= 3, [s.name for s in spans]
    for s in spans:
        leaks = {k: v for k, v in (s.attributes or {}).items() if number in str(v)}
        assert not leaks, (s.name, leaks)
        assert number not in s.name
    urls = [(dict(s.attributes or {}).get("url.path"), dict(s.attributes or {}).get("url.query"))
            for s in servers]
    # the path and the parameters' names stay, their values do not
    assert ("/v1/accounts", "owner=REDACTED&limit=REDACTED") in urls, urls
    for _ in range(100):  # uvicorn logs the access line just after the response
        if len(lines.lines) >= 3:
            break
        await asyncio.sleep(0.05)
    assert len(lines.lines) >= 3, lines.lines
    assert not [line for line in lines.lines if number in line], lines.lines
    assert any('"GET /v1/accounts?owner=REDACTED&limit=REDACTED HTTP/1.1" 422' in line
               for line in lines.lines), lines.lines
