"""Registration rules (A2, A6, A7.1, A8.3, A10.1, A10.3, A13.1): pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from libs.domain import DomainError as RuleError
from libs.runtime.problems import status_of
from services.registration import rules
from services.registration.domain import add_months
from services.registration.rules import (
    CATEGORIES,
    CREDIT_WITHHELD,
    KeyState,
    Match,
    Policy,
    ban_until,
    decide_registration,
    validate_application,
)

POLICY = Policy()
NOW = datetime(2026, 3, 1, tzinfo=UTC)


# The rules name a refusal's kind (libs.domain); these tests read its status the way the
# API edge answers it (libs.runtime.problems.status_of).
class AnsweredRefusal(RuleError):
    def __init__(self, exc: RuleError) -> None:
        super().__init__(exc.detail, code=exc.code, legal_basis=exc.legal_basis, **exc.extra)
        self.status = status_of(exc.kind)


def check_bans(keys, now):
    try:
        rules.check_bans(keys, now)
    except RuleError as exc:
        raise AnsweredRefusal(exc) from None


def answered(verdict):
    return SimpleNamespace(**vars(verdict),
                           status=status_of(verdict.kind) if verdict.kind else 202)


def keys(identity_accounts=1, phone_accounts=1, attempts=1, device_attempts=1, **ban):
    """Key states after this attempt was counted (so 1 = this is the first)."""
    return [KeyState("i", "identity", identity_accounts, attempts, **ban),
            KeyState("p", "phone", phone_accounts, attempts),
            KeyState("d", "device", 0, device_attempts)]


def decide(entity_type="natural_person", matches=(), **kw):
    return answered(decide_registration(entity_type=entity_type, keys=keys(**kw),
                                        matches=list(matches), policy=POLICY))


def valid(**over):
    args = dict(entity_type="natural_person", category="health", has_organization=False,
                has_representative=False, agreement_version="v2", current_agreement="v2")
    validate_application(**(args | over))


def test_A2_organizations_must_give_organization_details():
    with pytest.raises(RuleError) as e:
        valid(entity_type="legal_person")
    assert e.value.code == "organization-required"
    valid(entity_type="unincorporated_organization", has_organization=True,
          has_representative=True)
    with pytest.raises(RuleError) as e:
        valid(has_organization=True)
    assert e.value.code == "organization-not-allowed"


def test_A6_registration_needs_the_current_agreement_version():
    with pytest.raises(RuleError) as e:
        valid(agreement_version="v1")
    assert e.value.code == "agreement-version-outdated"
    assert e.value.extra["current_version"] == "v2"


def test_A7_1_taxonomy_crosses_content_field_with_entity_type():
    with pytest.raises(RuleError) as e:
        valid(category="news")
    assert e.value.code == "category-not-allowed-for-entity-type"
    valid(category="news", entity_type="legal_person", has_organization=True,
          has_representative=True)
    with pytest.raises(RuleError) as e:
        valid(category="astrology")
    assert e.value.code == "unknown-category"
    assert {"news", "economics", "education", "health", "justice",
            "entertainment"} <= set(CATEGORIES)


def test_A10_1_first_account_is_accepted_without_extra_verification():
    d = decide()
    assert d.outcome == "accept" and not d.extra_verification


def test_A10_1_from_the_threshold_on_extra_verification_is_required():
    d = decide(identity_accounts=2)  # one existing account, natural person threshold 1
    assert d.outcome == "accept" and d.extra_verification
    assert d.identity_accounts == 1 and d.threshold == 1


def test_A10_1_limit_refuses_beyond_configured_count():
    d = decide(identity_accounts=3)  # two existing, limit 2
    assert (d.outcome, d.code, d.status) == ("refuse", "account-limit-reached", 409)
    assert "A10.1" in d.legal_basis
    assert decide("legal_person", identity_accounts=5).outcome == "accept"
    assert decide("legal_person", identity_accounts=6).outcome == "refuse"


def test_A10_1_phone_limit_counts_across_identities():
    assert decide(phone_accounts=5).outcome == "accept"
    assert decide(phone_accounts=6).code == "account-limit-reached"


def test_A10_3_velocity_holds_then_refuses():
    assert decide(device_attempts=3).outcome == "accept"
    held = decide(device_attempts=4)
    assert held.outcome == "hold" and "device" in held.reasons[0]
    refused = decide(device_attempts=12)
    assert (refused.outcome, refused.code, refused.status) == ("refuse", "velocity-limit", 429)
    assert refused.legal_basis == ("A10.3",)


def test_A8_3_banned_identity_or_phone_cannot_register_while_the_ban_lasts():
    now = NOW.timestamp()
    with pytest.raises(RuleError) as e:
        check_bans(keys(banned_until=now + 10), now)
    assert e.value.code == "registration-banned" and e.value.status == 403
    assert e.value.extra["until"].startswith("2026-03-01")
    with pytest.raises(RuleError):
        check_bans(keys(ban_permanent=True), now)
    check_bans(keys(banned_until=now - 10), now)  # served: no error


def test_A8_3_ban_periods_are_graded_by_severity():
    assert ban_until("permanent", NOW, None) is None
    assert (ban_until("minor", NOW, None) - NOW).days == 180
    assert (ban_until("grave", NOW, None) - NOW).days == 3 * 365
    given = datetime(2030, 1, 1, tzinfo=UTC)
    assert ban_until("serious", NOW, given) == given


def test_A8_3_same_name_as_a_closed_account_is_refused_similar_is_held():
    same = decide(matches=[Match("a1", "人民日报", "normalised", 1.0)])
    assert (same.outcome, same.code) == ("refuse", "similar-to-closed-account")
    similar = decide(matches=[Match("a1", "人民日报", "pinyin", 0.9)])
    assert similar.outcome == "hold" and similar.findings[0]["matched"] == "人民日报"
    assert "A8.3" in similar.legal_basis


def test_A13_1_lower_credit_levels_withhold_more_functions():
    assert not CREDIT_WITHHELD["A"]
    assert CREDIT_WITHHELD["C"] < CREDIT_WITHHELD["D"]
    assert "comment" in CREDIT_WITHHELD["D"] and "publish" not in CREDIT_WITHHELD["E"]


def test_A10_2_six_months_are_calendar_months():
    assert add_months(datetime(2026, 8, 31, tzinfo=UTC), 6) == datetime(2027, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 1, 15, tzinfo=UTC), -6) == datetime(2025, 7, 15,
                                                                         tzinfo=UTC)


def test_A6_a_newly_required_agreement_withholds_publishing_until_accepted():
    from services.registration.views import present

    doc = {"account_id": "a", "agreement_version": "2025-01", "owner": {},
           "capabilities": {"publish": True, "comment": True}}
    assert present(doc, current_agreement="2025-01")["capabilities"]["publish"] is True
    view = present(doc, current_agreement="2026-06")
    assert view["capabilities"] == {"publish": False, "comment": True}
    assert view["agreement"] == {"accepted_version": "2025-01", "current_version": "2026-06",
                                 "current_accepted": False, "withholds": ["publish"]}
