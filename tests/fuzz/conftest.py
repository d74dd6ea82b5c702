"""The five services for the fuzz run: started as `make run` starts them (the supervisor, a
fresh PostgreSQL database each, the shared Kafka broker in a namespace of their own), on
their own ports so the run never shares state with the e2e system."""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import BASE_PORT, running_system

FUZZ_BASE_PORT = int(os.environ.get("FUZZ_BASE_PORT", str(BASE_PORT + 20)))


@pytest.fixture(scope="session")
def fuzz_system(postgres_server, kafka_bootstrap):
    with running_system(postgres_server, kafka_bootstrap, FUZZ_BASE_PORT,
                        prefix="fuzz") as running:
        yield running


def pytest_terminal_summary(terminalreporter):
    from tests.fuzz import tally

    for line in tally.summary():
        terminalreporter.write_line(line)
