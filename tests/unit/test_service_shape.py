"""What every service shares: domain refusals become problem documents at the edge only,
and one naming rule for settings."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import Field

from libs.domain import (
    ConflictError,
    DomainError,
    ForbiddenError,
    IllegalTransitionError,
    InvalidCommandError,
    NotFoundError,
    RateLimitedError,
)
from libs.runtime.problems import install_problem_handlers
from libs.runtime.settings import ServiceSettings


def _client(error: DomainError) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/refuse")
    async def refuse() -> None:
        raise error

    return TestClient(app)


@pytest.mark.parametrize(("error", "status"), [
    (InvalidCommandError("bad category", code="unknown-category"), 422),
    (ConflictError("limit reached", code="account-limit-reached"), 409),
    (IllegalTransitionError("cannot activate a closed account"), 409),
    (NotFoundError("no account", code="account-not-found"), 404),
    (ForbiddenError("banned", code="registration-banned"), 403),
    (RateLimitedError("too many", code="velocity-limit"), 429),
])
def test_each_kind_of_refusal_answers_its_status_as_a_problem(error, status):
    r = _client(error).get("/refuse")
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == error.code and body["type"] == f"/problems/{error.code}"
    assert body["detail"] == error.detail and body["instance"] == "/refuse"


def test_a_refusal_carries_its_legal_basis_and_facts():
    error = ForbiddenError("the identity is banned until 2027", code="registration-banned",
                           legal_basis=["A8.3", "A19.2"], until="2027-01-01T00:00:00+00:00")
    body = _client(error).get("/refuse").json()
    assert body["legal_basis"] == ["A8.3", "A19.2"]
    assert body["until"] == "2027-01-01T00:00:00+00:00"
    assert body["title"] == "Registration banned"
    titled = NotFoundError("no such name", code="protected-name-not-found",
                           title="No such protected name")
    assert _client(titled).get("/refuse").json()["title"] == "No such protected name"


def test_an_illegal_transition_has_a_stable_default_code():
    assert IllegalTransitionError("no").code == "illegal-transition"
    assert IllegalTransitionError("no", code="already-closed").code == "already-closed"


class _Settings(ServiceSettings):
    service: str = "example"
    port: int = 1
    sweep_interval_seconds: float = 60.0
    refresh_seconds: float = Field(2.0, validation_alias="OLD_REFRESH_SECONDS")


def test_a_service_setting_is_read_from_its_prefixed_name(monkeypatch):
    monkeypatch.setenv("EXAMPLE_SWEEP_INTERVAL_SECONDS", "5")
    assert _Settings().sweep_interval_seconds == 5.0


def test_the_older_name_still_works_and_the_prefixed_one_wins(monkeypatch):
    monkeypatch.setenv("OLD_REFRESH_SECONDS", "3")
    assert _Settings().refresh_seconds == 3.0
    monkeypatch.setenv("EXAMPLE_REFRESH_SECONDS", "4")
    assert _Settings().refresh_seconds == 4.0
    assert _Settings(refresh_seconds=9).refresh_seconds == 9.0  # given in code wins


def test_a_list_setting_is_read_as_json_under_its_prefixed_name(monkeypatch):
    class Listed(_Settings):
        words: list[str] = ["a"]

    monkeypatch.setenv("EXAMPLE_WORDS", '["赌博", "刷单"]')
    assert Listed().words == ["赌博", "刷单"]


def test_shared_settings_keep_their_plain_names(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    assert _Settings().kafka_bootstrap_servers == "127.0.0.1:19092"


async def test_a_periodic_task_keeps_running_after_a_failed_run():
    import asyncio

    from libs.runtime.service import Periodic, every

    runs: list[int] = []
    third = asyncio.Event()

    async def run() -> None:
        runs.append(1)
        if len(runs) == 3:
            third.set()
        if len(runs) == 1:
            raise RuntimeError("the first run fails")

    task = asyncio.create_task(every(Periodic("tick", 0.01, run)))
    try:
        await asyncio.wait_for(third.wait(), timeout=10)
    finally:
        task.cancel()
    assert len(runs) >= 3


@pytest.mark.parametrize(("environment", "honoured"), [("development", True),
                                                        ("production", False)])
def test_a_request_names_the_clock_in_development_only(environment, honoured):
    from types import SimpleNamespace

    from libs.runtime import clock

    app = FastAPI()
    app.add_middleware(clock.DevelopmentClock)
    app.state.runtime = SimpleNamespace(settings=SimpleNamespace(environment=environment))

    @app.get("/now")
    async def now() -> dict:
        return {"now": clock.now().isoformat()}

    r = TestClient(app).get("/now", headers={"X-Clock-Now": "2026-09-29T10:00:00+08:00"})
    if honoured:
        assert r.json()["now"] == "2026-09-29T10:00:00+08:00"
    else:  # refused rather than ignored: the caller learns the clock did not move (A10.2)
        assert r.status_code == 422 and r.json()["code"] == "clock-not-settable"
        assert TestClient(app).get("/now").status_code == 200  # without it: the server's
