"""A8.1: identity formats against published sample numbers, and the multi-factor rule."""

from __future__ import annotations

import pytest

from libs import identity as ids
from services.verification.adapters import LocalIdentityProvider
from services.verification.rules import CarrierAnswer, IdentityAnswers, decide_identity

# Published valid resident identity numbers:
# - 11010519491231002X: the worked example of GB 11643-1999 (Citizen identification
#   number), Appendix; also quoted on zh.wikipedia.org/wiki/中华人民共和国公民身份号码.
# - 360426199101010071: python-stdnum's own doctest in stdnum/cn/ric.py.
PUBLISHED_RIC = ["11010519491231002X", "360426199101010071"]
# Published valid USCC: python-stdnum's doctest in stdnum/cn/uscc.py (also its spaced form).
PUBLISHED_USCC = ["91110000600037341L", "9 1 110000 600037341L"]


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
    ("440524188001010014", "widely published example whose county code 440524 is not in "
                           "stdnum's GB/T 2260 table: refused"),
])
def test_A8_1_invalid_resident_ids_are_refused_with_a_code(number, why):
    with pytest.raises(ids.IdentityNumberError) as err:
        ids.resident_id(number)
    assert err.value.code == "invalid-resident-id", why


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


def test_A8_1_one_factor_is_not_enough():
    d = decide_identity("natural_person", IdentityAnswers("match", CarrierAnswer("unknown")),
                        extra=False)
    assert not d.verified and d.reasons == ("insufficient-factors",)


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
    assert not no_registry.verified
    assert no_registry.reasons == ("business-registration-unconfirmed",)
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
