"""Each service's runtime, built by its own ``bootstrap()`` and never started."""

from __future__ import annotations

import getpass
import importlib
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from libs.events import ConcurrencyError, Envelope, EventPayload
from libs.events.topics import SERVICES
from libs.runtime.auth import Principal, decode_token
from libs.runtime.problems import ProblemError
from libs.runtime.service import ServiceRuntime

from . import NotFound, Refused

SOURCE = "/ops/acctctl"


def check_service(name: str) -> str:
    if name not in SERVICES:
        raise NotFound(f"no service {name!r}; services: {', '.join(SERVICES)}")
    return name


def bootstrap(service: str) -> ServiceRuntime:
    """The service's runtime as its ``bootstrap()`` wires it from the environment."""
    module = importlib.import_module(f"services.{check_service(service)}.bootstrap")
    return module.bootstrap()


@asynccontextmanager
async def runtimes(services: Iterable[str]) -> AsyncIterator[dict[str, ServiceRuntime]]:
    built = {name: bootstrap(name) for name in services}
    try:
        yield built
    finally:
        for rt in built.values():
            await rt.db.dispose()


@asynccontextmanager
async def runtime(service: str) -> AsyncIterator[ServiceRuntime]:
    async with runtimes([service]) as built:
        yield built[service]


def principal(rt: ServiceRuntime, token: str | None) -> Principal | None:
    """The operator behind ``--token`` / ``ACCTCTL_TOKEN`` (checked with ``AUTH_SECRET``)."""
    token = token or os.environ.get("ACCTCTL_TOKEN")
    if not token:
        return None
    try:
        return decode_token(rt.settings.auth_secret, token)
    except ProblemError as exc:
        raise Refused(f"the operator token is not valid: {exc.detail}") from None


def operator_name(who: Principal | None) -> str:
    return who.subject if who else f"os:{getpass.getuser()}"


def utcnow() -> datetime:
    return datetime.now(UTC)


async def record(rt: ServiceRuntime, payload: EventPayload, *, subject: str) -> Envelope:
    """Append an operator's action to the service's ``ops-<service>`` stream."""
    stream = f"ops-{rt.settings.service}"
    for _ in range(10):
        try:
            async with rt.db.transaction() as tx:
                version = await rt.store.stream_version(tx, stream)
                env = Envelope.new(type=payload.event_type, data=payload.to_data(),
                                   stream_id=stream, subject=subject, source=SOURCE,
                                   time=utcnow())
                [stored] = await rt.store.append(tx, stream, version, [env])
                return stored
        except ConcurrencyError:
            continue
    raise ConcurrencyError(stream, -1, "the ops stream kept moving")
