"""A9.2: the public page follows the account's standing and its owner (pure domain)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from libs.domain import NotFoundError
from libs.events.contracts.transfer import TransferAnnounced
from services.verification.domain import Verification, fold_payloads
from services.verification.views import disclose

NOW = datetime(2027, 1, 4, tzinfo=UTC)
OWNER = {"id_kind": "resident_id", "id_number_sealed": "s", "id_number_blind": "b",
         "id_number_masked": "1101**********1234", "holder_name_sealed": "s",
         "holder_name_masked": "张*", "phone_sealed": "s", "phone_blind": "p",
         "phone_masked": "139****0000"}


def verified(entity_type: str = "natural_person") -> Verification:
    return Verification(account_id="a-1", entity_type=entity_type, category="technology",
                        province="440000", identity=OWNER, profile={"name": "小站"},
                        organization=None, contact_sealed="s", contact_masked="138****8000",
                        extra=False, opened_at=NOW, identity_status="verified",
                        profile_status="passed", verified=True, badge="personal",
                        badge_active=True)


def after(state: Verification, **change) -> Verification:
    return fold_payloads(state, state.follow_standing(evidence=["e-1"], **change), NOW)


def test_A9_2_a_suspended_account_shows_no_badge_until_every_suspension_is_lifted():
    s = after(after(verified(), suspended="self_requested"), suspended="m-1")
    assert disclose(s, sealer=None)["badge"] is None and s.suspensions == ("m-1",
                                                                           "self_requested")
    s = after(s, reinstated="self_requested")
    assert disclose(s, sealer=None)["badge"] is None  # the measure's suspension still holds
    s = after(s, reinstated="m-1")
    page = disclose(s, sealer=None)
    assert page["badge"] == "personal" and page["standing"] == "in_service"


@pytest.mark.parametrize("ended", ["closed", "deregistered"])
def test_A9_2_a_closed_account_has_no_public_page_for_good(ended):
    s = after(verified(), ended=ended)
    assert s.follow_standing(reinstated="x", evidence=[]) == []
    with pytest.raises(NotFoundError):  # no page at all, not a page without a badge
        disclose(s, sealer=None)


@pytest.mark.parametrize("change", [
    {"verified": False, "identity_status": "pending"},  # not verified yet
    {"verified": False, "identity_status": "verified"},  # awaiting a qualification
    {"verified": False, "identity_status": "failed"},
])
def test_A9_2_an_account_not_verified_has_no_public_page(change):
    with pytest.raises(NotFoundError):
        disclose(replace(verified(), **change), sealer=None)


def test_A9_2_a_natural_persons_page_shows_no_identity_number_phone_or_contact():
    page = disclose(verified(), sealer=None)
    assert page["operator"] == {"name": "张*"}
    shown = repr(page)
    for secret in ("1234", "1101", "139****0000", "138****8000"):
        assert secret not in shown


class _Sealer:
    def open(self, sealed: str, *, subject: str | None = None) -> str:
        return {"uscc": "91440101MA5CXXXX0X", "contact": "13912345678"}[sealed]


@pytest.mark.parametrize("public", [False, True])
def test_A9_2_an_organization_shows_its_contact_only_if_declared_public(public):
    s = replace(verified("legal_person"), badge="enterprise", contact_sealed="contact",
                contact_public=public, identity={**OWNER, "id_number_sealed": "uscc"},
                organization={"business_name": "广州某某科技有限公司",
                              "registered_address": "广州市天河区某路1号"})
    org = disclose(s, sealer=_Sealer())["organization"]
    assert org == {"business_name": "广州某某科技有限公司",
                   "registered_address": "广州市天河区某路1号",
                   "unified_social_credit_code": "91440101MA5CXXXX0X",
                   "contact": "13912345678" if public else None}


def test_A9_2_a_transfer_to_an_organization_changes_the_badge_with_the_owner():
    notice = TransferAnnounced(
        account_id="a-1", transfer_id="t-1", changed_at=NOW, new_entity_type="legal_person",
        new_name="广州某某科技有限公司", new_owner=OWNER,
        ad_revenue_paused_until=NOW + timedelta(days=30), legal_basis=["A11.2"])
    s = verified()
    decided = s.disclose_owner_change(notice, evidence=["e-1"])
    assert [p.event_type for p in decided] == ["verification.OwnerChangeDisclosed",
                                               "verification.BadgeGranted"]
    s = fold_payloads(s, decided, NOW)
    assert s.badge == "enterprise" and s.entity_type == "legal_person"
