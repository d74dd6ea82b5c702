"""Enforcement's pure rules: the measure policy and its ladder (A19.2, A7.3), working-day
deadlines (A20.2), signed manifests (A19.2, A21.2), the decision contracts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from libs.events import Envelope
from libs.events.contracts import all_contracts
from libs.events.contracts.enforcement import (
    AppealFiled,
    Evidence,
    MeasureApplied,
    MeasureDecided,
    ViolationConfirmed,
    ViolationReported,
)
from services.enforcement import domain, rules
from services.enforcement.settings import DEV_SIGNING_KEY, POLICY_FILE, Settings

POLICY = rules.load_policy(Path(POLICY_FILE).read_bytes())
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def doc() -> dict:
    return json.loads(Path(POLICY_FILE).read_text())


# -- the policy document -----------------------------------------------------------------
def test_A7_3_the_policy_in_the_repository_is_valid_versioned_and_covers_every_category():
    assert (POLICY.policy_id, POLICY.version) == ("measure-policy", "1")
    for category in rules.ALL_CATEGORIES:
        assert POLICY.rule_for(category).ladder
    assert len(POLICY.sha256) == 64


@pytest.mark.parametrize("change, message", [
    (lambda d: d["rules"][0]["categories"].append(3), "is in rules"),
    (lambda d: d["rules"].pop(), "no rule for categories"),
    (lambda d: d["rules"][0]["ladder"].append({"measure": "function_limit",
                                               "reversible": True}), "names the capabilities"),
    (lambda d: d["rules"][0]["ladder"].append({"measure": "closure", "reversible": False}),
     "needs a ban_severity"),
    (lambda d: d["rules"][0]["ladder"].append({"measure": "warning", "reversible": True,
                                               "ban_severity": "minor"}), "imposes no ban"),
    (lambda d: d["rules"][0]["ladder"].append({"measure": "function_limit", "reversible": True,
                                               "capabilities": ["fly"]}), "capabilities"),
    (lambda d: d["rules"][0]["categories"].append(11), "unknown category"),
    (lambda d: d.update(surprise=1), "surprise"),
])
def test_A7_3_an_invalid_policy_is_refused_with_the_reason(change, message):
    d = doc()
    change(d)
    with pytest.raises(ValidationError) as exc:
        rules.MeasurePolicy.model_validate(d)
    assert message in str(exc.value)


# -- the ladder ------------------------------------------------------------------------------
def test_A19_2_escalation_along_the_ladder():
    history: list[rules.Prior] = []
    seen = []
    for i in range(6):
        d = rules.decide(POLICY, 6, history, None, NOW + timedelta(days=i))
        seen.append((d.measure, d.step, d.prior))
        history.append(rules.Prior(6, NOW + timedelta(days=i)))
    assert seen == [("warning", 0, 0), ("function_limit", 1, 1), ("function_limit", 2, 2),
                    ("suspend_updates", 3, 3), ("closure", 4, 4), ("closure", 4, 5)]
    top = rules.decide(POLICY, 6, history, None, NOW + timedelta(days=9))
    assert top.step_spec.ban_severity == "serious" and not top.step_spec.reversible
    assert top.legal_basis == ["A18", "A19.2"]


def test_A19_2_history_counts_the_same_rule_within_the_lookback_only():
    old = [rules.Prior(6, NOW - timedelta(days=400))]
    other_rule = [rules.Prior("copyright", NOW - timedelta(days=1))]
    assert rules.decide(POLICY, 6, old + other_rule, None, NOW).step == 0
    same_rule = [rules.Prior(4, NOW - timedelta(days=1))]  # 4, 5, 6 share a ladder
    assert rules.decide(POLICY, 6, same_rule, None, NOW).step == 1


def test_A19_2_a_poor_credit_level_escalates():
    assert rules.decide(POLICY, 6, [], "A", NOW).measure == "warning"
    assert rules.decide(POLICY, 6, [], "D", NOW).step == 1
    assert rules.decide(POLICY, 6, [], "E", NOW).step == 2


def test_A14_commercial_categories_stop_ads():
    history = [rules.Prior("false_advertising", NOW - timedelta(days=3))]
    d = rules.decide(POLICY, "commercial_fraud", history, None, NOW)
    assert d.measure == "stop_ads" and d.ends_at(NOW) == NOW + timedelta(days=30)
    assert "A14" in d.legal_basis


def test_A7_3_simulation_counts_and_shows_what_would_differ():
    decided = [rules.Replayed(violation_id=f"v{i}", account_id="a", category=6,
                              decided_at=NOW + timedelta(days=i), measure=m, rule="r", step=i,
                              capabilities=c, duration_days=dd)
               for i, (m, c, dd) in enumerate([
                   ("warning", [], None),
                   ("function_limit", ["comment", "message", "follow_recommendation"], 7)])]
    same = rules.simulate(POLICY, decided)
    assert (same.same, same.different) == (2, 0)
    d = doc()
    d["rules"][2]["ladder"][1]["duration_days"] = 14
    stricter = rules.simulate(rules.MeasurePolicy.model_validate(d), decided)
    assert (stricter.different, stricter.changes) == (1, {"function_limit -> function_limit": 1})
    assert stricter.examples[0]["would_be"]["duration_days"] == 14


# -- working days (A20.2) ---------------------------------------------------------------------
def test_A20_2_complaint_deadline_skips_the_national_day_holiday():
    # received Monday 28 Sep 2026 (Beijing); 1-7 Oct are holidays, 10 Oct a working Saturday
    received = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)
    deadline = rules.working_days_after(received, 10)
    local = deadline.astimezone(rules.CHINA)
    assert not rules.is_workday(date(2026, 10, 1))
    workdays = [received.date() + timedelta(days=i) for i in range(1, 30)]
    expected = [d for d in workdays if rules.is_workday(d)][9]
    assert local.date() == expected and local.date() > date(2026, 10, 10)
    plain = rules.working_days_after(datetime(2026, 3, 2, 2, tzinfo=UTC), 10)
    assert plain.astimezone(rules.CHINA).date() == date(2026, 3, 16)


def test_A20_2_the_calendar_covers_the_current_year():
    assert rules.calendar_last_year() >= datetime.now(UTC).year


# -- manifests -----------------------------------------------------------------------------
def test_A21_2_manifest_signature_fails_after_one_byte_changes():
    key = rules.private_key(DEV_SIGNING_KEY)
    files = {"report.xlsx": b"PK\x03\x04 some workbook bytes"}
    signed = rules.sign_manifest(rules.manifest(files, {"measures": 3}, position="7:42",
                                                generated_at=NOW, query={"province": "44"}),
                                 key)
    rules.verify_manifest(signed, files)
    rules.verify_manifest(signed, files, public_key=rules.public_key_hex(key))
    tampered = {"report.xlsx": b"PK\x03\x04 some workbook bytez"}
    with pytest.raises(rules.ManifestError, match="differs"):
        rules.verify_manifest(signed, tampered)
    with pytest.raises(rules.ManifestError, match="signature"):
        rules.verify_manifest({**signed, "event_position": "7:43"}, files)
    other = rules.private_key("11" * 32)
    with pytest.raises(rules.ManifestError, match="another key"):
        rules.verify_manifest(signed, files, public_key=rules.public_key_hex(other))


def test_A21_2_the_development_signing_key_is_refused_outside_development():
    with pytest.raises(ValidationError, match="REPORT_SIGNING_KEY"):
        Settings(environment="production", auth_secret="x" * 40, pii_key="y" * 40,
                 database_url="postgresql+asyncpg://h/db")
    Settings(environment="production", auth_secret="x" * 40, pii_key="y" * 40,
             database_url="postgresql+asyncpg://h/db", report_signing_key="22" * 32)


# -- contracts ---------------------------------------------------------------------------------
def test_A19_2_measure_decision_contracts_round_trip():
    registry = all_contracts()
    decided = MeasureDecided(
        account_id="a", measure_id="m", violation_id="v", category="copyright",
        province="440000", policy_id="measure-policy", policy_version="1", rule="copyright",
        step=1, prior_violations=1, measure="function_limit", capabilities=["publish"],
        duration_days=15, reversible=True, ban_severity=None, legal_basis=["A14", "A19.2"],
        evidence_event_ids=["e1", "e2"])
    payloads = domain.apply_measure(decided, starts_at=NOW, ends_at=NOW + timedelta(days=15),
                                    evidence=["e1", "e2"])
    applied = payloads[1]
    assert isinstance(applied, MeasureApplied)
    data = applied.to_data()
    assert data["ban_severity"] is None and "ban_severity" in data
    assert data["category"] is None  # an Art. 14 category has no Art. 18 number
    for p in [*payloads, ViolationReported(
            account_id="a", violation_id="v", category=6, evidence=Evidence(urls=["u"]),
            source="complaint", province="11", reported_by="op", reported_at=NOW,
            legal_basis=["A18"]),
            ViolationConfirmed(account_id="a", violation_id="v", category=6, decided_by="op",
                               reported_at=NOW, decided_at=NOW,
                               intake_to_decision_seconds=0.0, legal_basis=["A18", "A19.1"]),
            AppealFiled(account_id="a", case_id="appeal-m", reason="r", received_at=NOW,
                        deadline=NOW, working_days=7, measure_id="m", filed_by="p",
                        legal_basis=["A20.2"])]:
        env = Envelope.new(type=p.event_type, data=p.to_data(), stream_id="s", source="/t",
                           subject="a", time=NOW)
        back = registry.payload(registry.validate(env))
        assert back == type(p).model_validate(p.to_data())


def test_A21_2_verify_manifest_command(tmp_path, capsys):
    from services.enforcement import cli

    key = rules.private_key(DEV_SIGNING_KEY)
    report = tmp_path / "report.xlsx"
    report.write_bytes(b"workbook")
    signed = rules.sign_manifest(rules.manifest({"report.xlsx": b"workbook"}, {}, position="1:1",
                                                generated_at=NOW, query={}), key)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(signed))
    assert cli.verify(str(manifest), [str(report)], rules.public_key_hex(key)) == 0
    header = tmp_path / "header.txt"  # the Enforcement-Manifest header, saved as is
    import base64

    header.write_bytes(base64.b64encode(rules.canonical(signed)))
    assert cli.verify(str(header), [str(report)], None) == 0
    report.write_bytes(b"workbooK")
    assert cli.verify(str(manifest), [str(report)], None) == 1
    assert "INVALID" in capsys.readouterr().out
