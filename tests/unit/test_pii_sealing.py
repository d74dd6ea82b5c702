"""Sealed values (ADR 0033): each names the key id that sealed it and is bound to its data
subject; older key ids and the ``v1:`` format still open; a value that cannot be opened
here says why (``SealError``) instead of failing somewhere inside the cipher."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from libs.runtime.pii import Sealer, SealError, open_identity, seal_identity, subjects_in
from libs.runtime.settings import DEV_PII_KEY, ServiceSettings

KEY, OTHER = "k" * 40, "o" * 40
A, B = "a" * 32, "b" * 32  # two data subjects (blind indexes)


def legacy_seal(secret: str, value: str) -> str:
    """A value sealed as before ADR 0033: ``v1:``, one key, the constant ``b"pii"``."""
    root = hashlib.sha256(secret.encode()).digest()
    key = hmac.new(root, b"seal", hashlib.sha256).digest()
    nonce = os.urandom(12)
    return "v1:" + base64.urlsafe_b64encode(
        nonce + AESGCM(key).encrypt(nonce, value.encode(), b"pii")).decode()


def test_round_trip_names_the_key_id_and_hides_the_value():
    sealer = Sealer(KEY, key_id="k7")
    token = sealer.seal("张三", subject=A)
    assert token.startswith("v2:k7:") and "张三" not in token
    assert sealer.open(token, subject=A) == "张三"


def test_a_value_sealed_for_subject_a_does_not_open_as_subject_b():
    sealer = Sealer(KEY)
    token = sealer.seal("13800138000", subject=A)
    with pytest.raises(SealError, match="another subject"):
        sealer.open(token, subject=B)
    # nor does moving it under another key id's header help
    moved = token.replace("v2:k1:", "v2:k2:")
    with pytest.raises(SealError):
        Sealer(KEY, key_id="k2", retired={"k1": KEY}).open(moved, subject=A)


def test_a_value_sealed_under_an_old_key_id_opens_after_rotation():
    before = Sealer(KEY, key_id="k1")
    token = before.seal("11010519491231002X", subject=A)
    after = Sealer(OTHER, key_id="k2", retired={"k1": KEY})
    assert after.seal("x", subject=A).startswith("v2:k2:")
    assert after.open(token, subject=A) == "11010519491231002X"
    # one master, a new key id: the new id derives another key (HKDF info has the id)
    same_master = Sealer(KEY, key_id="k2", retired={"k1": KEY})
    assert same_master.open(token, subject=A) == "11010519491231002X"
    assert same_master.seal("x", subject=A)[6:] != before.seal("x", subject=A)[6:]


def test_an_old_v1_value_still_opens_for_any_subject_and_after_rotation():
    legacy = legacy_seal(KEY, "11010519491231002X")
    assert Sealer(KEY).open(legacy, subject=A) == "11010519491231002X"
    assert Sealer(KEY).open(legacy, subject=B) == "11010519491231002X"  # it was never bound
    # the master rotated: the old secret stays as the retired entry "v1"
    rotated = Sealer(OTHER, key_id="k2", retired={"v1": KEY})
    assert rotated.open(legacy, subject=A) == "11010519491231002X"


@pytest.mark.parametrize("token, message", [
    ("11010519491231002X", "not a sealed value"),
    ("v2:k1:", "not a sealed value"),
    ("v2:k1:@@@", "not base64"),
    ("v2:k1:" + base64.urlsafe_b64encode(b"short").decode(), "too short"),
    ("v2:k9:" + base64.urlsafe_b64encode(os.urandom(40)).decode(), "key id 'k9'"),
    ("v1:" + base64.urlsafe_b64encode(os.urandom(40)).decode(), "does not open"),
])
def test_what_cannot_be_opened_is_a_clear_error_not_a_crash(token, message):
    with pytest.raises(SealError, match=message):
        Sealer(KEY).open(token, subject=A)


def test_wrong_key_is_a_seal_error_naming_the_key_id():
    token = Sealer(KEY).seal("x", subject=A)
    with pytest.raises(SealError, match="key id 'k1'"):
        Sealer(OTHER).open(token, subject=A)
    assert issubclass(SealError, ValueError)


def test_an_identity_is_sealed_for_its_own_blind_index():
    sealer = Sealer(KEY)
    sealed = seal_identity(sealer, organization=False, number="11010519491231002X",
                           name="张三", phone="+8613800138000").model_dump()
    assert sealed["id_number_blind"] == sealer.blind("id_number", "11010519491231002X")
    for field in ("id_number_sealed", "holder_name_sealed", "phone_sealed"):
        assert open_identity(sealer, sealed, field)
        with pytest.raises(SealError):
            sealer.open(sealed[field], subject=B)
    assert open_identity(sealer, sealed, "holder_name_sealed") == "张三"
    assert subjects_in({"identity": sealed, "case_id": "c-1"}) == [
        sealed["id_number_blind"], "c-1"]
    assert sealer.open_any(sealed["phone_sealed"], [B, sealed["id_number_blind"]]) == (
        "+8613800138000")


def test_the_blind_index_is_kept_as_it_was_unless_another_key_id_is_configured():
    root = hashlib.sha256(KEY.encode()).digest()
    before = hmac.new(hmac.new(root, b"blind", hashlib.sha256).digest(),
                      b"id_number:11010519491231002X", hashlib.sha256).hexdigest()[:32]
    assert Sealer(KEY).blind("id_number", "11010519491231002x ") == before
    assert Sealer(KEY, key_id="k2").blind("id_number", "11010519491231002X") == before
    assert Sealer(KEY, blind_key_id="b2").blind("id_number", "11010519491231002X") != before


def test_settings_configure_the_key_ids(monkeypatch):
    monkeypatch.setenv("PII_KEY_ID", "k2")
    monkeypatch.setenv("PII_RETIRED_KEYS", json.dumps({"k1": DEV_PII_KEY}))
    settings = ServiceSettings(service="registration", port=1)
    old = Sealer(DEV_PII_KEY).seal("x", subject=A)
    sealer = Sealer.from_settings(settings)
    assert sealer.key_id == "k2" and sealer.open(old, subject=A) == "x"
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://db/x")
    monkeypatch.setenv("AUTH_SECRET", "a" * 40)
    monkeypatch.setenv("PII_KEY", "p" * 40)
    with pytest.raises(ValueError, match=r"PII_RETIRED_KEYS\['k1'\]"):
        ServiceSettings(service="registration", port=1)  # the development key, retired


def test_an_organizations_contact_still_opens_after_its_owner_changed():
    """The registrant's contact is sealed for the registrant; a completed transfer changes
    the account's identity (verification's fold), not whom the contact is sealed for."""
    from libs.events.contracts.verification import OwnerChangeDisclosed, VerificationOpened
    from services.verification.domain import fold_payloads
    from services.verification.views import disclose

    sealer = Sealer(KEY)
    first = seal_identity(sealer, organization=True, number="91440101MA5CXXXX0X",
                          name="广州某某科技有限公司", phone="+8613800138000")
    new = seal_identity(sealer, organization=True, number="91440101MA5CYYYY0Y",
                        name="深圳某某网络有限公司", phone="+8613900139000")
    org = {"business_name": "深圳某某网络有限公司", "registered_address": "深圳市南山区某路2号",
           "primary_business": "信息技术服务", "business_scope": "软件开发"}
    now = datetime(2027, 1, 4, tzinfo=UTC)
    state = fold_payloads(None, [VerificationOpened(
        account_id="a-1", entity_type="legal_person", identity=first,
        profile={"name": "小站", "description": "科技", "avatar_sha256": "ab" * 32},
        category="technology", province="440000",
        contact_sealed=sealer.seal("020-12345678", subject=first.id_number_blind),
        contact_public=True,
        contact_masked="020****5678", organization=org, legal_basis=["A8.1"])], now)
    state = fold_payloads(state, [OwnerChangeDisclosed(
        account_id="a-1", transfer_id="t-1", changed_at=now, new_entity_type="legal_person",
        new_name="深圳某某网络有限公司", new_owner=new, new_organization=org,
        legal_basis=["A11.2"])], now)
    page = disclose(replace(state, identity_status="verified", verified=True), sealer)
    assert page["organization"]["unified_social_credit_code"] == "91440101MA5CYYYY0Y"
    assert page["organization"]["contact"] == "020-12345678"
