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


@pytest.mark.parametrize("province", [None, "", "440100", "990000", "44000", 440000])
def test_A3_a_regulator_token_without_a_province_level_code_is_refused(province):
    import jwt

    from libs.runtime.auth import ALGORITHM, ISSUER
    claims = {"sub": "r", "iss": ISSUER, "exp": 4102444800, "roles": ["regulator", "operator"]}
    if province is not None:
        claims["province"] = province
    token = jwt.encode(claims, "s" * 40, algorithm=ALGORITHM)
    with pytest.raises(AuthError) as refused:
        decode_token("s" * 40, token)
    assert refused.value.code == "regulator-province-invalid" and refused.value.status == 401
    with pytest.raises(ValueError):
        issue_token("s" * 40, subject="r", roles=["regulator"], province=province)


def test_A3_the_national_office_and_provinces_are_valid_regulator_scopes():
    from libs.runtime.scope import ReadScope

    national = decode_token("s" * 40, issue_token("s" * 40, subject="n", roles=["regulator"],
                                                  province="000000"))
    assert ReadScope(national).province is None and ReadScope(national).admits("440000")
    mixed = decode_token("s" * 40, issue_token("s" * 40, subject="m",
                                               roles=["operator", "regulator"],
                                               province="440000"))
    scope = ReadScope(mixed)
    assert scope.province == "440000" and not scope.admits("110000")
