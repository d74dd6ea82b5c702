"""Verification's business rules, pure: the multi-factor identity rule (A8.1), what a
field needs (A9.1, A5), and the profile consistency rules (A8.2, :func:`check_profile`).

A profile (name, description, avatar) is checked against who registered it (entity type,
field, identity) and against the protected-name registry. Every failed rule is a finding
with a stable ``code`` (docs/problems.md lists them); no finding means the profile passes.
Matching of names and logos is ``libs.screening``'s; this module decides what a match means.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, Protocol

from libs.identity import PROVINCES
from libs.screening import LogoIndex, NameIndex, normalise

from .domain import NATURAL, IdentityDecision

# -- identity (A8.1) -------------------------------------------------------------------------
# "unavailable": the provider gave no answer (timeout, 5xx, breaker open): never a verdict
Outcome = Literal["match", "mismatch", "unknown", "unavailable"]
LEVELS = {2: "two_factor", 3: "three_factor", 4: "four_factor"}
_MISMATCH_REASON = {"id_name": "id-name-mismatch", "phone_owner": "phone-not-owned",
                    "business_registration": "business-registration-mismatch",
                    "representative_id_name": "representative-mismatch"}


@dataclass(frozen=True)
class CarrierAnswer:
    outcome: Outcome
    tenure_months: int | None = None


@dataclass(frozen=True)
class IdentityAnswers:
    """What the providers said; ``None`` where a check does not apply to the entity."""

    public_security: Outcome | None = None
    carrier: CarrierAnswer | None = None
    business: Outcome | None = None
    representative: Outcome | None = None


def decide_identity(entity_type: str, answers: IdentityAnswers, *, extra: bool,
                    min_tenure_months: int = 6) -> IdentityDecision:
    """Multi-factor: at least two independent factors agree and none disagrees; with extra
    verification (A10.1) at least three, the third being the phone's tenure.

    A disagreeing factor is a false or borrowed identity whatever the others say;
    ``unknown`` answers count neither way. Level = the number of agreeing factors.
    Not enough agreeing factors while a check answered ``unknown`` or ``unavailable`` is
    no verdict: the decision is ``retryable`` (asked again later, then a person reviews
    it; ADR 0026).
    """
    outcomes: dict[str, Outcome | None] = {
        "id_name": answers.public_security if entity_type == NATURAL else None,
        "business_registration": answers.business if entity_type != NATURAL else None,
        "representative_id_name": answers.representative if entity_type != NATURAL else None,
        "phone_owner": answers.carrier.outcome if answers.carrier else None,
    }
    mismatches = [_MISMATCH_REASON[f] for f, o in outcomes.items() if o == "mismatch"]
    if mismatches:
        return IdentityDecision(False, None, (), tuple(mismatches))
    agreed = [f for f, o in outcomes.items() if o == "match"]
    inconclusive = sorted({f"provider-{o}" for o in outcomes.values()
                           if o in ("unknown", "unavailable")})
    carrier = answers.carrier
    if carrier and carrier.outcome == "match" and (carrier.tenure_months or 0) >= min_tenure_months:
        agreed.append("phone_tenure")
    needed = 3 if extra else 2
    if inconclusive and (len(agreed) < needed or (entity_type != NATURAL
                                                  and "business_registration" not in agreed)):
        return IdentityDecision(False, None, tuple(agreed), tuple(inconclusive), retryable=True)
    if entity_type != NATURAL and "business_registration" not in agreed:
        return IdentityDecision(False, None, tuple(agreed), ("business-registration-unconfirmed",))
    if len(agreed) < needed:
        reason = "extra-verification-insufficient" if extra and len(agreed) >= 2 \
            else "insufficient-factors"
        return IdentityDecision(False, None, tuple(agreed), (reason,))
    return IdentityDecision(True, LEVELS[min(len(agreed), 4)], tuple(agreed), ())


def identity_retry_delay(attempt: int, *, first: float, cap: float, jitter: float) -> float:
    """Seconds until an identity check without a verdict is asked again (ADR 0026):
    ``first`` doubled per attempt up to ``cap``, times a jitter factor in [0.5, 1] (given,
    so this stays pure) so that checks deferred by one outage do not return together."""
    return min(cap, first * 2 ** max(0, attempt - 1)) * (0.5 + jitter / 2)


# -- qualifications (A9.1, A5) ---------------------------------------------------------------
# Fields that need an approved professional qualification; news needs a permit.
PROFESSIONAL = frozenset({"economics", "education", "health", "justice"})
NEWS = frozenset({"news"})


def qualification_needs(category: str) -> tuple[str, ...]:
    """What a field needs before the account is verified (A9.1, A5)."""
    if category in PROFESSIONAL:
        return ("professional",)
    if category in NEWS:
        return ("news_permit",)
    return ()


# -- the profile (A8.2) ----------------------------------------------------------------------

# Names only state bodies (or, for some, news media) may use.
NATIONAL_TERMS = ("中国", "中华", "中央", "全国", "国家")
NEWS_TERMS = ("新闻", "报道")
STATE_BODY_TERMS = ("人民政府", "政府", "委员会", "人民法院", "法院", "检察院", "公安", "派出所",
                    "办公厅", "卫健委", "发改委", "纪委", "监委", "党委", "政协", "人大常委会",
                    "税务", "海关", "武警", "解放军", "部队")
# Words ending in 局 that are not offices (饭局: a dinner; 格局: a pattern...).
NOT_AN_OFFICE = ("饭局", "棋局", "格局", "布局", "结局", "骗局", "赌局", "时局", "大局", "开局",
                 "残局", "牌局", "变局", "终局", "破局", "入局", "出局", "搅局", "僵局")
MEDIA_SUFFIXES = ("日报", "晚报", "早报", "时报", "商报", "电视台", "广播电台", "电台", "通讯社",
                  "新闻社", "新闻网", "卫视", "杂志社", "报社", "融媒体中心")
ORGANIZATION_WORDS = ("有限公司", "公司", "集团", "协会", "学会", "基金会", "研究院", "研究所",
                      "医院", "学校", "大学", "学院", "银行", "商会", "联合会", "官方")
# Region and landmark names, abused when a name presents itself as their official voice.
LANDMARKS = ("天安门", "中南海", "人民大会堂", "故宫", "紫禁城", "长城", "外滩", "西湖", "布达拉宫")
CITIES = ("广州", "深圳", "杭州", "南京", "武汉", "成都", "西安", "苏州", "青岛", "厦门", "长沙",
          "郑州", "沈阳", "大连", "宁波", "济南", "哈尔滨", "昆明", "合肥", "福州")
OFFICIAL_VOICE = ("发布", "官方", "政务", "头条", "在线", "资讯", "热线", "之声", "通报", "公告",
                  "官微", "网信")
_STRIP = ("特别行政区", "维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市")


def _short(province: str) -> str:
    for suffix in _STRIP:
        province = province.removesuffix(suffix)
    return province


PLACES = tuple(sorted({*LANDMARKS, *CITIES, *(_short(p) for p in PROVINCES.values())},
                      key=len, reverse=True))

_CONTACT = [
    ("phone", re.compile(r"(?<!\d)(?:\+?86[-\s]?)?1[3-9]\d(?:[-\s]?\d){8}(?!\d)")),
    ("phone", re.compile(r"(?<!\d)0\d{2,3}-\d{7,8}(?!\d)")),
    ("wechat", re.compile(r"(?:微信|威信|薇信|徽信|v信|vx|wx|weixin|wechat|加v|\+v)"
                          r"\s*(?:号|id)?\s*[:：]?\s*[a-z][-_a-z0-9]{5,19}")),
    ("qq", re.compile(r"(?:qq|扣扣|企鹅)\s*(?:号|群)?\s*[:：]?\s*\d{5,11}")),
    ("url", re.compile(r"(?:https?://|www\.)\S+|[a-z0-9-]+\.(?:com|cn|net|org|top|xyz|cc|io|vip)"
                       r"\b")),
    ("email", re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")),
]
_QR = re.compile(r"二维码|扫码|扫一扫|qr\s*code|qrcode")


@dataclass(frozen=True)
class Subject:
    """Who runs the account, as far as the name rules care."""

    entity_type: str
    category: str
    holder_blinds: frozenset[str] = frozenset()  # blind indexes of its ID number / USCC
    news_permit: bool = False

    @property
    def state_body(self) -> bool:
        return self.entity_type == "legal_person" and self.category == "government_affairs"

    @property
    def news_media(self) -> bool:
        return self.entity_type != NATURAL and (self.category == "news" or self.news_permit)


@dataclass(frozen=True)
class Policy:
    threshold: float = 0.85
    logo_max_distance: int = 8


@dataclass(frozen=True)
class ProtectedEntry:
    protected_id: str
    name: str
    kind: str
    holder_blind: str | None
    aliases: tuple[str, ...] = ()


class ProtectedLookup(Protocol):
    """What the name rules need of the protected-name registry (adapters.ProtectedRegistry,
    kept in memory from the registry's events)."""

    names: NameIndex
    logos: LogoIndex

    @property
    def words(self) -> dict[str, str]:
        """Normalised prohibited word -> the word as listed."""
        ...

    def entry_of(self, match_id: str) -> ProtectedEntry | None: ...


def finding(field_: str, code: str, detail: str, matched: str | None = None,
            score: float | None = None) -> dict:
    return {"field": field_, "code": code, "detail": detail, "matched": matched,
            "score": None if score is None else round(score, 3)}


def _plain(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def check_profile(*, name: str, description: str, avatar_phash: str | None, subject: Subject,
                  registry: ProtectedLookup, policy: Policy = Policy()) -> list[dict]:
    """Every finding against the profile; an empty list means it passes (A8.2)."""
    found: list[dict] = []
    found += _protected_names(name, description, subject, registry, policy)
    found += _protected_logo(avatar_phash, subject, registry, policy)
    found += _prohibited_words(name, description, registry)
    found += strict_name_rules(name, subject)
    found += _contact_details(name, description)
    return found


def _protected_names(name: str, description: str, subject: Subject,
                     registry: ProtectedLookup, policy: Policy) -> list[dict]:
    hits: dict[str, dict] = {}

    def consider(field_: str, match, how: str) -> None:
        entry = registry.entry_of(match.id)
        if entry is None or entry.protected_id in hits:
            return
        if entry.holder_blind and entry.holder_blind in subject.holder_blinds:
            return  # the holder itself uses its name
        hits[entry.protected_id] = finding(
            field_, f"protected-name-{how}",
            f"the {field_} uses the protected {entry.kind} name {entry.name!r} "
            f"({match.kind} match) and the account's identity is not its holder",
            matched=entry.name, score=match.score)

    for m in registry.names.similar(name, threshold=policy.threshold):
        consider("name", m, "similar")
    for m in registry.names.contained_in(name):
        consider("name", m, "contained")
    if description:
        for m in registry.names.contained_in(description):
            entry = registry.entry_of(m.id)
            # a famous person mentioned in a description is not impersonation; an organ,
            # enterprise or medium presented there is
            if entry is not None and entry.kind != "person":
                consider("description", m, "contained")
    return list(hits.values())


def _protected_logo(phash: str | None, subject: Subject, registry: ProtectedLookup,
                    policy: Policy) -> list[dict]:
    if not phash or not len(registry.logos):
        return []
    out = []
    for logo_id, distance in registry.logos.nearest(phash, policy.logo_max_distance):
        entry = registry.entry_of(logo_id)
        if entry is None or (entry.holder_blind and entry.holder_blind in subject.holder_blinds):
            continue
        out.append(finding("avatar", "protected-logo",
                           f"the avatar looks like the logo of {entry.name!r} "
                           f"({distance} bits apart)", matched=entry.name,
                           score=1 - distance / 64))
        break
    return out


def _prohibited_words(name: str, description: str, registry: ProtectedLookup) -> list[dict]:
    out = []
    for field_, text in (("name", name), ("description", description)):
        norm = normalise(text)
        for key, word in registry.words.items():
            if key in norm:
                out.append(finding(field_, "prohibited-word",
                                   f"the {field_} contains the prohibited word {word!r}", word))
    return out


def strict_name_rules(name: str, subject: Subject) -> list[dict]:
    """The strict review of names: national terms, state bodies, news media, news terms,
    places presented as their official voice, and persons presenting as organizations."""
    norm = normalise(name)
    out = []
    national = [t for t in NATIONAL_TERMS if t in norm]
    if national and not (subject.state_body or subject.news_media):
        out.append(finding("name", "reserved-national-term",
                           f"{national[0]!r} in a name is for state bodies and news media",
                           national[0]))
    state = [t for t in STATE_BODY_TERMS if t in norm]
    if not state and norm.endswith("局") and len(norm) >= 3 \
            and not any(norm.endswith(w) for w in NOT_AN_OFFICE):
        state = ["局"]
    if state and not subject.state_body:
        out.append(finding("name", "impersonates-state-body",
                           f"the name presents itself as a state body ({state[0]!r})", state[0]))
    media = [s for s in MEDIA_SUFFIXES if norm.endswith(s)]
    if media and not subject.news_media:
        out.append(finding("name", "impersonates-news-media",
                           f"the name presents itself as a news medium ({media[0]!r})",
                           media[0]))
    news = [t for t in NEWS_TERMS if t in norm]
    if news and not subject.news_media:
        out.append(finding("name", "news-term-without-permit",
                           f"{news[0]!r} in a name needs a news information service permit",
                           news[0]))
    place = next((p for p in PLACES if norm.startswith(p)), None)
    if place and not subject.state_body and (
            norm == place or any(norm.endswith(v) for v in OFFICIAL_VOICE)):
        out.append(finding("name", "region-name-abuse",
                           f"the name presents itself as the official voice of {place!r}", place))
    if subject.entity_type == NATURAL:
        org = next((w for w in ORGANIZATION_WORDS if norm.endswith(w)), None)
        if org:
            out.append(finding("name", "name-implies-organization",
                               f"a natural person's account name ends in {org!r}", org))
    return out


def _contact_details(name: str, description: str) -> list[dict]:
    out = []
    for field_, text in (("name", name), ("description", description)):
        plain = _plain(text)
        kinds = sorted({kind for kind, rx in _CONTACT if rx.search(plain)})
        if kinds:
            out.append(finding(field_, "contact-details",
                               f"the {field_} embeds contact details ({', '.join(kinds)})",
                               ",".join(kinds)))
        if _QR.search(plain):
            out.append(finding(field_, "qr-code", f"the {field_} points to a QR code"))
    return out
