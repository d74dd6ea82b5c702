"""Transfer's application state machine and no-trading rules (A11.1, A11.2, A17.3), pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from libs.domain import ConflictError, IllegalTransitionError
from libs.events import Envelope
from libs.runtime.pii import Sealer
from libs.runtime.settings import DEV_PII_KEY
from services.transfer import rules
from services.transfer.domain import Application, Closing, Transfer, evolve
from services.transfer.schemas import IdentityIn, sealed_identity
from tests.registration_support import phone, resident_id

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
SEALER = Sealer(DEV_PII_KEY)


def app(kind: str = "transfer") -> Application:
    who = sealed_identity(IdentityIn(id_number=resident_id(), name="王五", phone=phone()),
                          "natural_person", SEALER)
    return Application(account_id="acc-1", kind=kind, transferee=who,
                       entity_type="natural_person", organization=None,
                       contact_sealed=SEALER.seal("13800138000", subject=who.id_number_blind),
                       contact_masked="138****8000")


def store(state: Transfer | None, payloads, version: int = 0) -> Transfer:
    for i, p in enumerate(payloads, start=version + 1):
        env = Envelope.new(type=p.event_type, data=p.to_data(), stream_id="transfer-t1",
                           source="/transfer", subject="t1", time=T0)._replace(stream_version=i)
        state = evolve(state, env)
    return state


def opened(kind: str = "transfer", refusals=()) -> Transfer:
    return store(None, Transfer.apply("t1", app(kind), by="platform", now=T0,
                                      deadline=T0 + timedelta(days=15),
                                      opt_out_until=T0 + timedelta(days=7),
                                      refusals=list(refusals)))


def test_A11_2_application_waits_for_verification_and_both_parties():
    t = opened()
    assert t.status == "verifying" and t.missing == [
        "transferee_verification", "transferor_confirmation", "transferee_confirmation"]
    c = Closing(T0, previous_entity_type="natural_person", previous_name="张*",
                new_name="王*", ad_revenue_paused_until=rules.add_months(T0, 3))
    t = store(t, t.confirm("transferor", by="p", closing=c), t.version)
    with pytest.raises(ConflictError) as e:
        t.confirm("transferor", by="p", closing=c)
    assert e.value.code == "already-confirmed"
    decided = t.transferee_checked(verified=True, reasons=[], detail="", level="three_factor",
                                   evidence=["ev"], closing=c)
    assert [p.event_type for p in decided] == ["transfer.TransfereeApproved"]
    t = store(t, decided, t.version)
    t = store(t, t.confirm("transferee", by="p", closing=c), t.version)
    assert t.status == "opt_out_period" and t.missing == []
    c = replace(c, now=T0 + timedelta(days=7))
    done = t.complete_when_due(c)
    assert [p.event_type for p in done] == [
        "transfer.TransferCompleted", "transfer.TransferAnnounced",
        "transfer.FollowerOptOutsApplied"]
    notice = done[1]
    assert notice.previous_name == "张*" and notice.new_name == "王*"
    assert notice.ad_revenue_paused_until == datetime(2026, 6, 2, 1, 0, tzinfo=UTC)
    assert notice.history_retained == ["violations", "measures", "credit"]
    t = store(t, done, t.version)
    assert t.status == "completed"
    with pytest.raises(IllegalTransitionError):
        t.withdraw(by="p", reason="")


def test_A11_2_transferee_who_fails_verification_is_rejected():
    t = opened()
    decided = t.transferee_checked(verified=False, reasons=["public-security-mismatch"],
                                   detail="no", level=None, evidence=["e"], closing=Closing(T0))
    t = store(t, decided, t.version)
    assert t.status == "rejected" and t.reasons == ("public-security-mismatch",)
    with pytest.raises(IllegalTransitionError):
        t.confirm("transferor", by="p", closing=Closing(T0))


def test_A11_2_expires_past_deadline_and_refuses_late_confirmation():
    t = opened()
    late = Closing(T0 + timedelta(days=16))
    with pytest.raises(ConflictError) as e:
        t.confirm("transferor", by="p", closing=late)
    assert e.value.code == "transfer-deadline-passed"
    assert t.expire(T0 + timedelta(days=14)) == []
    [expired] = t.expire(T0 + timedelta(days=15))
    assert expired.missing == t.missing
    assert store(t, [expired], t.version).status == "expired"


def test_A11_2_withdrawal_and_follower_opt_out_once():
    t = opened()
    t = store(t, t.opt_out("f1"), t.version)
    assert t.opt_out("f1") == [] and t.opt_outs == ("f1",)
    t = store(t, t.withdraw(by="p", reason="changed mind"), t.version)
    assert t.status == "withdrawn"


def test_A11_1_rules_refuse_blacklisted_measured_and_recent():
    r = rules.TradingRules()
    assert rules.refusals(r, rules.AccountFacts(), kind="transfer", now=T0) == []
    assert rules.refusals(r, rules.AccountFacts(("blacklist",)), kind="transfer",
                          now=T0) == ["account-blacklisted"]
    assert rules.refusals(r, rules.AccountFacts(("suspend_updates",)), kind="co_operator",
                          now=T0) == ["account-under-measure"]
    recent = rules.AccountFacts((), T0 - timedelta(days=179))
    assert rules.refusals(r, recent, kind="transfer", now=T0) == ["transferred-recently"]
    assert rules.refusals(r, rules.AccountFacts((), T0 - timedelta(days=180)),
                          kind="transfer", now=T0) == []
    assert rules.refusals(rules.TradingRules(refuse_under_measure=False),
                          rules.AccountFacts(("warning",)), kind="transfer", now=T0) == []
    t = opened(refusals=["account-blacklisted"])
    assert t.status == "rejected" and t.reasons == ("account-blacklisted",)


def test_A11_1_repeated_transfers_among_a_group_are_suspected_trading():
    r = rules.TradingRules(threshold=3)
    moves = [rules.Move("m1", "a1", "A", "B", T0 - timedelta(days=30)),
             rules.Move("m2", "a2", "B", "C", T0 - timedelta(days=20))]
    s = rules.suspected_trading(r, moves, rules.Move("m3", "a3", "C", "D", T0))
    assert s is not None and s.transfers_in_window == 3
    assert s.account_ids == ("a1", "a2", "a3") and set(s.identity_blinds) == set("ABCD")
    assert rules.suspected_trading(r, moves, rules.Move("m3", "a3", "X", "Y", T0)) is None
    back = rules.suspected_trading(r, moves[:1], rules.Move("m3", "a1", "B", "A", T0))
    assert back is not None and back.round_trip
    old = [rules.Move("m1", "a1", "A", "B", T0 - timedelta(days=400)),
           rules.Move("m2", "a2", "B", "C", T0 - timedelta(days=399))]
    assert rules.suspected_trading(r, old, rules.Move("m3", "a3", "C", "D", T0)) is None


def test_A17_3_grant_completes_with_both_acceptances_and_can_be_revoked():
    t = opened("third_party")
    c = Closing(T0)
    t = store(t, t.transferee_checked(verified=True, reasons=[], detail="", level="two_factor",
                                      evidence=["e"], closing=c), t.version)
    t = store(t, t.confirm("transferee", by="grantee", closing=c), t.version)
    granted = t.confirm("transferor", by="owner", closing=c)
    assert granted[-1].event_type == "transfer.OperatorGranted"
    assert granted[-1].accepted_by == {"transferee": "grantee", "transferor": "owner"}
    t = store(t, granted, t.version)
    t = store(t, t.revoke(by="owner", reason="ended"), t.version)
    assert t.status == "revoked"
    with pytest.raises(IllegalTransitionError):
        t.revoke(by="owner", reason="")


def test_A11_2_confirmed_transfer_waits_out_the_followers_opt_out_period():
    t = opened()
    assert t.opt_out_until == T0 + timedelta(days=7)
    c = Closing(T0 + timedelta(days=1))
    t = store(t, t.transferee_checked(verified=True, reasons=[], detail="", level="two_factor",
                                      evidence=["e"], closing=c), t.version)
    t = store(t, t.opt_out("f1"), t.version)
    t = store(t, t.confirm("transferor", by="p", closing=c), t.version)
    # the last confirmation within the period completes nothing yet
    assert [p.event_type for p in t.confirm("transferee", by="p", closing=c)] == [
        "transfer.TransferConfirmed"]
    t = store(t, t.confirm("transferee", by="p", closing=c), t.version)
    assert t.status == "opt_out_period" and t.open
    t = store(t, t.opt_out("f2"), t.version)  # followers may still opt out
    assert t.complete_when_due(Closing(T0 + timedelta(days=7) - timedelta(seconds=1))) == []
    assert t.expire(T0 + timedelta(days=30)) == []  # confirmed: it completes, not expires
    done = t.complete_when_due(Closing(T0 + timedelta(days=7)))
    assert done[0].event_type == "transfer.TransferCompleted"
    [carried] = [p for p in done if p.event_type == "transfer.FollowerOptOutsApplied"]
    assert carried.follower_ids == ["f1", "f2"] and carried.opted_out == 2
    assert carried.opt_out_until == T0 + timedelta(days=7)
    t = store(t, done, t.version)
    assert t.status == "completed" and t.complete_when_due(Closing(T0 + timedelta(days=9))) == []


def test_A11_2_confirmation_after_the_opt_out_period_completes_at_once():
    t = opened()
    c = Closing(T0 + timedelta(days=8))
    t = store(t, t.confirm("transferor", by="p", closing=c), t.version)
    t = store(t, t.confirm("transferee", by="p", closing=c), t.version)
    decided = t.transferee_checked(verified=True, reasons=[], detail="", level="two_factor",
                                   evidence=["e"], closing=c)
    assert [p.event_type for p in decided][:2] == [
        "transfer.TransfereeApproved", "transfer.TransferCompleted"]
