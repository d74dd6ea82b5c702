"""A10.2: a sweep's clock is the server's outside development. A request's ``now`` (or
``X-Clock-Now``) and a command's ``--now`` are refused in production with a clear problem,
in every service, before anything runs."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from libs.runtime import clock
from libs.runtime.auth import issue_token
from libs.runtime.deps import ServiceDeps
from libs.runtime.problems import install_problem_handlers

SECRET = "s" * 40
NOW = "2027-06-01T00:00:00Z"
SWEEPS = [("registration", "/v1/operations/sweep"), ("verification", "/v1/operations/sweep"),
          ("verification", "/v1/reinspections/sample"), ("credit", "/v1/operations/sweep"),
          ("enforcement", "/v1/operations/sweep"), ("transfer", "/v1/operations/sweep")]


class Refuse:
    """The database of a sweep that must not start: any use fails the test."""

    def __getattr__(self, name):
        pytest.fail(f"the sweep ran (db.{name}) although its clock was refused")


def client(service: str, environment: str) -> TestClient:
    api = importlib.import_module(f"services.{service}.api")
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(clock.DevelopmentClock)
    for router in (getattr(api, "router", None), getattr(api, "ops", None)):
        if router is not None:
            app.include_router(router)
    deps = ServiceDeps(db=Refuse(), store=None, environment=environment)
    app.state.runtime = SimpleNamespace(
        settings=SimpleNamespace(environment=environment, auth_secret=SECRET), deps=deps)
    token = issue_token(SECRET, subject="op-1", roles=["operator"])
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(("service", "path"), SWEEPS)
def test_A10_2_a_sweep_request_naming_the_clock_is_refused_in_production(service, path):
    body = {"now": NOW} | ({"fraction": 0.5} if path.endswith("sample") else {})
    r = client(service, "production").post(path, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "clock-not-settable" and problem["type"].endswith(problem["code"])
    assert "development" in problem["detail"] and problem["environment"] == "production"


@pytest.mark.parametrize(("service", "path"), SWEEPS[:1])
def test_A10_2_the_clock_header_is_refused_in_production(service, path):
    r = client(service, "production").post(path, json={}, headers={"X-Clock-Now": NOW})
    assert r.status_code == 422 and r.json()["code"] == "clock-not-settable", r.text


@pytest.mark.parametrize("service", ["registration", "verification", "credit", "enforcement",
                                     "transfer"])
def test_A10_2_a_sweep_command_naming_the_clock_is_refused_in_production(
        service, monkeypatch, capsys):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("AUTH_SECRET", SECRET)
    monkeypatch.setenv("PII_KEY", "p" * 40)
    monkeypatch.setenv("ENFORCEMENT_REPORT_SIGNING_KEY", "ab" * 32)
    monkeypatch.setenv("VERIFICATION_IDENTITY_PROVIDER", "http")  # not the test double
    for check in ("PUBLIC_SECURITY", "CARRIER", "BUSINESS_REGISTRY"):  # ... and its endpoints
        monkeypatch.setenv(f"VERIFICATION_{check}_URL", "http://127.0.0.1:1/check")
        monkeypatch.setenv(f"VERIFICATION_{check}_CREDENTIAL", "c" * 16)
    monkeypatch.setenv(f"{service.upper()}_DATABASE_URL",
                       "postgresql+asyncpg://nobody@127.0.0.1:1/never")
    cli = importlib.import_module(f"services.{service}.cli")
    with pytest.raises(SystemExit) as stopped:
        cli.main(["sweep", "--now", NOW])
    assert "--now" in str(stopped.value.code) and "development" in str(stopped.value.code)


def test_A10_2_development_still_takes_the_requested_clock():
    deps = ServiceDeps(db=None, store=None, environment="development")
    assert deps.requested_clock(clock.parse(NOW)) == clock.parse(NOW)
    assert ServiceDeps(db=None, store=None).requested_clock(None) is None
