"""A8.1: mainland mobile numbers and resident identity numbers (libs/identity).

The plain mobile forms (11 digits, bare or after +86) skip ``phonenumbers.parse``, and a
resident id already in its compact form skips python-stdnum's ``compact``; these tests hold
each fast path to what the full path answers.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import date

import phonenumbers
import pytest
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric

from libs.identity import IdentityNumberError, _birth_date, mobile_number, resident_id
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


TODAY = date(2026, 12, 2)


def _answer(number: str) -> tuple[str, str]:
    """("ok", the compact number) or ("refused", the detail)."""
    try:
        return "ok", resident_id(number, today=TODAY)
    except IdentityNumberError as exc:
        assert exc.code == "invalid-resident-id"
        return "refused", exc.detail


def _numbers() -> list[str]:
    """Resident ids right and wrong in every way: check character, length, birth date,
    region, case, spaces, full-width digits, other characters."""
    rng = random.Random(15)
    numbers = []
    for _ in range(4000):
        region = rng.choice(["110105", "440300", "310101", "999999", "000000", "440000"])
        born = f"{rng.randint(1880, 2030)}{rng.randint(0, 13):02d}{rng.randint(0, 32):02d}"
        body = region + born + f"{rng.randint(0, 999):03d}"
        good = body + ric.calc_check_digit(body + "0")
        numbers += [good, good[:-1] + rng.choice("0123456789X"), good.lower(), f" {good} ",
                    good[:-1], good + "1", good.replace(good[3], "\uff11", 1), good + "é",
                    good[:9] + "-" + good[9:]]
    return numbers


def test_a8_1_compact_resident_ids_answer_what_the_full_path_answers():
    # A surrounding space takes a number down the full path (python-stdnum's compact
    # strips it): the fast path must give the same answer, value or refusal, for each.
    outcomes = {"ok": 0, "refused": 0}
    for number in _numbers():
        got = _answer(number)
        assert got == _answer(f" {number} "), number
        outcomes[got[0]] += 1
    assert outcomes["ok"] > 1000 and outcomes["refused"] > 10000  # both answers covered


def test_a8_1_the_birth_date_is_python_stdnums():
    def born(birth_date, value: str) -> date | str:
        try:
            return birth_date(value)
        except stdnum_errors.InvalidComponent:
            return "invalid"

    compact = [n for n in _numbers() if len(n) == 18 and n[:17].isdigit()]
    assert len(compact) > 10000
    assert sum(born(_birth_date, n) == "invalid" for n in compact) > 1000  # impossible dates
    for value in compact:
        assert born(_birth_date, value) == born(ric.get_birth_date, value), value


@pytest.mark.parametrize("number", ["11010519491231002X", "11010519491231002x",
                                    " 11010519491231002X ", "１１０１０５１９４９１２３１００２Ｘ"])
def test_a8_1_a_resident_id_in_any_usual_form_becomes_its_compact_form(number):
    assert resident_id(number) == "11010519491231002X"


@pytest.mark.parametrize(("number", "detail"), [
    ("110105194912310021", "fails its check character"),
    ("1101051949123100", "has the wrong length"),
    ("11010519491331002" + ric.calc_check_digit("110105194913310020"),
     "impossible birth date"),
    ("99999919491231002" + ric.calc_check_digit("999999194912310020"), "address code"),
])
def test_a8_1_a_compact_resident_id_that_is_wrong_is_refused_with_its_reason(number, detail):
    with pytest.raises(IdentityNumberError, match=detail):
        resident_id(number)
