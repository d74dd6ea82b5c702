"""A8.1: identity formats against published sample numbers, and the multi-factor rule."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from libs import identity as ids
from services.verification.adapters import LocalIdentityProvider
from services.verification.rules import (
    CarrierAnswer,
    IdentityAnswers,
    decide_identity,
    identity_retry_delay,
)

# Published valid resident identity numbers:
# - 11010519491231002X: the worked example of GB 11643-1999 (Citizen identification
#   number), Appendix; also quoted on zh.wikipedia.org/wiki/中华人民共和国公民身份号码.
# - 360426199101010071: python-stdnum's own doctest in stdnum/cn/ric.py.
PUBLISHED_RIC = ["11010519491231002X", "360426199101010071"]
# Published valid USCC: python-stdnum's doctest in stdnum/cn/uscc.py (also its spaced form).
PUBLISHED_USCC = ["91110000600037341L", "9 1 110000 600037341L"]


def _with_check(body17: str) -> str:
    return body17 + ric.calc_check_digit(body17 + "0")


@pytest.mark.parametrize("number", PUBLISHED_RIC)
def test_A8_1_published_resident_ids_are_valid(number):
    assert ids.resident_id(number) == number


@pytest.mark.parametrize("number,why", [
    ("11010519491231002Y", "check character changed"),
    ("110105194912310021", "check character changed (digit)"),
    ("110105194913310021", "impossible date 1949-13-31, check recomputed"),
    ("110105194902300020", "impossible date 1949-02-30, check recomputed"),
    ("990105194912310023", "unknown region 990105, check recomputed"),
    ("11010519491231002", "17 characters"),
    ("440524188001010014", "widely published example: born 1880, before anyone alive"),
    (_with_check("11030019900101001"), "110300: never a GB/T 2260 code (python-stdnum "
                                       "raised KeyError on it)"),
    (_with_check("44059919900101001"), "440599: unknown county under a known prefecture"),
    (_with_check("11010520300101001"), "born 2030: in the future"),
    ("1101051949123100٢X", "an Arabic-Indic digit"),
])
def test_A8_1_invalid_resident_ids_are_refused_with_a_code(number, why):
    with pytest.raises(ids.IdentityNumberError) as err:
        ids.resident_id(number)
    assert err.value.code == "invalid-resident-id", why


# A8.1: the address code is assigned when the number is issued, not at birth (ADR 0025).
@pytest.mark.parametrize("number,why", [
    (_with_check("11011219700101001"), "通州区 110112 [1997-]: born 1970, number issued later"),
    (_with_check("11011519500101001"), "大兴区 110115 [2001-]: born 1950"),
    (_with_check("11010319900101001"), "崇文区 110103 [-2010]: the code outlived its county, "
                                       "the number did not change"),
    (_with_check("44052419600101001"), "潮阳县 440524 [1983-1993], born 1960"),
])
def test_A8_1_address_code_created_after_birth_is_accepted(number, why):
    assert ids.resident_id(number) == number, why


def test_A8_1_full_width_characters_are_read_as_half_width():
    # what a Chinese input method types; python-stdnum maps the digits but not Ｘ
    assert ids.resident_id("１１０１０５１９４９１２３１００２Ｘ") == "11010519491231002X"
    assert ids.resident_id("11010519491231002x") == "11010519491231002X"
    assert ids.social_credit_code("９１１１００００６０００３７３４１Ｌ") == "91110000600037341L"


def test_A8_1_other_unicode_digits_get_a_message_naming_half_width_digits():
    with pytest.raises(ids.IdentityNumberError) as err:
        ids.resident_id("1101051949123100٢X")
    assert err.value.code == "invalid-resident-id" and "half-width" in err.value.detail


_TRICKY_CHARS = "0123456789Xx Ｘ０９-" + "٢①²\u00a0"
_regions = st.one_of(st.sampled_from(["110105", "110112", "110300", "440524", "440599",
                                      "990105", "000000", "810000", "710000"]),
                     st.from_regex(r"\A[0-9]{6}\Z"),
                     st.text(alphabet=_TRICKY_CHARS, min_size=0, max_size=7))
_dates = st.one_of(st.dates(date(1880, 1, 1), date(2040, 12, 31)).map(
    lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}"),
                   st.from_regex(r"\A[0-9]{8}\Z"))
_checks = st.one_of(st.sampled_from(list("0123456789XxＸ")), st.text(max_size=2))


@given(region=_regions, born=_dates, serial=st.from_regex(r"\A[0-9]{3}\Z"), check=_checks,
       right_check=st.booleans())
def test_A8_1_property_any_region_date_and_check_is_a_number_or_a_coded_refusal(
        region, born, serial, check, right_check):
    body = f"{region}{born}{serial}"
    if right_check and len(body) == 17 and body.isascii() and body.isdigit():
        check = ric.calc_check_digit(body + "0")
    try:
        value = ids.resident_id(body + check)
    except ids.IdentityNumberError as exc:
        assert exc.code == "invalid-resident-id" and exc.detail
    else:
        assert len(value) == 18 and value[:17].isdigit()


@pytest.mark.parametrize("number", PUBLISHED_USCC)
def test_A8_1_published_social_credit_codes_are_valid(number):
    assert ids.social_credit_code(number) == "91110000600037341L"


@pytest.mark.parametrize("number", ["91110000600037341A",  # check character changed
                                    "A1110000600037341L",  # stdnum's own invalid example
                                    "12345"])
def test_A8_1_invalid_social_credit_codes_are_refused(number):
    with pytest.raises(ids.IdentityNumberError) as err:
        ids.social_credit_code(number)
    assert err.value.code == "invalid-social-credit-code"


@pytest.mark.parametrize("number", ["12345", "+14155550100", "010-12345678"])
def test_A8_1_only_mainland_mobile_numbers(number):
    with pytest.raises(ids.IdentityNumberError):
        ids.mobile_number(number)


def test_A8_1_mobile_number_in_e164():
    assert ids.mobile_number("139 1234 5678") == "+8613912345678"


# -- the multi-factor rule ----------------------------------------------------------------------
MATCH = CarrierAnswer("match", 36)


def test_A8_1_two_independent_factors_verify_a_natural_person():
    d = decide_identity("natural_person", IdentityAnswers("match", MATCH), extra=False)
    assert d.verified and set(d.factors) == {"id_name", "phone_owner", "phone_tenure"}


def test_A8_1_one_factor_and_an_unknown_is_no_verdict_but_retryable():
    d = decide_identity("natural_person", IdentityAnswers("match", CarrierAnswer("unknown")),
                        extra=False)
    assert not d.verified and d.retryable and d.reasons == ("provider-unknown",)


@pytest.mark.parametrize("answers", [
    IdentityAnswers("unavailable", CarrierAnswer("match", 1)),  # one factor: no verdict
    IdentityAnswers("match", CarrierAnswer("unavailable")),
    IdentityAnswers("unavailable", CarrierAnswer("unavailable")),
])
def test_A8_1_an_unavailable_provider_is_never_a_failed_identity(answers):
    d = decide_identity("natural_person", answers, extra=False)
    assert not d.verified and d.retryable and d.reasons == ("provider-unavailable",)


def test_A8_1_a_mismatch_decides_even_while_another_provider_is_unavailable():
    d = decide_identity("natural_person", IdentityAnswers("mismatch",
                                                         CarrierAnswer("unavailable")),
                        extra=False)
    assert not d.verified and not d.retryable and d.reasons == ("id-name-mismatch",)


def test_A8_1_enough_factors_verify_while_a_third_is_unavailable():
    d = decide_identity("legal_person", IdentityAnswers(
        business="match", representative="match", carrier=CarrierAnswer("unavailable")),
        extra=False)
    assert d.verified and d.level == "two_factor"


def test_A8_1_identity_retry_waits_double_with_jitter_up_to_the_cap():
    assert identity_retry_delay(1, first=30, cap=1800, jitter=1.0) == 30
    assert identity_retry_delay(3, first=30, cap=1800, jitter=1.0) == 120
    assert identity_retry_delay(3, first=30, cap=1800, jitter=0.0) == 60
    assert identity_retry_delay(20, first=30, cap=1800, jitter=1.0) == 1800


@pytest.mark.parametrize("answers,reason", [
    (IdentityAnswers("mismatch", MATCH), "id-name-mismatch"),
    (IdentityAnswers("match", CarrierAnswer("mismatch")), "phone-not-owned"),
])
def test_A8_1_a_disagreeing_factor_is_a_false_identity(answers, reason):
    d = decide_identity("natural_person", answers, extra=False)
    assert not d.verified and reason in d.reasons


def test_A10_1_extra_verification_needs_the_stronger_level():
    new_phone = IdentityAnswers("match", CarrierAnswer("match", 1))
    assert decide_identity("natural_person", new_phone, extra=False).verified
    strict = decide_identity("natural_person", new_phone, extra=True)
    assert not strict.verified and strict.reasons == ("extra-verification-insufficient",)
    ok = decide_identity("natural_person", IdentityAnswers("match", MATCH), extra=True)
    assert ok.verified and ok.level == "three_factor"


def test_A8_1_organizations_need_the_business_four_factor_check():
    ok = decide_identity("legal_person", IdentityAnswers(business="match",
                                                         representative="match",
                                                         carrier=MATCH), extra=False)
    assert ok.verified and ok.level == "four_factor"
    no_registry = decide_identity("legal_person", IdentityAnswers(
        business="unknown", representative="match", carrier=MATCH), extra=False)
    assert not no_registry.verified and no_registry.retryable  # asked again, then a person
    assert no_registry.reasons == ("provider-unknown",)
    false = decide_identity("unincorporated_organization", IdentityAnswers(
        business="mismatch", representative="match", carrier=MATCH), extra=False)
    assert false.reasons == ("business-registration-mismatch",)


async def test_A8_1_local_provider_conventions_are_deterministic():
    p = LocalIdentityProvider()
    assert await p.public_security(name="张三", id_number="x") == "match"
    assert await p.public_security(name="冒用张三", id_number="x") == "mismatch"
    assert (await p.carrier(name="张三", id_number="x", phone="+8613912340000")).outcome \
        == "mismatch"
    assert (await p.carrier(name="张三", id_number="x", phone="+8613912349999")).outcome \
        == "unknown"
    assert (await p.carrier(name="张三", id_number="x", phone="+8613912341111")).tenure_months \
        == 1
    assert await p.business(company_name="某公司", uscc="x", representative_name="假冒李四",
                            representative_id="y") == "mismatch"


# -- production uses the HTTP adapters (the double stays in development) -------------------
_PRODUCTION = {"environment": "production", "auth_secret": "a" * 40, "pii_key": "p" * 40,
               "database_url": "postgresql+asyncpg://verification@db.example/verification"}
_ENDPOINTS = {f"{c}_{k}": f"https://{c}.example/v1" if k == "url" else f"cred-{c}"
              for c in ("public_security", "carrier", "business_registry")
              for k in ("url", "credential")}


def test_A8_1_production_asks_the_http_providers():
    from services.verification.adapters import HttpIdentityProvider
    from services.verification.bootstrap import identity_provider
    from services.verification.settings import Settings

    settings = Settings(**_PRODUCTION, identity_provider="http", **_ENDPOINTS)
    provider = identity_provider(settings)
    assert isinstance(provider, HttpIdentityProvider)
    carrier = provider.checks.carrier_check.endpoint
    assert carrier.url == "https://carrier.example/v1" and carrier.credential == "cred-carrier"
    assert "cred-carrier" not in repr(settings)  # credentials are secrets


@pytest.mark.parametrize("provider,missing", [("local", None), ("http", "carrier_url")])
def test_A8_1_production_refuses_the_double_and_unconfigured_providers(provider, missing):
    from pydantic import ValidationError

    from services.verification.settings import Settings

    endpoints = {k: v for k, v in _ENDPOINTS.items() if k != missing}
    with pytest.raises(ValidationError) as err:
        Settings(**_PRODUCTION, identity_provider=provider, **endpoints)
    assert ("VERIFICATION_CARRIER_URL" if missing else "test double") in str(err.value)
