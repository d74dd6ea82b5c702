"""The OpenAPI every service publishes: its error answers declared once, for every route.

FastAPI documents what a route returns on success and, for a route with parameters, a 422
in its own ``HTTPValidationError`` shape, which no service answers. :func:`document_errors`
post-processes the generated document: each operation gets the problem answers it can give,
``application/problem+json`` with the one :class:`~libs.runtime.problems.Problem` schema,
so that Swagger UI shows them and a schema-driven client (or Schemathesis,
tests/fuzz) can hold every answer to the document.

Which operation declares which status:

* 400 (a malformed request a route refuses itself), 422 (validation), every operation;
* 401 and 403, every operation behind the bearer scheme (libs.runtime.auth);
* 404, every operation with a path parameter or that changes state (the thing it names,
  in its path or its body, may not exist);
* 409 (a conflict, an Idempotency-Key reused for another request), 413 (a body over the
  limit) and 429 (a domain rate limit), every operation that changes state;
* 503 ``overloaded`` with ``Retry-After``, every operation but the probes: admission
  control sheds any request past the service's capacity (ADR 0036), and registration's
  ``POST /v1/accounts`` past its activation backlog (ADR 0044).

A status a route declares itself (``responses=`` on the route) is left as it is.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .admission import PROBE_PATHS
from .problems import MEDIA_TYPE, Problem

PROBLEM_REF = "#/components/schemas/Problem"

DESCRIPTIONS = {
    400: "Bad request (problem details)",
    401: "No valid bearer token (problem details)",
    403: "The token's roles or scope do not allow this (problem details)",
    404: "Not found (problem details)",
    409: "Conflict with the current state or an earlier request (problem details)",
    413: "The request body is too large (problem details)",
    422: "The request is not valid (problem details, with each field's error)",
    429: "Rate limited (problem details)",
    503: "Overloaded: nothing was done; retry after the Retry-After header's seconds "
         "(problem details, code overloaded)",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                               "schema": {"type": "integer", "minimum": 1}}}
UNSAFE = {"post", "put", "patch", "delete"}
METHODS = UNSAFE | {"get", "head", "options", "trace"}


BINARY = {"type": "string", "format": "binary"}


def downloads(*media_types: str, json: dict[str, Any] | None = None) -> dict[int | str, Any]:
    """``responses=`` for a route whose 200 is a file in one of ``media_types`` (or, for
    ``application/json``, the ``json`` schema): the document names each media type."""
    content = {m: {"schema": (json or {"type": "object"}) if m == "application/json"
                   else BINARY} for m in media_types}
    return {200: {"description": "The document, in the media type asked for",
                  "content": content}}


def problem_response(status: int) -> dict[str, Any]:
    response = {"description": DESCRIPTIONS[status],
                "content": {MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}}
    if status == 503:
        response["headers"] = RETRY_AFTER
    return response


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The problem statuses ``operation`` declares (see the module's docstring)."""
    statuses = [400, 422]
    if operation.get("security"):
        statuses += [401, 403]
    if "{" in path or method in UNSAFE:
        statuses.append(404)
    if method in UNSAFE:
        statuses += [409, 413, 429]
    if path not in PROBE_PATHS:
        statuses.append(503)
    return sorted(statuses)


def with_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an OpenAPI document FastAPI generated) with the problem answers."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status in error_statuses(path, method, operation):
                declared = responses.get(str(status))
                # FastAPI's own 422 (HTTPValidationError) is replaced: no service answers it.
                if declared is None or _is_fastapi_validation_error(declared):
                    responses[str(status)] = problem_response(status)
    if not _references(schema.get("paths", {}), "HTTPValidationError"):
        components.pop("HTTPValidationError", None)
        if not _references({k: v for k, v in components.items()}, "ValidationError"):
            components.pop("ValidationError", None)
    return schema


def _is_fastapi_validation_error(response: dict[str, Any]) -> bool:
    return _references(response, "HTTPValidationError")


def _references(node: Any, name: str) -> bool:
    target = f"#/components/schemas/{name}"
    if isinstance(node, dict):
        return node.get("$ref") == target or any(_references(v, name) for v in node.values())
    if isinstance(node, list):
        return any(_references(v, name) for v in node)
    return False


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so /openapi.json and /docs) declare the problem answers."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_problems(get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version,
                summary=app.summary, description=app.description, routes=app.routes,
                tags=app.openapi_tags, servers=app.servers))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
