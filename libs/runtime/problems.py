"""RFC 9457 problem details: every error answer has a stable ``type`` and ``code``.

Domain refusals (:class:`libs.domain.DomainError`, raised by domains and handlers) become
problem documents here, at the API edge, their ``kind`` choosing the status. Routes raise
:class:`ProblemError` for what only HTTP knows (a malformed upload, a scope). Kernel errors
(:class:`libs.events.ConcurrencyError`, ...) and request validation failures are mapped
here too, so no service answers an error in any other shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.domain import CHARACTER_ERRORS, DomainError
from libs.events.errors import ConcurrencyError, EventKernelError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An error answer (RFC 9457): what every 4xx and 5xx of every service carries, declared
    once in the OpenAPI (libs.runtime.openapi) under ``application/problem+json``."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="a relative URI naming the problem: /problems/<code>")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str = Field(description="the request's path")
    code: str = Field(description="the stable machine-readable code (docs/problems.md)")
    legal_basis: list[str] | None = Field(None, description="articles behind a refusal")
    errors: list[dict[str, Any]] | None = Field(
        None, description="for validation-error: each field's location, message and type")


# What each kind of domain refusal answers (libs.domain.errors): the one place where a
# domain error becomes an HTTP status.
STATUS_OF_KIND = {"invalid": 422, "conflict": 409, "not_found": 404, "forbidden": 403,
                  "rate_limited": 429}


def status_of(kind: str) -> int:
    return STATUS_OF_KIND.get(kind, 422)


def title_of(code: str) -> str:
    return code.replace("-", " ").capitalize()


def problem_type(code: str) -> str:
    """The problem's ``type`` URI: a relative reference documented in docs/problems.md."""
    return f"/problems/{code}"


class ProblemError(Exception):
    """An error answered as problem details with ``status`` and a stable ``code``."""

    status = 400
    code = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, status: int | None = None, code: str | None = None,
                 title: str | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status or self.status
        self.code = code or self.code
        self.title = title or self.title
        self.extensions = extensions


def problem_response(status: int, code: str, title: str, detail: str, instance: str,
                     **extensions: Any) -> JSONResponse:
    body = {"type": problem_type(code), "title": title, "status": status, "detail": detail,
            "instance": instance, "code": code, **extensions}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError):
        return problem_response(exc.status, exc.code, exc.title, exc.detail,
                                request.url.path, **exc.extensions)

    @app.exception_handler(DomainError)
    async def _refused(request: Request, exc: DomainError):
        extensions = dict(exc.extra)
        if exc.legal_basis:
            extensions["legal_basis"] = exc.legal_basis
        return problem_response(status_of(exc.kind), exc.code,
                                exc.title or title_of(exc.code), exc.detail,
                                request.url.path, **extensions)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [
            {"location": list(e.get("loc", ())), "message": e.get("msg", ""),
             "type": e.get("type", "")}
            for e in exc.errors()
        ]
        # a refused character is its own code (ADR 0030), the rest "validation-error"
        code = ("invalid-characters" if errors and all(
            e["type"] in CHARACTER_ERRORS for e in errors) else "validation-error")
        return problem_response(422, code, "Request is not valid",
                                f"{len(errors)} field(s) failed validation",
                                request.url.path, errors=errors)

    @app.exception_handler(ConcurrencyError)
    async def _conflict(request: Request, exc: ConcurrencyError):
        return problem_response(409, exc.code, "Concurrent change", str(exc), request.url.path)

    @app.exception_handler(EventKernelError)
    async def _kernel(request: Request, exc: EventKernelError):
        return problem_response(422, exc.code, "Event rejected", str(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        # an HTTPException of ours (libs.runtime.limits) names its own code and title
        code = getattr(exc, "code", None) or {404: "not-found", 405: "method-not-allowed",
                                              413: "body-too-large"}.get(exc.status_code,
                                                                         "http-error")
        return problem_response(exc.status_code, code, getattr(exc, "title", None)
                                or str(exc.detail), str(exc.detail), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal-error", "Internal error",
                                "the service failed to handle the request; it was logged",
                                request.url.path)
