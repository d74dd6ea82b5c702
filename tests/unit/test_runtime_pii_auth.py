"""Personal data sealing and blind indexes; bearer tokens and roles; settings safety."""

from __future__ import annotations

import pytest

from libs.runtime.auth import AuthError, decode_token, issue_token
from libs.runtime.pii import Sealer, SealError, mask_id_number, mask_name, mask_phone
from libs.runtime.settings import DEV_AUTH_SECRET, ServiceSettings


def test_sealed_values_open_with_the_key_and_never_show_the_value():
    sealer = Sealer("k" * 40)
    sealed = sealer.seal("11010519491231002X", subject="a" * 32)
    assert "11010519491231002X" not in sealed
    assert sealed != sealer.seal("11010519491231002X", subject="a" * 32)  # a fresh nonce
    assert sealer.open(sealed, subject="a" * 32) == "11010519491231002X"
    with pytest.raises(SealError, match="does not open under key id 'k1'"):
        Sealer("other" * 10).open(sealed, subject="a" * 32)


def test_blind_index_matches_equal_values_only_and_depends_on_the_key():
    a, b = Sealer("k" * 40), Sealer("j" * 40)
    assert a.blind("ric", "11010519491231002x ") == a.blind("ric", "11010519491231002X")
    assert a.blind("ric", "11010519491231002X") != a.blind("phone", "11010519491231002X")
    assert a.blind("ric", "11010519491231002X") != b.blind("ric", "11010519491231002X")


def test_masks_hide_the_middle():
    assert mask_id_number("11010519491231002X") == "110105********002X"
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("+8613800138000") == "+86 138****8000"
    assert mask_name("张三丰") == "张**"


def test_tokens_carry_roles_and_province_and_refuse_tampering():
    token = issue_token("s" * 40, subject="gd-office", roles=["regulator"], province="440000")
    principal = decode_token("s" * 40, token)
    assert principal.has("regulator") and not principal.has("operator")
    assert principal.province == "440000"
    with pytest.raises(AuthError):
        decode_token("t" * 40, token)
    with pytest.raises(ValueError):
        issue_token("s" * 40, subject="x", roles=["root"])


def test_development_secrets_are_refused_outside_development(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://db/x")
    ServiceSettings(service="registration", port=1)  # development: defaults allowed
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="AUTH_SECRET"):
        ServiceSettings(service="registration", port=1)
    monkeypatch.setenv("AUTH_SECRET", "a" * 40)
    monkeypatch.setenv("PII_KEY", "b" * 40)
    assert ServiceSettings(service="registration", port=1).auth_secret != DEV_AUTH_SECRET
