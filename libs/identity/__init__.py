"""Identity numbers of the real-name rules (A8.1): format checks with clear, stable codes.

- Resident identity numbers, GB 11643 (``stdnum.cn.ric``): 18 characters, a known
  region code, a real birth date, the ISO 7064 check character.
- Unified social credit codes, GB 32100 (``stdnum.cn.uscc``): registration authority,
  organization type, region, organization code and check character.
- Mainland mobile numbers (``phonenumbers``, region CN, type mobile).
- Province-level division codes, GB/T 2260 (``PROVINCES``).

These are format checks only: whether the number belongs to the person is the
verification service's multi-factor check.
"""

from __future__ import annotations

from datetime import date

import phonenumbers
from stdnum import exceptions as stdnum_errors
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


def resident_id(number: str, *, today: date | None = None) -> str:
    """The compact, validated resident identity number, or :class:`IdentityNumberError`."""
    try:
        value = ric.validate(number)
    except stdnum_errors.ValidationError as exc:
        raise _explain("resident-id", exc) from None
    born = ric.get_birth_date(value)
    if born > (today or date.today()):
        raise IdentityNumberError("invalid-resident-id",
                                  "the resident id has a birth date in the future")
    return value


def resident_id_region(number: str) -> str:
    """The province-level code (``440000``) of a validated resident identity number."""
    return number[:2] + "0000"


def social_credit_code(number: str) -> str:
    """The compact, validated unified social credit code, or :class:`IdentityNumberError`."""
    try:
        return uscc.validate(number)
    except stdnum_errors.ValidationError as exc:
        raise _explain("social-credit-code", exc) from None


def mobile_number(number: str) -> str:
    """A mainland mobile number in E.164 (``+8613800138000``), or :class:`IdentityNumberError`."""
    try:
        parsed = phonenumbers.parse(number, "CN")
    except phonenumbers.NumberParseException:
        raise IdentityNumberError("invalid-mobile-number",
                                  "the mobile number cannot be parsed") from None
    kind = phonenumbers.number_type(parsed)
    if (parsed.country_code != 86 or not phonenumbers.is_valid_number(parsed)
            or kind not in (phonenumbers.PhoneNumberType.MOBILE,
                            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)):
        raise IdentityNumberError("invalid-mobile-number",
                                  "the number is not a mainland China mobile number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def province(code: str) -> str:
    """A known province-level code, or :class:`IdentityNumberError` (``unknown-province``)."""
    if code not in PROVINCES:
        raise IdentityNumberError("unknown-province",
                                  f"{code!r} is not a GB/T 2260 province-level code")
    return code
