"""Every JSON answer of every service declares its shape (issue 10): Swagger UI shows it,
and Schemathesis (tests/fuzz, ``response_schema_conformance``) holds each answer to it.

A 2xx JSON response whose schema is empty (a route that returns a ``JSONResponse`` with no
``response_model``), or an object that names no member (a route annotated ``-> dict``),
declares nothing a client or the fuzzer can check: it fails here, named by service, method
and path. A 201 or 202 that sets ``Location`` declares that header too.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from libs.events import Envelope, EventPayload
from libs.events.topics import SERVICES
from libs.runtime.app import create_app
from libs.runtime.responses import Page, location

METHODS = {"get", "post", "put", "patch", "delete"}

# Routes allowed to answer untyped JSON: none (every JSON answer of every service declares
# its model; a route added without one fails here).
KNOWN_GAPS: frozenset[tuple[str, str, str]] = frozenset()

# The routes that answer with a ``Location`` header (the thing they created or accepted).
LOCATIONS = {
    ("registration", "POST", "/v1/accounts", "202"),
    ("verification", "POST", "/v1/accounts/{account_id}/qualifications", "202"),
    ("enforcement", "POST", "/v1/violations", "201"),
    ("enforcement", "POST", "/v1/appeals", "201"),
    ("enforcement", "POST", "/v1/complaints", "201"),
}


@cache
def _doc(service: str) -> dict[str, Any]:
    return importlib.import_module(f"services.{service}.main").app.openapi()


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        *_, name = schema["$ref"].split("/")
        schema = doc["components"]["schemas"][name]
    return schema


def untyped(doc: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """Why ``schema`` says nothing of an answer's shape; None when it is typed."""
    schema = _resolve(doc, schema)
    if not schema:
        return "an empty schema ({})"
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            reasons = [untyped(doc, branch) for branch in schema[combined]]
            return next((r for r in reasons if r), None)
    kind = schema.get("type")
    if kind == "array":
        return untyped(doc, schema.get("items", {}))
    if kind == "object" or "properties" in schema or "additionalProperties" in schema:
        if schema.get("properties"):
            return None
        values = schema.get("additionalProperties", True)
        if isinstance(values, dict) and values:  # a map: its values must be typed
            return untyped(doc, values)
        return "an object that names no member"
    if kind or "enum" in schema or "const" in schema:
        return None
    return f"a schema with no type: {schema}"


def json_answers(doc: dict[str, Any]):
    """(method, path, status, schema) of every 2xx JSON answer the document declares."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            for status, answer in op["responses"].items():
                if not status.startswith("2"):
                    continue
                for media, content in answer.get("content", {}).items():
                    if media == "application/json" or media.endswith("+json"):
                        yield method.upper(), path, status, content.get("schema", {})


def _gaps(service: str) -> dict[tuple[str, str], str]:
    doc = _doc(service)
    gaps = {}
    for method, path, status, schema in json_answers(doc):
        reason = untyped(doc, schema)
        if reason:
            gaps[(method, path)] = f"{method} {path} {status}: {reason}"
    return gaps


@pytest.mark.parametrize("service", SERVICES)
def test_every_json_answer_declares_its_schema(service):
    assert any(json_answers(_doc(service))), f"{service} declares no JSON answer?"
    missing = [reason for (method, path), reason in sorted(_gaps(service).items())
               if (service, method, path) not in KNOWN_GAPS]
    assert not missing, (f"{service}: declare a response model (a return annotation, or "
                         "response_model= for a route that answers a JSONResponse):\n"
                         + "\n".join(missing))


def _missing_locations() -> set[tuple[str, str, str]]:
    """The LOCATIONS routes whose answer does not declare the header."""
    missing = set()
    for service, method, path, status in LOCATIONS:
        answer = _doc(service)["paths"][path][method.lower()]["responses"][status]
        if "Location" not in answer.get("headers", {}):
            missing.add((service, method, path))
    return missing


def test_the_answers_that_set_location_declare_it():
    missing = sorted(_missing_locations() - KNOWN_GAPS)
    assert not missing, f"declare Location (libs.runtime.responses.location): {missing}"


def test_the_known_gaps_are_still_gaps():
    """An entry typed since (or gone) comes out of KNOWN_GAPS, so that the list stays true."""
    located = _missing_locations()
    stale = sorted(g for g in KNOWN_GAPS if g[1:] not in _gaps(g[0]) and g not in located)
    assert not stale, f"typed now: remove from KNOWN_GAPS {stale}"


# -- the check itself, on a route of each kind ---------------------------------------------
class Thing(BaseModel):
    thing_id: str
    tags: dict[str, list[str]]


class ThingPage(Page[Thing]):
    pass


def _checked(router: APIRouter) -> dict[tuple[str, str], str]:
    doc = create_app(lambda: None, title="t", description="", routers=[router]).openapi()
    return {(m, p): untyped(doc, s) for m, p, _, s in json_answers(doc)
            if p.startswith("/things")}


def test_an_open_dict_or_a_bare_json_response_is_untyped_a_model_is_typed():
    router = APIRouter()

    @router.get("/things/open")
    async def open_dict() -> dict:
        return {}

    @router.get("/things/map")
    async def untyped_map() -> dict[str, Any]:
        return {}

    @router.post("/things/bare", status_code=202)
    async def bare() -> JSONResponse:
        return JSONResponse({}, status_code=202)

    @router.get("/things/list")
    async def untyped_list() -> list[dict]:
        return []

    @router.post("/things/declared", status_code=202, response_model=Thing,
                 responses={202: location("the thing")})
    async def declared() -> JSONResponse:
        return JSONResponse({}, status_code=202)

    @router.get("/things/page")
    async def page() -> ThingPage:
        return ThingPage(items=[], next_cursor=None)

    @router.get("/things/typed-map")
    async def typed_map() -> dict[str, Thing]:
        return {}

    assert _checked(router) == {
        ("GET", "/things/open"): "an object that names no member",
        ("GET", "/things/map"): "an object that names no member",
        ("POST", "/things/bare"): "an empty schema ({})",
        ("GET", "/things/list"): "an object that names no member",
        ("POST", "/things/declared"): None,
        ("GET", "/things/page"): None,
        ("GET", "/things/typed-map"): None,
    }


# -- the documents the reads answer fit their models, nothing dropped or changed -------------
NOW = datetime(2027, 1, 4, tzinfo=UTC)


def _answered_as_is(model: type[BaseModel], doc: dict[str, Any]) -> None:
    """What the route answers (validated, then dumped as FastAPI does) is the document."""
    assert model.model_validate(doc).model_dump(mode="json", exclude_unset=True) == doc


def _event(payload: EventPayload, subject: str) -> Envelope:
    return Envelope.new(type=payload.event_type, data=payload.to_data(), stream_id=subject,
                        source="/verification", subject=subject, time=NOW)


def test_an_account_refused_before_it_opened_is_answered_as_it_is():
    from services.registration.domain import Account
    from services.registration.projections import to_doc
    from services.registration.views import AccountView, present

    refused = Account(account_id="a-1", phase="refused", registered_at=NOW,
                      last_active_at=NOW, entity_type="natural_person")  # no profile, owner
    _answered_as_is(AccountView, present(to_doc(refused), current_agreement="2025-01"))


def test_the_verification_read_models_are_answered_as_they_are():
    from libs.events.contracts import verification as ev
    from services.verification import views
    from services.verification.projections import (
        evolve_case,
        evolve_identity_review,
        evolve_protected,
    )

    submitted = _event(ev.QualificationSubmitted(
        account_id="a-1", legal_basis=["A9.1"], case_id="c-1", kind="professional",
        qualification_type="执业医师资格证", number="N-1", issuer="卫健委", valid_from=NOW,
        valid_until=NOW, document_sha256="ab" * 32, document_content_type="application/pdf",
        document_bytes=1234, submitted_by="platform"), "a-1")
    pending = evolve_case(None, submitted)
    approved = evolve_case(pending, _event(ev.QualificationApproved(
        account_id="a-1", legal_basis=["A9.1"], case_id="c-1", kind="professional",
        label="医生", number="N-1", valid_until=NOW, reviewer="r-1"), "a-1"))
    for case in (pending, approved):
        _answered_as_is(views.ReviewCase, case)
    _answered_as_is(views.IdentityReview, evolve_identity_review(None, _event(
        ev.IdentityReviewRequired(account_id="a-1", legal_basis=["A8.1"], case_id="i-1",
                                  reasons=["provider-unavailable"], attempts=3), "a-1")))
    for logo in (None, ev.ProtectedLogo(sha256="ab" * 32, phash="f" * 16)):
        _answered_as_is(views.ProtectedNameView, evolve_protected(None, _event(
            ev.ProtectedNameAdded(protected_id="p-1", name="人民日报", kind="media",
                                  logo=logo, added_by="op", legal_basis=["A8.2"]), "p-1")))
