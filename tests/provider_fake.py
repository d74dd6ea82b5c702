"""A fake real-name provider: a real HTTP server on 127.0.0.1 (uvicorn in a thread) whose
answers a test sets per check, with the faults a real provider has.

``fault`` is one of ``ok`` (answer ``result``), ``slow`` (answer after ``delay``), ``5xx``,
``4xx``, ``malformed`` (a body that is not the documented JSON), ``hang`` (answer after
``delay``, meant to exceed the client's timeout), ``flaky`` (``5xx`` for the first
``failures`` requests, then answer).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

PATHS = {"public-security": "/v1/id-checks", "carrier": "/v1/mobile-checks",
         "business-registry": "/v1/enterprise-checks"}


@dataclass
class Behaviour:
    fault: str = "ok"
    result: str = "consistent"
    tenure_months: int | None = 36
    delay: float = 0.0
    failures: int = 0


@dataclass
class FakeProvider:
    behaviour: dict[str, Behaviour] = field(
        default_factory=lambda: {check: Behaviour() for check in PATHS})
    requests: list[tuple[str, dict, dict]] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def url(self, check: str) -> str:
        return f"http://127.0.0.1:{self.port}{PATHS[check]}"

    def set(self, check: str | None = None, **kw) -> None:
        """Change the behaviour of one check (all three when ``check`` is None)."""
        for name in [check] if check else list(PATHS):
            self.behaviour[name] = Behaviour(**kw)

    def calls(self, check: str) -> int:
        return sum(1 for c, _, _ in self.requests if c == check)

    async def _answer(self, request: Request) -> Response:
        check = next(c for c, p in PATHS.items() if p == request.url.path)
        self.requests.append((check, dict(request.headers), await request.json()))
        b = self.behaviour[check]
        if b.fault in ("slow", "hang"):
            await asyncio.sleep(b.delay)
        if b.fault == "5xx":
            return PlainTextResponse("upstream down", status_code=503)
        if b.fault == "4xx":
            return JSONResponse({"error": "bad credential"}, status_code=401)
        if b.fault == "malformed":
            return PlainTextResponse("<html>gateway</html>", status_code=200)
        if b.fault == "flaky" and self.calls(check) <= b.failures:
            return PlainTextResponse("busy", status_code=502)
        body: dict = {"result": b.result}
        if check == "carrier":
            body["tenure_months"] = b.tenure_months
        return JSONResponse(body)

    def start(self) -> FakeProvider:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = Starlette(routes=[Route(p, self._answer, methods=["POST"]) for p in PATHS.values()])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake provider did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None
