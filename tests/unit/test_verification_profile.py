"""A8.2 profile rules and A9.1/A5/A9.2 decisions of the verification domain (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.domain import DomainError
from libs.events import Envelope
from services.verification.adapters import ProtectedRegistry
from services.verification.domain import P, badge_for
from services.verification.domain import evolve as evolve_envelope
from services.verification.rules import (
    ProtectedEntry,
    Subject,
    check_profile,
    qualification_needs,
)

PERSON = Subject("natural_person", "technology", frozenset({"me"}))
HOLDER = Subject("legal_person", "technology", frozenset({"bank-uscc"}))


@pytest.fixture
def registry() -> ProtectedRegistry:
    r = ProtectedRegistry(base_words=["赌博"])
    r.add(ProtectedEntry("p1", "人民日报", "media", "rmrb-uscc"))
    r.add(ProtectedEntry("p2", "招商银行", "enterprise", "bank-uscc", ("招行",)))
    r.add(ProtectedEntry("p3", "马化腾", "person", "pony-id"))
    r.add(ProtectedEntry("p4", "北京市公安局", "organ", None), logo_phash="ffffffff00000000")
    return r


def codes(registry, name, description="", subject=PERSON, phash=None) -> set[str]:
    return {f["code"] for f in check_profile(name=name, description=description,
                                             avatar_phash=phash, subject=subject,
                                             registry=registry)}


@pytest.mark.parametrize("name", ["招商银行", "招商銀行", "招 商·银 行", "招商银行官方"])
def test_A8_2_protected_name_hit_by_non_holder(registry, name):
    assert codes(registry, name) & {"protected-name-similar", "protected-name-contained"}


def test_A8_2_protected_name_by_its_holder_passes(registry):
    assert codes(registry, "招商银行", subject=HOLDER) == set()


def test_A8_2_alias_and_famous_person_in_the_name(registry):
    assert "protected-name-contained" in codes(registry, "招行理财小课堂")
    assert "protected-name-contained" in codes(registry, "马化腾说创业")


def test_A8_2_a_famous_person_mentioned_in_a_description_is_not_impersonation(registry):
    assert codes(registry, "创业笔记", "读马化腾的访谈有感") == set()
    assert "protected-name-contained" in codes(registry, "理财笔记", "招商银行官方合作账号")


def test_A8_2_protected_logo_by_perceptual_hash(registry):
    assert "protected-logo" in codes(registry, "平安小站", phash="ffffffff00000001")
    assert "protected-logo" not in codes(registry, "平安小站", phash="0000000000000000")


def test_A8_2_removed_protected_name_no_longer_matches(registry):
    assert "protected-name-similar" in codes(registry, "招商银行", subject=PERSON)
    registry.apply(P + "ProtectedNameRemoved", {"protected_id": "p2"})
    assert codes(registry, "招商银行", subject=Subject("legal_person", "finance")) == set()


@pytest.mark.parametrize("name,code", [
    ("中国美食家", "reserved-national-term"),
    ("全国旅游指南", "reserved-national-term"),
    ("朝阳区教育局", "impersonates-state-body"),
    ("某某县人民政府", "impersonates-state-body"),
    ("湾区晚报", "impersonates-news-media"),
    ("城市电视台", "impersonates-news-media"),
    ("每日新闻速递", "news-term-without-permit"),
    ("北京发布", "region-name-abuse"),
    ("天安门", "region-name-abuse"),
    ("老王科技有限公司", "name-implies-organization"),
])
def test_A8_2_strict_name_review(registry, name, code):
    assert code in codes(registry, name)


@pytest.mark.parametrize("name", ["周末饭局", "北京烤鸭日记", "小王的格局"])
def test_A8_2_ordinary_names_pass_the_strict_review(registry, name):
    assert codes(registry, name) == set()


def test_A8_2_state_bodies_and_news_media_may_use_reserved_terms(registry):
    state = Subject("legal_person", "government_affairs")
    media = Subject("legal_person", "news")
    assert codes(registry, "中国气象发布", subject=state) == set()
    assert codes(registry, "全国新闻速递", subject=media) == set()
    assert "impersonates-state-body" in codes(registry, "全国税务通报", subject=media)


@pytest.mark.parametrize("description,code", [
    ("合作电话 139-1234-5678", "contact-details"),
    ("加微信：abc_12345", "contact-details"),
    ("QQ群 12345678", "contact-details"),
    ("详见 www.example.com", "contact-details"),
    ("扫码关注更多内容", "qr-code"),
    ("这里有赌.博技巧", "prohibited-word"),
])
def test_A8_2_contact_details_qr_codes_and_prohibited_words(registry, description, code):
    assert code in codes(registry, "生活小站", description)


def test_A8_2_operator_managed_prohibited_words(registry):
    registry.apply(P + "ProhibitedWordsChanged", {"added": ["代购"], "removed": ["赌博"]})
    assert "prohibited-word" in codes(registry, "海外代购小站")
    assert "prohibited-word" not in codes(registry, "生活小站", "赌博")


# -- qualifications, badge ------------------------------------------------------------------
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def evolve(state, event_type, data, time, event_id):
    """The aggregate after one stored event of ``event_type`` with ``data``."""
    return evolve_envelope(state, Envelope.new(
        type=event_type, data=data, stream_id="verification-a1", source="/verification",
        time=time, event_id=event_id))


def types(decided) -> list[str]:
    return [e.event_type for e in decided]


def opened(category: str, entity_type: str = "natural_person"):
    s = evolve(None, P + "VerificationOpened", {
        "account_id": "a1", "entity_type": entity_type, "category": category,
        "province": "440000", "identity": {"id_number_blind": "me"}, "profile": {"name": "x"},
        "organization": None, "contact_sealed": "", "contact_masked": ""}, NOW, "e0")
    s = evolve(s, P + "IdentityVerified", {"level": "two_factor", "factors": []}, NOW, "e1")
    s = evolve(s, P + "ProfileCheckPassed", {}, NOW, "e2")
    for kind in qualification_needs(category):
        s = evolve(s, P + "QualificationRequired", {"kinds": [kind]}, NOW, "e3")
    return s


def submitted(s, case_id="c1", kind="professional", days=365):
    return evolve(s, P + "QualificationSubmitted", {
        "case_id": case_id, "kind": kind, "qualification_type": "执业医师资格证", "number": "N1",
        "issuer": "卫健委", "valid_from": NOW.isoformat(),
        "valid_until": (NOW + timedelta(days=days)).isoformat(), "document_sha256": "h",
        "document_content_type": "application/pdf"}, NOW, f"sub-{case_id}")


@pytest.mark.parametrize("category", ["economics", "education", "health", "justice"])
def test_A9_1_professional_fields_stay_unverified_without_approval(category):
    s = opened(category)
    assert s.missing == ("professional",) and s.complete([]) == []


def test_A9_1_approval_completes_the_verification_with_a_label():
    s = submitted(opened("health"))
    decided = s.decide_case(case_id="c1", approve=True, reviewer="r", note="", now=NOW)
    assert types(decided) == [P + "QualificationApproved", P + "AccountVerified",
                              P + "BadgeGranted"]
    verified = decided[1]
    assert verified.qualifications == ["专业资质：执业医师资格证"]
    assert "A9.1" in verified.legal_basis and "sub-c1" in verified.evidence_event_ids


def test_A9_1_rejection_keeps_the_account_unverified_and_a_case_is_decided_once():
    s = submitted(opened("health"))
    decided = s.decide_case(case_id="c1", approve=False, reviewer="r", note="blurred", now=NOW)
    assert types(decided) == [P + "QualificationRejected"]
    s = s.evolve_all(decided, NOW)
    with pytest.raises(DomainError) as err:
        s.decide_case(case_id="c1", approve=True, reviewer="r", note="", now=NOW)
    assert err.value.code == "review-case-decided"


def test_A9_1_expiry_is_tracked_and_the_qualification_requested_again():
    s = submitted(opened("health"), days=30)
    s = s.evolve_all(s.decide_case(case_id="c1", approve=True, reviewer="r", note="", now=NOW),
                     NOW)
    assert s.verified and s.badge_active
    assert s.expire(NOW + timedelta(days=29)) == []
    decided = s.expire(NOW + timedelta(days=31))
    assert types(decided) == [P + "QualificationExpired", P + "QualificationRequired",
                              P + "BadgeSuspended"]
    after = s.evolve_all(decided, NOW)
    assert after.missing == ("professional",) and not after.verified and not after.badge_active


def test_A5_news_needs_an_approved_permit():
    s = opened("news", "legal_person")
    assert s.missing == ("news_permit",)
    s = submitted(s, kind="news_permit")
    decided = s.decide_case(case_id="c1", approve=True, reviewer="r", note="", now=NOW)
    assert decided[1].badge == "media" and "A5" in decided[1].legal_basis


def test_A9_2_badge_kind_by_entity_type_and_field():
    assert badge_for("natural_person", "health") == "personal"
    assert badge_for("legal_person", "technology") == "enterprise"
    assert badge_for("unincorporated_organization", "culture") == "organization"
    assert badge_for("legal_person", "government_affairs") == "government"
    assert badge_for("legal_person", "news") == "media"


def test_A9_3_failed_reinspection_unverifies_until_corrected():
    s = opened("technology")
    s = s.evolve_all(s.complete(["x"]), NOW)
    assert s.verified
    s = evolve(s, P + "ProfileMismatchFound", {"reinspection_id": "r1", "findings": [{}]},
               NOW, "m")
    assert not s.verified and s.reinspections == {"r1": "failed"}
    s = evolve(s, P + "ProfileCheckPassed", {"change_id": "c", "profile": {"name": "y"}}, NOW,
               "p")
    assert types(s.complete(["p"])) == [P + "AccountVerified", P + "BadgeGranted"]
