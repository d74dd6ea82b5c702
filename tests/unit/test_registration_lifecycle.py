"""The account's lifecycle state machine (A8.2, A10.2, A11.2, A11.3, A13.1, A17.2, A19.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from libs.domain import IllegalTransitionError
from libs.events import Envelope
from libs.events.contracts import all_contracts
from libs.events.contracts._common import CAPABILITIES
from libs.events.contracts.registration import AccountRegistrationSubmitted
from services.registration.domain import (
    STATUSES,
    TERMINAL,
    Account,
    ProfileChange,
    evolve,
    stream_of,
)
from services.registration.rules import CREDIT_WITHHELD

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REGISTRY = all_contracts()
OWNER = {"id_kind": "resident_id", "id_number_sealed": "v1:x", "id_number_blind": "b" * 32,
         "id_number_masked": "440106********1234", "holder_name_sealed": "v1:y",
         "holder_name_masked": "张*", "phone_sealed": "v1:z", "phone_blind": "c" * 32,
         "phone_masked": "139****0000"}
SUBMITTED = {"account_id": "acc-1", "entity_type": "natural_person", "identity": OWNER,
             "profile": {"name": "健康小站", "description": "d", "avatar_sha256": "ab" * 32},
             "category": "health", "province": "440000", "operations_province": "440000",
             "contact_sealed": "v1:c", "contact_masked": "138****8000",
             "agreement_version": "2025-01", "legal_basis": ["A2"]}


def apply(acc: Account | None, decided, time=T0) -> Account:
    for payload in decided:
        # every decided payload is its published contract, and is stored as its data
        etype, data = payload.event_type, payload.to_data()
        REGISTRY.schema(etype).model_validate(data)
        version = (acc.version if acc else 0) + 1
        stored = Envelope.new(type=etype, data=data, stream_id=stream_of("acc-1"),
                              source="/registration", time=time, subject="acc-1")
        acc = evolve(acc, stored.with_stream_version(version))
    return acc


def pending() -> Account:
    return apply(None, [AccountRegistrationSubmitted(**SUBMITTED)])


def active() -> Account:
    acc = pending()
    return apply(acc, acc.activate(evidence=["v-1"]))


def test_A8_2_verification_activates_a_pending_account():
    acc = active()
    assert acc.status == "active" and all(acc.capabilities.values())


def test_A8_2_mismatch_suspends_with_a_deadline_and_a_passed_change_reinstates():
    acc = active()
    deadline = T0 + timedelta(days=15)
    acc = apply(acc, acc.request_correction(deadline=deadline, findings=[], evidence=["m"],
                                            legal_basis=["A8.2"]))
    assert acc.status == "suspended" and acc.correction_deadline == deadline
    assert not any(acc.capabilities.values())
    acc = apply(acc, acc.submit_profile_change(change_id="c1",
                                               change=ProfileChange(name="新名字")))
    assert acc.profile["name"] == "健康小站"  # the old profile stays until it passes
    acc = apply(acc, acc.apply_profile_change(change_id="c1", evidence=["p"]))
    assert acc.profile["name"] == "新名字" and acc.status == "active"


def test_A8_2_correction_deadline_passing_closes_the_account():
    acc = active()
    acc = apply(acc, acc.request_correction(deadline=T0 + timedelta(days=15), findings=[],
                                            evidence=["m"], legal_basis=["A8.2"]))
    assert acc.sweep(now=T0 + timedelta(days=14), inactivity_months=6) == []
    acc = apply(acc, acc.sweep(now=T0 + timedelta(days=16), inactivity_months=6))
    assert acc.status == "closed" and acc.closed_reason == "correction_deadline_passed"


def test_A10_2_inactivity_suspends_after_six_months_and_activity_reinstates():
    acc = active()
    assert acc.sweep(now=T0 + timedelta(days=150), inactivity_months=6) == []
    acc = apply(acc, acc.sweep(now=T0 + timedelta(days=190), inactivity_months=6))
    assert acc.status == "suspended" and acc.suspensions == {"inactivity": "inactivity"}
    acc = apply(acc, acc.record_activity(kind="login"), time=T0 + timedelta(days=191))
    assert acc.status == "active"
    assert acc.sweep(now=T0 + timedelta(days=300), inactivity_months=6) == []


def test_A11_3_self_requested_suspension_and_deregistration():
    acc = active()
    acc = apply(acc, acc.suspend(suspension_id="self_requested", reason="self_requested",
                                 legal_basis=["A11.3"]))
    assert acc.status == "suspended"
    with pytest.raises(IllegalTransitionError):
        acc.suspend(suspension_id="self_requested", reason="self_requested",
                    legal_basis=["A11.3"])
    acc = apply(acc, acc.deregister(requested_by="op"))
    assert acc.status == "deregistered"
    with pytest.raises(IllegalTransitionError):
        acc.activate(evidence=[])


def test_A17_2_A19_2_function_limits_and_credit_withhold_capabilities():
    acc = active()
    acc = apply(acc, acc.restrict(restriction_id="m1", capabilities=["comment"], until=None,
                                  legal_basis=["A19.2"], evidence=["e"]))
    acc = apply(acc, acc.apply_credit_level(level="C", withheld=CREDIT_WITHHELD["C"],
                                            evidence=["c"]))
    caps = acc.capabilities
    assert acc.status == "restricted"
    assert not caps["comment"] and not caps["advertise"] and caps["publish"]
    acc = apply(acc, acc.lift(measure_id="m1", legal_basis=["A20.2"], evidence=["l"]))
    acc = apply(acc, acc.apply_credit_level(level="A", withheld=CREDIT_WITHHELD["A"],
                                            evidence=["c2"]))
    assert acc.status == "active"


def test_A11_2_completed_transfer_changes_owner_and_lifts_unapplied_suspension():
    acc = active()
    acc = apply(acc, acc.suspend(suspension_id="unapplied_transfer", reason="unapplied_transfer",
                                 legal_basis=["A11.2"]))
    new_owner = {**OWNER, "id_number_blind": "n" * 32}
    acc = apply(acc, acc.change_owner(transfer_id="t1", new_owner=new_owner, evidence=["t"]))
    assert acc.owner["id_number_blind"] == "n" * 32 and acc.status == "active"


def test_illegal_transitions_are_refused():
    acc = pending()
    with pytest.raises(IllegalTransitionError):
        acc.suspend(suspension_id="self_requested", reason="self_requested", legal_basis=[])
    with pytest.raises(IllegalTransitionError):
        acc.reinstate(suspension_id="inactivity", legal_basis=[])
    closed = apply(acc, acc.close(reason="enforcement", legal_basis=["A19.2"]))
    with pytest.raises(IllegalTransitionError):
        closed.close(reason="again", legal_basis=[])


# -- property: no sequence of commands reaches an illegal state ------------------------------
REASONS = ["self_requested", "enforcement", "unapplied_transfer"]


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.acc = pending()
        self.clock = T0
        self.was_terminal = False

    def attempt(self, command, *args, **kwargs):
        try:
            decided = command(*args, **kwargs)
        except IllegalTransitionError:
            return
        if self.was_terminal:  # only bans may follow a terminal state
            assert all(t.endswith("ReregistrationBanImposed") or t.endswith("BanLifted")
                       for t in (p.event_type for p in decided)), decided
        self.acc = apply(self.acc, decided, self.clock)

    @rule()
    def activate(self):
        self.attempt(self.acc.activate, evidence=["v"])

    @rule(reason=st.sampled_from(REASONS))
    def suspend(self, reason):
        self.attempt(self.acc.suspend, suspension_id=reason, reason=reason, legal_basis=["x"])

    @rule(reason=st.sampled_from([*REASONS, "inactivity", "correction_pending"]))
    def reinstate(self, reason):
        self.attempt(self.acc.reinstate, suspension_id=reason, legal_basis=["x"])

    @rule(caps=st.lists(st.sampled_from(CAPABILITIES), max_size=3), rid=st.sampled_from("ab"))
    def restrict(self, caps, rid):
        self.attempt(self.acc.restrict, restriction_id=rid, capabilities=caps, until=None,
                     legal_basis=["A19.2"], evidence=[])

    @rule(rid=st.sampled_from(["a", "b", "enforcement", "m"]))
    def lift(self, rid):
        self.attempt(self.acc.lift, measure_id=rid, legal_basis=["A20.2"], evidence=[])

    @rule(level=st.sampled_from("ABCDE"))
    def credit(self, level):
        self.attempt(self.acc.apply_credit_level, level=level,
                     withheld=CREDIT_WITHHELD[level], evidence=[])

    @rule()
    def correction(self):
        self.attempt(self.acc.request_correction, deadline=self.clock + timedelta(days=15),
                     findings=[], evidence=[], legal_basis=["A8.2"])

    @rule(days=st.integers(0, 400))
    def time_passes_and_sweep(self, days):
        self.clock += timedelta(days=days)
        self.attempt(self.acc.sweep, now=self.clock, inactivity_months=6)

    @rule()
    def activity(self):
        self.attempt(self.acc.record_activity, kind="login")

    @rule()
    def close(self):
        self.attempt(self.acc.close, reason="enforcement", legal_basis=["A19.2"])

    @rule()
    def ban(self):
        self.attempt(self.acc.ban, measure_id="m", severity="grave", until=None, keys=["k"],
                     legal_basis=["A8.3"], evidence=[])

    @rule()
    def deregister(self):
        self.attempt(self.acc.deregister, requested_by="op")

    @invariant()
    def state_is_legal(self):
        acc = self.acc
        assert acc.status in STATUSES
        if self.was_terminal:
            assert acc.phase in TERMINAL  # terminal states are final
        self.was_terminal = acc.phase in TERMINAL
        usable = acc.status in ("active", "restricted")
        if not usable:
            assert not any(acc.capabilities.values())
        if acc.status == "suspended":
            assert acc.suspensions
        if acc.status == "active":
            assert not acc.suspensions and not acc.restrictions and all(
                acc.capabilities.values())
        if "correction_pending" in acc.suspensions:
            assert acc.correction_deadline is not None


TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)


def test_A19_2_timed_restriction_and_suspension_end_with_the_sweep():
    acc = active()
    acc = apply(acc, acc.restrict(restriction_id="m1", capabilities=["comment", "message"],
                                  until=T0 + timedelta(days=7), legal_basis=["A19.2"],
                                  evidence=["v1"]))
    acc = apply(acc, acc.suspend(suspension_id="m2", reason="enforcement",
                                 until=T0 + timedelta(days=30), legal_basis=["A19.2"],
                                 evidence=["v2"]))
    acc = apply(acc, acc.restrict(restriction_id="m3", capabilities=["advertise"], until=None,
                                  legal_basis=["A19.2"], evidence=["v3"]))
    assert acc.status == "suspended"
    assert acc.sweep(now=T0 + timedelta(days=6), inactivity_months=6) == []
    acc = apply(acc, acc.sweep(now=T0 + timedelta(days=8), inactivity_months=6))
    assert set(acc.restrictions) == {"m3"} and acc.status == "suspended"
    acc = apply(acc, acc.sweep(now=T0 + timedelta(days=31), inactivity_months=6))
    assert acc.status == "restricted" and not acc.suspensions
    assert acc.capabilities["comment"] and not acc.capabilities["advertise"]
    assert acc.sweep(now=T0 + timedelta(days=60), inactivity_months=6) == []
