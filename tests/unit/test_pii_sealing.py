"""Sealed values (ADR 0033): each names the key id that sealed it and is bound to its data
subject; older key ids still open; ``v1:`` values are read through the upcaster
(``LegacySealedValues``), which re-seals them for their subject, the same way at every read,
and the opener refuses them; a value that cannot be opened here says why (``SealError``)
instead of failing somewhere inside the cipher."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from typing import get_args

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from libs.events import Envelope
from libs.events.contracts import all_contracts
from libs.events.contracts._common import SealedIdentity
from libs.runtime.pii import (
    LegacySealedValues,
    Sealer,
    SealError,
    install_sealer,
    legacy_subject,
    open_identity,
    seal_identity,
    subjects_in,
)
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


def adr_0033_key(secret: str, key_id: str, subject: str) -> tuple[AESGCM, bytes]:
    """A subject's cipher and associated data by the whole HKDF as ADR 0033 writes them,
    without the Sealer."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"public-accounts/pii",
               info=b"pii-seal\x00" + key_id.encode() + b"\x00" + subject.encode()
               ).derive(secret.encode())
    return AESGCM(key), f"v2:{key_id}:".encode() + b"\x00" + subject.encode()


def adr_0033_seal(secret: str, key_id: str, subject: str, value: str) -> str:
    """A ``v2:`` value sealed with :func:`adr_0033_key`."""
    aead, aad = adr_0033_key(secret, key_id, subject)
    nonce = os.urandom(12)
    return f"v2:{key_id}:" + base64.urlsafe_b64encode(
        nonce + aead.encrypt(nonce, value.encode(), aad)).decode()


@pytest.mark.parametrize("subject", [A, B, "case-1"])
def test_the_sealers_keys_are_adr_0033s_hkdf(subject):
    # The sealer extracts once per key id and expands per subject: the same keys as the
    # whole HKDF, both ways and for every way of sealing (one value, or an identity's).
    sealer = Sealer(KEY, key_id="k3", retired={"k1": OTHER})
    for kid, secret in (("k3", KEY), ("k1", OTHER)):
        assert sealer.open(adr_0033_seal(secret, kid, subject, "张三"), subject=subject) == "张三"
    aead, aad = adr_0033_key(KEY, "k3", subject)
    for token in (sealer.seal("13800138000", subject=subject),
                  sealer.sealing_for(subject)("13800138000")):
        body = base64.urlsafe_b64decode(token.removeprefix("v2:k3:"))
        assert aead.decrypt(body[:12], body[12:], aad) == b"13800138000"


def test_an_identitys_values_get_a_nonce_each():
    seal = Sealer(KEY).sealing_for(A)
    tokens = [seal("13800138000") for _ in range(50)]
    assert len({base64.urlsafe_b64decode(t[6:])[:12] for t in tokens}) == 50
    with pytest.raises(ValueError, match="subject"):
        Sealer(KEY).sealing_for("")


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


def test_the_opener_refuses_a_v1_value_it_must_come_through_the_upcaster():
    legacy = legacy_seal(KEY, "11010519491231002X")
    for subject in (A, B):
        with pytest.raises(SealError, match="must come through the upcaster"):
            Sealer(KEY).open(legacy, subject=subject)
    with pytest.raises(SealError, match="must come through the upcaster"):
        Sealer(KEY).open_any(legacy, [A, B])


def test_a_v1_value_upcast_for_subject_a_opens_for_a_and_not_for_b():
    sealer = Sealer(KEY)
    upcast = LegacySealedValues(sealer).reseal(legacy_seal(KEY, "11010519491231002X"),
                                               subject=A)
    assert upcast.startswith("v2:k1:")
    assert sealer.open(upcast, subject=A) == "11010519491231002X"
    with pytest.raises(SealError, match="another subject"):
        sealer.open(upcast, subject=B)


def test_upcasting_a_v1_value_is_deterministic():
    """The same v1 value gives the same v2 value at every read, in every process with the
    same keys; another v1 value of the same plaintext (its own random nonce) does not."""
    legacy = legacy_seal(KEY, "13800138000")
    first = LegacySealedValues(Sealer(KEY)).reseal(legacy, subject=A)
    assert LegacySealedValues(Sealer(KEY)).reseal(legacy, subject=A) == first
    assert LegacySealedValues(Sealer(KEY)).reseal(legacy_seal(KEY, "13800138000"),
                                                  subject=A) != first
    # its nonce is the keyed HMAC of (key id, subject, v1 value): not a random one, and
    # another subject or key id gives another value under another key
    other_subject = LegacySealedValues(Sealer(KEY)).reseal(legacy, subject=B)
    assert other_subject != first and other_subject[6:22] != first[6:22]
    assert Sealer(KEY).open(other_subject, subject=B) == "13800138000"


def test_a_v1_value_is_upcast_under_the_current_key_id_after_rotation():
    legacy = legacy_seal(KEY, "11010519491231002X")
    # the master rotated: the old secret stays as the retired entry "v1"
    rotated = Sealer(OTHER, key_id="k2", retired={"v1": KEY})
    upcast = LegacySealedValues(rotated).reseal(legacy, subject=A)
    assert upcast.startswith("v2:k2:") and rotated.open(upcast, subject=A) == (
        "11010519491231002X")
    # the old secret not configured any more: the v1 value cannot be upcast
    with pytest.raises(SealError, match="does not open"):
        LegacySealedValues(Sealer(OTHER, key_id="k2")).reseal(legacy, subject=A)


def _event(type_: str, data: dict, subject: str = "acc-1") -> Envelope:
    return Envelope.new(type=type_, source="/t", subject=subject, stream_id=f"s-{subject}",
                        time=datetime(2027, 1, 4, tzinfo=UTC), data=data, schema_version=1)


def _legacy_identity(sealer: Sealer, number: str) -> dict:
    """An identity as events carried it before ADR 0033: every value ``v1:``."""
    identity = seal_identity(sealer, organization=True, number=number, name="某某科技有限公司",
                             phone="+8613800138000", representative_name="张三",
                             representative_id="11010519491231002X").model_dump()
    for field, value in (("id_number_sealed", number), ("holder_name_sealed", "某某科技有限公司"),
                         ("phone_sealed", "+8613800138000"),
                         ("representative_name_sealed", "张三"),
                         ("representative_id_sealed", "11010519491231002X")):
        identity[field] = legacy_seal(KEY, value)
    return identity


def test_the_upcaster_binds_each_v1_value_to_its_subject():
    """ADR 0033's subjects: an identity's values its own blind index; a contact given with
    an identity that identity's (registration's contact_sealed, a transfer's
    transferee_contact_sealed); a complaint's contact its case id."""
    sealer = Sealer(KEY)
    upcaster = LegacySealedValues(sealer)
    registrant = _legacy_identity(sealer, "91440101MA5CXXXX0X")
    submitted = upcaster(_event("registration.AccountRegistrationSubmitted", {
        "identity": registrant, "contact_sealed": legacy_seal(KEY, "020-12345678"),
        "contact_masked": "020****5678"}))
    identity = submitted.data["identity"]
    assert open_identity(sealer, identity, "id_number_sealed") == "91440101MA5CXXXX0X"
    assert open_identity(sealer, identity, "representative_id_sealed") == "11010519491231002X"
    assert sealer.open(submitted.data["contact_sealed"],
                       subject=identity["id_number_blind"]) == "020-12345678"
    assert submitted.data["contact_masked"] == "020****5678"

    transferee = _legacy_identity(sealer, "91440101MA5CYYYY0Y")
    requested = upcaster(_event("transfer.TransferRequested", {
        "transferee": transferee, "transferee_contact_sealed": legacy_seal(KEY, "13900139000"),
        "new_owner": registrant}))
    assert sealer.open(requested.data["transferee_contact_sealed"],
                       subject=transferee["id_number_blind"]) == "13900139000"
    assert open_identity(sealer, requested.data["new_owner"], "phone_sealed") == (
        "+8613800138000")

    complaint = upcaster(_event("enforcement.ComplaintFiled", {
        "case_id": "case-7", "contact_sealed": legacy_seal(KEY, "王小明 13700137000")}))
    assert sealer.open(complaint.data["contact_sealed"], subject="case-7") == (
        "王小明 13700137000")
    with pytest.raises(SealError):
        sealer.open(complaint.data["contact_sealed"], subject=identity["id_number_blind"])

    # a value of no known subject: the event's subject (the documented last rule)
    odd = upcaster(_event("x.Odd", {"note_sealed": legacy_seal(KEY, "x")}, subject="acc-9"))
    assert sealer.open(odd.data["note_sealed"], subject="acc-9") == "x"


def test_the_upcaster_changes_nothing_else_and_twice_is_once():
    sealer = Sealer(KEY)
    upcaster = LegacySealedValues(sealer)
    fresh = seal_identity(sealer, organization=False, number="11010519491231002X",
                          name="张三", phone="+8613800138000").model_dump()
    untouched = _event("x.Fresh", {"identity": fresh, "reason": "v1: a first draft",
                                   "items": [{"reason": "v1:not sealed"}]})
    assert upcaster(untouched) is untouched  # nothing v1 in a *_sealed field: the same event
    legacy = _event("x.Old", {"identity": _legacy_identity(sealer, "91440101MA5CXXXX0X"),
                              "reason": "v1: a first draft"})
    once = upcaster(legacy)
    assert once.data["reason"] == "v1: a first draft"
    assert legacy.data["identity"]["id_number_sealed"].startswith("v1:")  # not mutated
    assert upcaster(once) is once
    assert upcaster(legacy) == once


def test_a_v1_value_the_upcaster_cannot_open_is_left_and_the_opener_says_why():
    sealer = Sealer(KEY)
    stranger = legacy_seal(OTHER, "11010519491231002X")  # sealed with another secret
    event = _event("x.Old", {"case_id": "c-1", "contact_sealed": stranger})
    upcast = LegacySealedValues(sealer)(event)
    assert upcast is event  # the read goes on
    with pytest.raises(SealError, match="must come through the upcaster"):
        sealer.open(upcast.data["contact_sealed"], subject="c-1")


def test_install_sealer_reads_every_event_of_the_registry_through_the_upcaster():
    registry = all_contracts()
    settings = ServiceSettings(service="registration", port=1)
    sealer = install_sealer(settings, registry)
    install_sealer(settings, registry)  # again: replaces, never twice
    assert len(registry.value_upcasters) == 1
    fn, marker = registry.value_upcasters[0]
    assert isinstance(fn, LegacySealedValues) and marker == '"v1:'
    event = _event("enforcement.ComplaintFiled", {
        "case_id": "c-1", "contact_sealed": legacy_seal(DEV_PII_KEY, "13700137000")})
    assert sealer.open(registry.upcast(event).data["contact_sealed"], subject="c-1") == (
        "13700137000")
    # a reader holding the stored text skips it when there is no v1: value in it
    assert registry.upcast(event, stored=b'{"case_id": "c-1"}') is event


def _models_in(annotation) -> list[type]:
    """The pydantic models an annotation names (``Part | None``, ``list[Part]``...)."""
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _sealed_fields(model) -> list[str]:
    return [name for name in model.model_fields if name.endswith("_sealed")]


def test_every_sealed_field_of_every_contract_has_a_subject_rule():
    """Each ``*_sealed`` field of the contracts is covered by one of ADR 0033's subject
    rules (an identity's own, an identity's contact, a case's contact), never the fallback:
    a new sealed field needs its rule (and the upcaster's) decided."""
    registry = all_contracts()
    identity_fields = set(_sealed_fields(SealedIdentity))
    assert identity_fields == {"id_number_sealed", "holder_name_sealed", "phone_sealed",
                               "representative_name_sealed", "representative_id_sealed"}
    checked = 0
    for (event_type, _), model in registry._schemas.items():
        fields = model.model_fields
        for name in _sealed_fields(model):
            party = name.removesuffix("contact_sealed").rstrip("_") or "identity"
            with_identity = name.endswith("contact_sealed") and party in fields and (
                fields[party].annotation is SealedIdentity)
            assert with_identity or "case_id" in fields, (event_type, name)
            # the rule the upcaster applies to a payload of this shape
            node = {name: "v1:x", "case_id": "case-1"} if not with_identity else {
                name: "v1:x", party: {"id_number_blind": "blind-1"}, "case_id": "case-1"}
            assert legacy_subject(node, name, "fallback") == (
                "blind-1" if with_identity else "case-1"), (event_type, name)
            checked += 1
        for name, info in fields.items():  # nested parts: only SealedIdentity seals
            for part in _models_in(info.annotation):
                assert part is SealedIdentity or not _sealed_fields(part), (event_type, name)
    assert checked >= 4  # registration, verification, transfer, complaint contacts
    assert legacy_subject({"id_number_sealed": "v1:x", "id_number_blind": "me"},
                          "id_number_sealed", "fallback") == "me"


@pytest.mark.parametrize("token, message", [
    ("11010519491231002X", "not a sealed value"),
    ("v2:k1:", "not a sealed value"),
    ("v2:k1:@@@", "not base64"),
    ("v2:k1:" + base64.urlsafe_b64encode(b"short").decode(), "too short"),
    ("v2:k9:" + base64.urlsafe_b64encode(os.urandom(40)).decode(), "key id 'k9'"),
    ("v1:" + base64.urlsafe_b64encode(os.urandom(40)).decode(), "through the upcaster"),
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
