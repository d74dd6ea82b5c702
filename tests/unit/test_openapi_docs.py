"""What every service's OpenAPI and /docs offer (libs.runtime.openapi, libs.runtime.app):
the bearer scheme behind Swagger UI's Authorize button, the error answers as problem
details, and docs that load with no network."""

from __future__ import annotations

import importlib
import re
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from libs.events.topics import SERVICES
from libs.runtime.app import create_app
from libs.runtime.auth import Principal, require
from libs.runtime.problems import MEDIA_TYPE

PROBLEM = {"$ref": "#/components/schemas/Problem"}
METHODS = {"get", "post", "put", "patch", "delete"}


def _app(service: str):
    return importlib.import_module(f"services.{service}.main").app


def _operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def _refuses_without_a_token(client: TestClient, path: str, method: str) -> bool:
    """Whether the route answers 401 to a request without a token (the principal is
    resolved before anything else of the route: no runtime is needed to see it)."""
    url = re.sub(r"\{[^}]+\}", "x", path)
    r = client.request(method, url, json={} if method != "get" else None)
    return r.status_code == 401


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_declares_the_bearer_scheme_on_every_secured_route(service):
    app = _app(service)
    doc = app.openapi()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"]}
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan, no runtime
    locks = 0
    for path, method, op in _operations(doc):
        if _refuses_without_a_token(client, path, method):
            assert op.get("security") == [{"bearer": []}], f"{method} {path} shows no lock"
            locks += 1
        else:
            assert "security" not in op, f"{method} {path} is public but shows a lock"
    assert locks, f"{service} has no secured route?"


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_declares_every_error_answer_as_problem_details(service):
    doc = _app(service).openapi()
    assert {"type", "title", "status", "detail", "instance", "code"} <= set(
        doc["components"]["schemas"]["Problem"]["properties"])
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, method, op in _operations(doc):
        responses = op["responses"]
        expected = {"400", "422"} | ({"401", "403"} if op.get("security") else set()) \
            | ({"404"} if "{" in path or method != "get" else set()) \
            | ({"409", "413", "429"} if method != "get" else set())
        assert expected <= set(responses), f"{method} {path}: {expected - set(responses)}"
        for status, answer in responses.items():
            if int(status) >= 400 and path != "/readyz":
                assert answer["content"] == {MEDIA_TYPE: {"schema": PROBLEM}}, (
                    f"{method} {path} {status}")
        # any request but a probe may be shed (ADR 0036, ADR 0044): the 503 and when to
        # come back
        if path in ("/healthz", "/readyz", "/metrics"):
            assert path == "/readyz" or "503" not in responses, f"{method} {path}"
        else:
            assert "Retry-After" in responses["503"]["headers"], f"{method} {path}"


@pytest.mark.parametrize("service", SERVICES)
def test_docs_load_without_the_network(service):
    """/docs and /redoc reference no external URL, and every asset they name is served."""
    client = TestClient(_app(service))  # no lifespan: the docs need no runtime
    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", r.text), (
            f"{page} references an external URL")
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text)
        assets += re.findall(r"""url:\s*['"]([^'"]+)['"]""", r.text)
        assert any(a.endswith(".js") for a in assets), f"{page} loads no script: {assets}"
        for asset in assets:
            served = client.get(asset)
            assert served.status_code == 200 and served.content, f"{page}: {asset} not served"
    assert client.get("/openapi.json").json()["info"]["title"]


def test_a_missing_or_foreign_token_is_a_401_problem_document():
    router = APIRouter()

    @router.get("/secret")
    async def secret(principal: Annotated[Principal, Depends(require("operator"))]) -> dict:
        return {}

    client = TestClient(create_app(lambda: None, title="t", description="", routers=[router]))
    for headers in ({}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer "}):
        r = client.get("/secret", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["content-type"] == MEDIA_TYPE
        assert r.json()["code"] == "unauthenticated"
