"""Schemathesis against every service's OpenAPI: each operation of each service, generated
requests (valid and invalid), sent over HTTP to the five services running on PostgreSQL and
Kafka (conftest.py), every answer held to the document.

The schemas are the apps' own ``app.openapi()`` (no server needed to collect the tests), so
a route is fuzzed the day it is written. Checks on every answer:

* no 5xx (``not_a_server_error``);
* the status is one the operation declares (``status_code_conformance``), with the declared
  media type (``content_type_conformance``) and a body that matches the declared schema
  (``response_schema_conformance``);
* every 4xx is ``application/problem+json`` with the problem's members (``problem_details``
  here, RFC 9457, libs.runtime.problems);
* a secured operation sent without its token is refused (``ignored_auth``).

Bounded for ``make test`` (``FUZZ_EXAMPLES`` per operation, 25 by default, a fixed seed,
derandomized: the same requests on every run); ``make fuzz`` runs many more. See
docs/decisions/0034-schemathesis-and-offline-docs.md.
"""

from __future__ import annotations

import importlib
import os

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from libs.events.topics import SERVICES
from libs.runtime.auth import ROLES, issue_token
from libs.runtime.problems import MEDIA_TYPE
from libs.runtime.settings import DEV_AUTH_SECRET
from tests.fuzz import tally

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("FUZZ_SEED", "20201"))
PROBLEM_MEMBERS = ("type", "title", "status", "detail", "instance", "code")

# A token with every role (a regulator's province too): the fuzzer reaches every operation's
# handler; the role matrix itself is tested by the scope tests.
TOKEN = issue_token(DEV_AUTH_SECRET, subject="fuzz", roles=sorted(ROLES), province="440000")


def problem_details(ctx, response, case) -> bool | None:
    """Every error answer is RFC 9457 problem details: the media type, the members, and the
    status in the body the same as the answer's."""
    if response.status_code < 400:
        return None
    media = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    assert media == MEDIA_TYPE, (
        f"{response.status_code} answered as {media!r}, not {MEDIA_TYPE}: {response.text[:300]}")
    body = response.json()
    missing = [m for m in PROBLEM_MEMBERS if m not in body]
    assert not missing, f"the problem document lacks {missing}: {body}"
    assert body["status"] == response.status_code, (
        f"the problem's status {body['status']} is not the answer's {response.status_code}")
    return True


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, ignored_auth, problem_details]


def config() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        # The token is sent by the test (explicit), not generated: ignored_auth then probes
        # each secured operation without it and with a wrong one.
        # NUL characters are generated too: one reaching PostgreSQL was a 500 (found here on
        # GET /v1/violations?cursor=, enforcement); libs.runtime.limits now refuses them at
        # the edge (422 nul-character, ADR 0030).
        "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True,
                       "database": "none", "with-security-parameters": False,
                       "allow-x00": True},
        "phases": {"stateful": {"enabled": False}},
    })


def fuzz_test(service: str):
    app = importlib.import_module(f"services.{service}.main").app
    schema = schemathesis.openapi.from_dict(app.openapi(), config=config())

    @schema.parametrize()
    @settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
              database=None)
    def test(case, fuzz_system):
        tally.count(service, case.operation.label)
        case.call_and_validate(base_url=fuzz_system.urls[service], checks=CHECKS, timeout=30,
                               headers={"Authorization": f"Bearer {TOKEN}"})

    test.__name__ = f"test_fuzz_{service}"
    return test


for _service in SERVICES:
    globals()[f"test_fuzz_{_service}"] = fuzz_test(_service)
