"""Test data for the registration service: valid identity numbers and request bodies."""

from __future__ import annotations

import itertools
import uuid

from stdnum.cn import ric, uscc

from libs.events.contracts.registration import AccountRegistrationSubmitted

_serial = itertools.count(int(uuid.uuid4().int % 700) + 100)


def resident_id(region: str = "110101") -> str:
    """A fresh valid resident id number (check character computed)."""
    n = next(_serial)
    body = f"{region}{1970 + n % 30}{1 + n % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def social_credit_code() -> str:
    body = f"914401{uuid.uuid4().int % 10**8:08d}{uuid.uuid4().int % 1000:03d}"[:17]
    return body + uscc.calc_check_digit(body)


def phone() -> str:
    """A fresh mobile number that means nothing to the local identity provider: never ending
    0000 (borrowed), 9999 (unknown) or 1111 (new number). A random one did, once in about
    3,300 bodies, and failed a test that expected a verified account."""
    digits = f"139{uuid.uuid4().int % 10**8:08d}"
    return digits[:-1] + "7" if digits[-4:] in ("0000", "9999", "1111") else digits


def unique_name(prefix: str = "账号") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def body(*, entity_type: str = "natural_person", category: str = "health",
         id_number: str | None = None, phone_number: str | None = None,
         name: str | None = None, agreement: str = "2025-01", device: str | None = None,
         network: str | None = None, province: str = "440000") -> dict:
    """A valid registration request body."""
    org = entity_type != "natural_person"
    b = {
        "entity_type": entity_type,
        "identity": {
            "id_number": id_number or (social_credit_code() if org else resident_id()),
            "name": "张三" if not org else "广州某某科技有限公司",
            "phone": phone_number or phone(),
            "representative_name": "李四" if org else None,
            "representative_id_number": resident_id() if org else None,
        },
        "profile": {"name": name or unique_name(), "description": "关于健康的科普",
                    "avatar": {"url": "https://cdn.example.com/a.png", "sha256": "ab" * 32}},
        "category": category,
        "province": province,
        "operations_province": province,
        "contact": "13800138000",
        "agreement_version": agreement,
        "device_fingerprint": device or uuid.uuid4().hex,
        "network": network or f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.1",
    }
    if org:
        b["organization"] = {"business_name": "广州某某科技有限公司",
                             "registered_address": "广州市天河区某路1号",
                             "primary_business": "信息技术服务",
                             "business_scope": "软件开发；信息技术咨询"}
    return b


OWNER = {"id_kind": "resident_id", "id_number_sealed": "v1:x", "id_number_blind": "b" * 32,
         "id_number_masked": "440106********1234", "holder_name_sealed": "v1:y",
         "holder_name_masked": "张*", "phone_sealed": "v1:z", "phone_blind": "c" * 32,
         "phone_masked": "139****0000"}


def submitted(account_id: str) -> AccountRegistrationSubmitted:
    """An account's first event, as a registration decides it (sealed owner)."""
    return AccountRegistrationSubmitted(
        account_id=account_id, entity_type="natural_person", identity=OWNER,
        profile={"name": "健康小站", "description": "d", "avatar_sha256": "ab" * 32},
        category="health", province="440000", operations_province="440000",
        contact_sealed="v1:c", contact_masked="138****8000", agreement_version="2025-01",
        legal_basis=["A2"])
