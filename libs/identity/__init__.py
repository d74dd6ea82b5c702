"""Identity numbers of the real-name rules (A8.1): format checks with clear, stable codes.

- Resident identity numbers, GB 11643 (``stdnum.cn.ric``): 18 characters, an address
  code that GB/T 2260 has listed at some time (python-stdnum's code history), a real
  birth date not in the future, the ISO 7064 check character. The address code is not
  checked against the birth year: it is assigned when the number is issued, not at birth
  (docs/decisions/0025-resident-id-address-codes.md).
- Full-width characters (``１１０１…Ｘ``, what a Chinese input method types) are read as
  their half-width forms; any other character outside ASCII is refused with a message
  that says to use the digits 0-9 and X.
- Unified social credit codes, GB 32100 (``stdnum.cn.uscc``): registration authority,
  organization type, region, organization code and check character.
- Mainland mobile numbers (``phonenumbers``, region CN, type mobile).
- Province-level division codes, GB/T 2260 (``PROVINCES``).

These are format checks only: whether the number belongs to the person is the
verification service's multi-factor check.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import cache

import phonenumbers
from stdnum import exceptions as stdnum_errors
from stdnum import numdb
from stdnum.cn import ric, uscc

# GB/T 2260 province-level divisions (the filing and regulator scope of Art. 3, A7.1).
PROVINCES: dict[str, str] = {
    "110000": "北京市", "120000": "天津市", "130000": "河北省", "140000": "山西省",
    "150000": "内蒙古自治区", "210000": "辽宁省", "220000": "吉林省", "230000": "黑龙江省",
    "310000": "上海市", "320000": "江苏省", "330000": "浙江省", "340000": "安徽省",
    "350000": "福建省", "360000": "江西省", "370000": "山东省", "410000": "河南省",
    "420000": "湖北省", "430000": "湖南省", "440000": "广东省", "450000": "广西壮族自治区",
    "460000": "海南省", "500000": "重庆市", "510000": "四川省", "520000": "贵州省",
    "530000": "云南省", "540000": "西藏自治区", "610000": "陕西省", "620000": "甘肃省",
    "630000": "青海省", "640000": "宁夏回族自治区", "650000": "新疆维吾尔自治区",
    "710000": "台湾省", "810000": "香港特别行政区", "820000": "澳门特别行政区",
}


# No applicant was born before it (the longest verified life: 122 years).
EARLIEST_BIRTH = date(1900, 1, 1)


class IdentityNumberError(ValueError):
    """A number that cannot be what it claims to be; ``code`` is stable for clients."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _explain(kind: str, exc: stdnum_errors.ValidationError) -> IdentityNumberError:
    reason = {
        stdnum_errors.InvalidLength: "has the wrong length",
        stdnum_errors.InvalidFormat: "has characters that are not allowed where they are",
        stdnum_errors.InvalidChecksum: "fails its check character",
        stdnum_errors.InvalidComponent: "has an impossible birth date or an unknown region",
    }.get(type(exc), "is not valid")
    return IdentityNumberError(f"invalid-{kind}", f"the {kind.replace('-', ' ')} {reason}")


def half_width(kind: str, number: str) -> str:
    """``number`` with full-width forms (U+FF01-FF5E, the ideographic space) read as ASCII;
    any other non-ASCII character is refused with a message saying what to type."""
    if number.isascii():  # what nearly every request sends: nothing to read
        return number
    text = "".join(unicodedata.normalize("NFKC", c)
                   if unicodedata.decomposition(c).startswith("<wide>") else c for c in number)
    odd = next((c for c in text if not c.isascii()), None)
    if odd is not None:
        raise IdentityNumberError(
            f"invalid-{kind}",
            f"the {kind.replace('-', ' ')} contains {odd!r}: type it with the half-width "
            "digits 0-9 and the letter X")
    return text


@cache
def address_code_listed(code: str) -> bool:
    """Whether GB/T 2260 has ever listed ``code`` as an address code, at any level and in
    any period of python-stdnum's code history (``stdnum/cn/loc.dat``)."""
    found = {k for _, props in numdb.get("cn/loc").info(code) for k in props}
    return len(code) == 6 and code.isdigit() and {"province", "county"} <= found


# The form nearly every request sends (18 ASCII characters, the last a digit or X): already
# compact. python-stdnum's ``compact`` cleans it character by character, and its
# ``get_birth_date`` compacts it again: two thirds of the check's time.
_COMPACT_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")


def _birth_date(value: str) -> date:
    """The birth date of a compact resident id (``ric.get_birth_date`` without compacting
    it again)."""
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise stdnum_errors.InvalidComponent() from None


def resident_id(number: str, *, today: date | None = None) -> str:
    """The compact, validated resident identity number, or :class:`IdentityNumberError`.

    Length, digits, check character, a real birth date not in the future, and an address
    code GB/T 2260 has listed at some time (ADR 0025). python-stdnum's own
    ``ric.validate`` is not used: it refuses a code created after the birth year and
    raises ``KeyError`` on a code it knows only as a prefix.
    """
    bad = "invalid-resident-id"
    try:
        value = (number if _COMPACT_RESIDENT_ID.fullmatch(number)
                 else ric.compact(half_width("resident-id", number)))
        if len(value) != 18:
            raise stdnum_errors.InvalidLength()
        if not value[:-1].isdigit() or not (value[-1].isdigit() or value[-1] == "X"):
            raise stdnum_errors.InvalidFormat()
        if value[-1] != ric.calc_check_digit(value):
            raise stdnum_errors.InvalidChecksum()
        born = _birth_date(value)
    except stdnum_errors.ValidationError as exc:
        raise _explain("resident-id", exc) from None
    if born > (today or date.today()):
        raise IdentityNumberError(bad, "the resident id has a birth date in the future")
    if born < EARLIEST_BIRTH:
        raise IdentityNumberError(bad, "the resident id has a birth date before 1900")
    if not address_code_listed(value[:6]):
        raise IdentityNumberError(bad, f"the resident id's address code {value[:6]} is not a "
                                       "GB/T 2260 region code")
    return value


def resident_id_region(number: str) -> str:
    """The province-level code (``440000``) of a validated resident identity number."""
    return number[:2] + "0000"


def social_credit_code(number: str) -> str:
    """The compact, validated unified social credit code, or :class:`IdentityNumberError`."""
    try:
        return uscc.validate(half_width("social-credit-code", number))
    except stdnum_errors.ValidationError as exc:
        raise _explain("social-credit-code", exc) from None


# A mobile number as nearly every request sends it: 11 digits, bare or after +86.
_PLAIN_MOBILE = re.compile(r"(?:\+86)?(1[0-9]{10})")
_MOBILE_TYPES = (phonenumbers.PhoneNumberType.MOBILE,
                 phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def mobile_number(number: str) -> str:
    """A mainland mobile number in E.164 (``+8613800138000``), or :class:`IdentityNumberError`.

    The plain forms (``13800138000``, ``+8613800138000``) skip ``phonenumbers.parse``,
    whose normalising passes are most of the cost: they are the number it would give
    (country code 86, the 11 digits), and the type is read from its metadata either way
    (tests/unit/test_identity_numbers.py compares the two paths over every 5-digit prefix).
    ``number_type`` is ``UNKNOWN`` for a number that is not valid, which is the test
    ``is_valid_number`` makes, so it is not made twice.
    """
    plain = _PLAIN_MOBILE.fullmatch(number)
    if plain is not None:
        parsed = phonenumbers.PhoneNumber(country_code=86, national_number=int(plain[1]))
    else:
        try:
            parsed = phonenumbers.parse(number, "CN")
        except phonenumbers.NumberParseException:
            raise IdentityNumberError("invalid-mobile-number",
                                      "the mobile number cannot be parsed") from None
    if parsed.country_code != 86 or phonenumbers.number_type(parsed) not in _MOBILE_TYPES:
        raise IdentityNumberError("invalid-mobile-number",
                                  "the number is not a mainland China mobile number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def province(code: str) -> str:
    """A known province-level code, or :class:`IdentityNumberError` (``unknown-province``)."""
    if code not in PROVINCES:
        raise IdentityNumberError("unknown-province",
                                  f"{code!r} is not a GB/T 2260 province-level code")
    return code
