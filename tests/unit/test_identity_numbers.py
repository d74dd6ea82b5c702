"""A8.1: mainland mobile numbers, checked with phonenumbers' metadata (libs/identity).

The plain forms (11 digits, bare or after +86) skip ``phonenumbers.parse``; these tests
hold the fast path to what the full parse answers.
"""

from __future__ import annotations

import hashlib
import hmac
import random

import phonenumbers
import pytest

from libs.identity import IdentityNumberError, mobile_number
from libs.runtime.pii import Sealer


def _parsed_in_full(number: str) -> str | None:
    """What the check answered before the fast path: parse, then the number's type."""
    try:
        parsed = phonenumbers.parse(number, "CN")
    except phonenumbers.NumberParseException:
        return None
    if (parsed.country_code != 86 or not phonenumbers.is_valid_number(parsed)
            or phonenumbers.number_type(parsed) not in (
                phonenumbers.PhoneNumberType.MOBILE,
                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _checked(number: str) -> str | None:
    try:
        return mobile_number(number)
    except IdentityNumberError as exc:
        assert exc.code == "invalid-mobile-number"
        return None


@pytest.mark.parametrize("number", ["13800138000", "+8613800138000", "+86 138 0013 8000",
                                    "138-0013-8000", "008613800138000", "19912345678"])
def test_a8_1_mobile_numbers_in_any_usual_form_become_e164(number):
    assert mobile_number(number) == "+86" + number.replace(" ", "").replace("-", "")[-11:]


@pytest.mark.parametrize("number", [
    "12345678901",      # no mobile range starts 12
    "1380013800",       # ten digits
    "138001380001",     # twelve digits
    "+85291234567",     # Hong Kong
    "+12025550123",     # not China
    "01012345678",      # a Beijing fixed line
    "not a number",
])
def test_a8_1_numbers_that_are_not_mainland_mobiles_are_refused(number):
    with pytest.raises(IdentityNumberError) as err:
        mobile_number(number)
    assert err.value.code == "invalid-mobile-number"


def test_a8_1_plain_forms_answer_what_the_full_parse_answers_for_every_5_digit_prefix():
    rnd = random.Random(20261202)
    accepted = 0
    for prefix in range(10_000, 20_000):
        number = f"{prefix}{rnd.randrange(10**6):06d}"
        for form in (number, "+86" + number):
            expected = _parsed_in_full(form)
            assert _checked(form) == expected, form
            accepted += expected is not None
    # the comparison covered both answers, not only refusals
    assert 5_000 < accepted < 20_000


def test_blind_index_is_the_hmac_sha256_hex_prefix_it_always_was():
    sealer = Sealer("a-test-secret-of-enough-length-000")
    root = hashlib.sha256(b"a-test-secret-of-enough-length-000").digest()
    key = hmac.new(root, b"blind", hashlib.sha256).digest()
    expected = hmac.new(key, b"phone:+8613800138000", hashlib.sha256).hexdigest()[:32]
    assert sealer.blind("phone", " +8613800138000 ") == expected
