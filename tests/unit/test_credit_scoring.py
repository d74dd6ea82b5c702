"""The scoring model (A13.1, A7.2), levels and grades, rumor strikes and their expiry
(A13.2), and the policies on other services' events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.events import Envelope
from libs.events.contracts.credit import CreditFactRecorded, CreditLevelChanged
from services.credit import rules
from services.credit.domain import Identity, Profile, after
from services.credit.policies import (
    Context,
    when_case_responded_overrule_if_upheld,
    when_measure_lifted_overrule_on_appeal,
    when_violation_confirmed_record,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)
M = rules.ScoringModel()


def fact(kind: str, eid: str, at: datetime = T0, **kw) -> CreditFactRecorded:
    return CreditFactRecorded(account_id="a1", kind=kind, source_event_id=eid, at=at,
                              legal_basis=["A13.1"], **kw)


def profile(*facts: CreditFactRecorded) -> Profile:
    return after(None, list(facts), T0)


def test_A13_1_a_new_account_starts_at_A_with_the_start_score():
    s = rules.score(profile(fact("registered", "e0", identity_blind="b")), T0, M)
    assert (s.score, s.level, s.grade) == (100, "A", "trusted")
    assert [c.kind for c in s.contributions] == ["start"]


@pytest.mark.parametrize(("score", "level"), [(100, "A"), (99, "B"), (80, "B"), (79, "C"),
                                              (60, "C"), (59, "D"), (40, "D"), (39, "E"),
                                              (0, "E")])
def test_A13_1_levels_follow_the_thresholds_with_the_60_low_credit_line(score, level):
    assert rules.level_of(score, M) == level


def test_A13_1_every_contribution_names_its_source_event():
    p = profile(fact("registered", "e0", identity_blind="b"),
                fact("verification", "e1", detail="four_factor"),
                fact("violation", "e2", category=9, ref="v1"),
                fact("measure", "e3", detail="suspend_updates", ref="m1", related="v1"))
    s = rules.score(p, T0, M)
    assert s.score == 100 + 10 - 30 - 5 and s.level == "C" and s.grade == "watch"
    assert {c.source_event_id for c in s.contributions if c.kind != "start"} == {"e1", "e2",
                                                                                 "e3"}


def test_A7_2_moderate_severe_rumor_and_commercial_violations_weigh_differently():
    assert rules.violation_points(9, M) == -30
    assert rules.violation_points(1, M) == -15
    assert rules.violation_points(6, M) == -20
    assert rules.violation_points("false_advertising", M) == -10


def test_A13_1_violations_age_and_clean_days_recover_with_a_cap():
    p = profile(fact("violation", "e2", category=9, ref="v1"))
    assert rules.score(p, T0, M).score == 70
    assert rules.score(p, T0 + timedelta(days=5), M).score == 75
    assert rules.score(p, T0 + timedelta(days=100), M).score == 90  # cap 20
    assert rules.score(p, T0 + timedelta(days=400), M).score == 100  # half weight + 20, capped
    assert rules.score(p, T0 + timedelta(days=800), M).score == 100  # aged out


def test_A20_2_an_upheld_appeal_overrules_the_measure_and_its_violation():
    p = profile(fact("violation", "e2", category=1, ref="v1"),
                fact("measure", "e3", detail="function_limit", ref="m1", related="v1"))
    e = Envelope.new(type="enforcement.MeasureLifted", source="/enforcement", subject="a1",
                     stream_id="x", data={}, time=T0)
    from libs.events.contracts.enforcement import CaseResponded, MeasureLifted

    lifted = MeasureLifted(account_id="a1", measure_id="m1", reason="appeal_upheld",
                           legal_basis=["A20.2"])
    decided = when_measure_lifted_overrule_on_appeal(p, lifted, e, Context(T0))
    assert decided[0].overrules == ["m1", "v1"]
    p2 = after(p, decided, T0)
    assert rules.score(p2, T0, M).score == 100
    # the case's response arrives too: nothing more to overrule
    resp = CaseResponded(account_id="a1", case_id="c", outcome="upheld", response="ok",
                         by="r", at=T0, measure_id="m1", legal_basis=["A20.2"])
    e2 = Envelope.new(type="enforcement.CaseResponded", source="/enforcement", subject="a1",
                      stream_id="y", data={}, time=T0)
    assert when_case_responded_overrule_if_upheld(p2, resp, e2, Context(T0)) == []
    lifted_expired = lifted.model_copy(update={"reason": "expired"})
    assert when_measure_lifted_overrule_on_appeal(p, lifted_expired, e, Context(T0)) == []


def test_A13_1_a_redelivered_event_records_nothing():
    from libs.events.contracts.enforcement import ViolationConfirmed

    e = Envelope.new(type="enforcement.ViolationConfirmed", source="/enforcement",
                     subject="a1", stream_id="v", data={}, time=T0)
    v = ViolationConfirmed(account_id="a1", violation_id="v1", category=3, decided_by="op",
                           reported_at=T0, decided_at=T0, intake_to_decision_seconds=1,
                           legal_basis=["A18"])
    first = when_violation_confirmed_record(None, v, e, Context(T0))
    assert len(first) == 1
    assert when_violation_confirmed_record(after(None, first, T0), v, e, Context(T0)) == []


def test_A13_1_level_changes_carry_the_contract_fields():
    p = profile(fact("violation", "e2", category=9, ref="v1"))
    [changed] = p.level_change(level="C", score=70, reasons=["x"], evidence=["e2"])
    assert isinstance(changed, CreditLevelChanged)
    assert (changed.previous_level, changed.level, changed.score) == ("A", "C", 70)
    assert "A13.1" in changed.legal_basis and changed.evidence_event_ids == ["e2"]
    assert p.level_change(level="A", score=100, reasons=[], evidence=[]) == []


def test_A12_2_forced_follows_cost_points_per_unit_with_a_cap():
    from libs.events.contracts.credit import ForcedFollowsCounted

    ff = ForcedFollowsCounted(account_id="a1", count_id="c", without_consent=35, total=40,
                              window_start=T0, window_end=T0, legal_basis=["A12.2"])
    p = after(None, [ff], T0)
    s = rules.score(p, T0, M)
    assert [c.points for c in s.contributions if c.kind == "forced_follows"] == [-3]
    big = ff.model_copy(update={"without_consent": 10_000})
    assert [c.points for c in rules.score(after(None, [big], T0), T0, M).contributions
            if c.kind == "forced_follows"] == [-20]


def test_A13_1_an_override_counts_until_it_expires():
    from libs.events.contracts.credit import CreditOverridden

    o = CreditOverridden(account_id="a1", override_id="o", points=-50, reason="fraud ring",
                         by="op", expires_at=T0 + timedelta(days=10), legal_basis=["A13.1"])
    p = after(None, [o], T0)
    assert rules.score(p, T0, M).level == "D"
    assert rules.score(p, T0 + timedelta(days=11), M).level == "A"


def test_A13_2_strikes_expire_and_only_the_window_counts():
    strikes = {"v1": T0, "v2": T0 + timedelta(days=100), "v3": T0 + timedelta(days=200)}
    now = T0 + timedelta(days=200)
    assert rules.strikes_in_window(strikes, now, M) == ["v2", "v3"]
    assert rules.live_strikes(strikes, now, M) == ["v1", "v2", "v3"]
    later = T0 + timedelta(days=400)
    assert rules.live_strikes(strikes, later, M) == ["v2", "v3"]


def test_A13_2_strikes_expire_by_the_sweeps_decision():
    ident = Identity(identity_blind="b", strikes={"v1": T0, "v2": T0 + timedelta(days=30)},
                     strike_events={"v1": "e1", "v2": "e2"}, overruled=frozenset({"v2"}))
    [expired] = ident.expire(account_id="a1", horizon=T0 + timedelta(days=40))
    assert (expired.strike_id, expired.evidence_event_ids) == ("v1", ["e1"])
    assert ident.expire(account_id="a1", horizon=T0 - timedelta(days=1)) == []


def test_A13_2_an_identity_blacklists_each_account_once_and_overrules_strikes():
    ident = Identity(identity_blind="b", strikes={"v1": T0}, strike_events={"v1": "e1"})
    out = ident.blacklist(blacklist_id="bl", strikes=["v1"], accounts=["a1", "a2"],
                          window_days=180, at=T0)
    assert [e.account_id for e in out] == ["a1", "a2"]
    assert all(e.account_ids == ["a1", "a2"] and e.legal_basis == ["A13.2"] for e in out)
    assert out[0].evidence_event_ids == ["e1"]
    assert ident.strike(account_id="a1", strike_id="v1", at=T0, evidence=[]) == []
    [over] = ident.overrule(account_id="a1", strike_id="v1", evidence=["x"])
    assert over.strike_id == "v1"
