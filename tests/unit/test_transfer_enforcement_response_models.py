"""Transfer's and enforcement's answers are typed in their OpenAPI (issue 10): every JSON
answer names a response model, a 201 with a ``Location`` declares the header, files keep
their media types; and the models hold exactly what the routes answered before (the read
models' documents, the report, the filing, the policy versions round-trip unchanged)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from libs.events import Envelope
from libs.events.contracts import credit as cc
from libs.events.contracts import enforcement as ec
from services.enforcement import adapters, handlers, projections, rules, views
from services.enforcement.domain import evolve_policy_versions

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
METHODS = {"get", "post", "put", "patch", "delete"}
JSON = "application/json"
POLICY_FILE = Path(rules.__file__).parent / "measure-policies" / "measure-policy-v1.json"


def _operations(service: str):
    doc = importlib.import_module(f"services.{service}.main").app.openapi()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS and path.startswith("/v1/"):
                yield path, method, op


@pytest.mark.parametrize("service", ["transfer", "enforcement"])
def test_every_answer_names_its_model_or_its_media_type(service):
    operations = list(_operations(service))
    assert operations
    for path, method, op in operations:
        ok = {s: r for s, r in op["responses"].items() if s.startswith("2")}
        assert len(ok) == 1, f"{method} {path}: {list(ok)}"
        [(status, answer)] = ok.items()
        content = answer["content"]
        assert set(content[JSON]["schema"]) == {"$ref"}, f"{method} {path}: an open object"
        for media, body in content.items():
            if media != JSON:
                assert body["schema"]["type"] == "string", f"{method} {path} {media}"


def test_enforcement_201s_declare_location_and_files_their_manifest_header():
    ops = {(m, p): op for p, m, op in _operations("enforcement")}
    for path in ("/v1/violations", "/v1/appeals", "/v1/complaints"):
        assert "Location" in ops["post", path]["responses"]["201"]["headers"], path
    report = ops["get", "/v1/reports/enforcement"]["responses"]["200"]
    filing = ops["get", "/v1/filings"]["responses"]["200"]
    assert set(report["content"]) == {JSON, "application/zip", _xlsx()}
    assert set(filing["content"]) == {JSON, "text/csv", _xlsx()}
    for answer in (report, filing):
        assert "Enforcement-Manifest" in answer["headers"]


def _xlsx() -> str:
    return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# -- the read models' documents, folded from real events ---------------------------------------
def _env(payload, stream: str, at: datetime) -> Envelope:
    return Envelope.new(type=payload.event_type, data=payload.to_data(), stream_id=stream,
                        source="/test", time=at)


def _fold(evolve, events: list[Envelope]) -> list[dict]:
    """Every state the document goes through."""
    doc, states = None, []
    for e in events:
        doc = evolve(doc, e)
        states.append(doc)
    return states


def _same(model, doc: dict) -> None:
    """The model holds the document and answers it unchanged (what the route answered),
    and declares every key of it (none passes as an undeclared extra)."""
    value = model.model_validate(doc)
    assert value.model_dump(mode="json", by_alias=True, exclude_unset=True) == doc
    assert not list(_extras(value)), f"{model.__name__}: undeclared {list(_extras(value))}"


def _extras(value):
    if isinstance(value, BaseModel):
        yield from (value.model_extra or {})
        for name in type(value).model_fields:
            yield from _extras(getattr(value, name))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _extras(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _extras(v)


def _violation_events(kind=ec.ViolationConfirmed, category=6) -> list[Envelope]:
    reported = ec.ViolationReported(
        account_id="a1", legal_basis=["A18"], violation_id="v1", category=category,
        evidence=ec.Evidence(urls=["https://x/1"], reporter="王小明"), source="moderation",
        province="440000", reported_by="op", reported_at=T0)
    decided = kind(account_id="a1", legal_basis=["A18"], violation_id="v1", category=category,
                   decided_by="op", note="seen", reported_at=T0,
                   decided_at=T0 + timedelta(seconds=90), intake_to_decision_seconds=90.0)
    return [_env(reported, "violation-v1", T0), _env(decided, "violation-v1", T0)]


def _measure_events() -> list[Envelope]:
    decided = ec.MeasureDecided(
        account_id="a1", legal_basis=["A18", "A19.2"], measure_id="m1", violation_id="v1",
        category=6, province="440000", policy_id="p", policy_version="1", rule="r", step=1,
        prior_violations=0, measure="function_limit", capabilities=["publish"],
        duration_days=7, reversible=True)
    applied = ec.MeasureApplied(
        account_id="a1", legal_basis=["A19.2"], measure_id="m1", measure="function_limit",
        capabilities=["publish"], starts_at=T0, ends_at=T0 + timedelta(days=7),
        violation_id="v1", category=6, policy_version="1")
    lifted = ec.MeasureLifted(account_id="a1", legal_basis=["A20.2"], measure_id="m1",
                              reason="appeal_upheld")
    return [_env(e, "enforcement-account-a1", T0) for e in (decided, applied, lifted)]


def _case_events(complaint: bool = False) -> list[Envelope]:
    common = {"account_id": "a1", "legal_basis": ["A20.2"], "case_id": "c1",
              "reason": "why", "received_at": T0, "deadline": T0 + timedelta(days=9),
              "working_days": 7}
    opened = (ec.ComplaintFiled(**common, category=6,
                                urls=["https://x/2"], contact_masked="1*********9")
              if complaint else ec.AppealFiled(**common, province="440000", measure_id="m1",
                                               filed_by="acct"))
    steps = [ec.CaseStepTaken(account_id="a1", legal_basis=["A20.2"], case_id="c1", step=s,
                              by="rev", assignee="rev" if s == "accepted" else None,
                              note="n", at=T0 + timedelta(hours=i + 1))
             for i, s in enumerate(("accepted", "screened", "handled"))]
    responded = ec.CaseResponded(account_id="a1", legal_basis=["A20.2"], case_id="c1",
                                 outcome="upheld", response="ok", by="rev",
                                 at=T0 + timedelta(days=1), measure_id="m1")
    return [_env(e, "case-c1", T0) for e in (opened, *steps, responded)]


def _blacklist_events() -> list[Envelope]:
    listed = cc.IdentityBlacklisted(
        account_id="a1", legal_basis=["A13.2"], identity_blind="ib", blacklist_id="b1",
        account_ids=["a1", "a2"], strike_ids=["v1", "v2", "v3"], window_days=365, at=T0)
    lifted = cc.IdentityBlacklistLifted(
        account_id="a1", legal_basis=["A20.2"], identity_blind="ib", blacklist_id="b1",
        account_ids=["a1", "a2"], overruled_strike_id="v1", remaining_strike_ids=["v2"])
    return [_env(e, "credit-ib", T0) for e in (listed, lifted)]


def test_read_model_documents_round_trip_through_their_models():
    for kind in (ec.ViolationConfirmed, ec.ViolationDismissed):
        for doc in _fold(projections.evolve_violation, _violation_events(kind)):
            _same(views.ViolationDoc, doc)
    measure = _fold(projections.evolve_measure, _measure_events())
    for doc in measure:
        _same(views.MeasureDoc, doc)
    for complaint in (False, True):
        for doc in _fold(projections.evolve_case, _case_events(complaint)):
            _same(views.CaseDoc, doc)
    for doc in _fold(projections.evolve_blacklist, _blacklist_events()):
        _same(views.BlacklistDoc, {**doc, "province": "440000"})  # as listed
    # keys written later are absent before, and stay absent in the answer
    reported = _fold(projections.evolve_violation, _violation_events())[0]
    assert "note" not in views.ViolationDoc.model_validate(reported).model_dump(
        exclude_unset=True)
    page = {"items": [reported], "next_cursor": None}
    _same(views.ViolationPage, page)


def test_the_json_report_and_filing_match_their_models():
    vs = _fold(projections.evolve_violation, _violation_events())[-1:]
    ms = _fold(projections.evolve_measure, _measure_events())[1:2]  # applied, active
    cs = [_fold(projections.evolve_case, _case_events())[-1],
          _fold(projections.evolve_case, _case_events(complaint=True))[0]]
    report = views.enforcement_report(vs, ms, cs, province=None, start=T0,
                                      end=T0 + timedelta(days=30),
                                      generated_at=T0 + timedelta(days=20),
                                      event_position="0:42")
    files = {"report.json": rules.canonical(report)}
    doc = rules.manifest(files, views.row_counts(report), position="0:42",
                         generated_at=T0, query={"province": None, "from": T0.isoformat(),
                                                 "to": None, "format": "json"})
    body = {**report, "manifest": rules.sign_manifest(doc, Ed25519PrivateKey.generate())}
    _same(views.EnforcementReportOut, body)
    assert set(views.FiledAccount.model_fields) == set(adapters.FILING_FIELDS)
    filed = dict(zip(adapters.FILING_FIELDS, ("a1", "440000", "news", "enterprise", "某公司",
                                              "广州", None, "verified", T0.isoformat()),
                     strict=True))
    _same(views.FilingsOut, {"province": "440000", "accounts": [filed]})


def test_policy_versions_and_the_policy_in_force_match_their_models():
    policy = rules.load_policy(POLICY_FILE.read_bytes())
    _same(handlers.CurrentPolicyOut, {"policy": policy.model_dump(mode="json"),
                                     "sha256": policy.sha256})
    activated = ec.MeasurePolicyActivated(
        policy_id=policy.policy_id, version="2", sha256="ab", document={}, activated_by="op",
        replayed_violations=3, would_differ=1)
    state = evolve_policy_versions(None, _env(activated, "policy", T0))
    initial = {"policy_id": policy.policy_id, "version": policy.version,
               "sha256": policy.sha256, "activated_by": "the service's policy file",
               "activated_at": None}
    _same(handlers.PolicyVersionsOut, {"versions": [initial, *state.versions]})


def test_a_simulation_answers_its_examples_typed_and_unchanged():
    policy = rules.load_policy(POLICY_FILE.read_bytes())
    decided = [rules.Replayed(violation_id="v1", account_id="a", category=6, decided_at=T0,
                              measure="closure", rule="r", step=3, capabilities=[],
                              duration_days=None)]
    simulation = rules.simulate(policy, decided)
    assert simulation.different == 1
    _same(handlers.SimulationOut, simulation.model_dump(mode="json"))
