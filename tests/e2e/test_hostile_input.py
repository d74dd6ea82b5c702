"""Hostile bodies against the deployed services (uvicorn, PostgreSQL, Kafka), over raw
sockets so that what the server reads is visible: a request announcing a 50 MB body is
answered (401 without a token, 413 on the public complaint portal) while the client has
sent no byte of it; a body over its route's cap is 413 ``body-too-large``. Before ADR 0030
the server waited for the 50 MB, parsed them (about 150 MB of memory, measured by
``python -m bench.hostile_body``) and only then answered."""

from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import urlsplit

import pytest

from libs.runtime.auth import issue_token
from libs.runtime.settings import DEV_AUTH_SECRET

pytestmark = pytest.mark.kafka

MB = 1024 * 1024
# one route with a body per service; the complaint portal is public (no token needed)
ROUTES = {"registration": "/v1/accounts", "verification": "/v1/protected-names",
          "transfer": "/v1/transfers", "credit": "/v1/metrics",
          "enforcement": "/v1/complaints"}
PUBLIC = {"/v1/complaints"}


async def exchange(url: str, head: str, chunks: int = 0) -> tuple[int, dict, int]:
    """Send ``head``, then up to ``chunks`` chunks of 1 MB (chunked framing, never the last
    chunk) while waiting for the answer; (status, problem document, chunks the client had
    pushed when it read the answer: socket buffers included, not what the server read)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    sent = 0

    async def send_body() -> None:
        nonlocal sent
        chunk = b"a" * MB
        try:
            for _ in range(chunks):
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                sent += 1
        except (ConnectionError, RuntimeError):
            pass  # the server answered and closed: what we want

    try:
        writer.write(head.encode())
        await writer.drain()
        sender = asyncio.create_task(send_body())
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += await asyncio.wait_for(reader.read(65536), timeout=20)
        answered_after = sent
        header, _, content = raw.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in header.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(content) < length:
            content += await asyncio.wait_for(reader.read(65536), timeout=20)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        return int(header.split()[1]), json.loads(content), answered_after
    finally:
        writer.close()


def request(path: str, *, length: int | None = None, token: str | None = None) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: e2e", "Content-Type: application/json",
             f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.mark.parametrize("service", sorted(ROUTES))
async def test_a_50MB_anonymous_body_is_answered_before_a_byte_of_it_is_sent(system, service):
    path = ROUTES[service]
    status, problem, _ = await exchange(system.urls[service], request(path, length=50 * MB))
    expected = (413, "body-too-large") if path in PUBLIC else (401, "unauthenticated")
    assert (status, problem["code"]) == expected, problem
    if path not in PUBLIC:  # chunked, without a length: 401 before any chunk
        status, problem, _ = await exchange(system.urls[service], request(path))
        assert (status, problem["code"]) == expected, problem


@pytest.mark.parametrize("service", sorted(ROUTES))
async def test_a_body_over_the_cap_is_413_for_a_valid_token_too(system, service):
    token = issue_token(DEV_AUTH_SECRET, subject="e2e", roles=["platform", "operator"])
    path = ROUTES[service]
    status, problem, _ = await exchange(system.urls[service],
                                        request(path, length=50 * MB, token=token))
    assert (status, problem["code"]) == (413, "body-too-large"), problem
    # chunked, and never finished (no last chunk): an answer at all means the server gave
    # up at the route's cap (32 MiB at most) instead of waiting for the end of the body
    status, problem, _ = await exchange(system.urls[service], request(path, token=token),
                                        chunks=50)
    assert (status, problem["code"]) == (413, "body-too-large"), problem
