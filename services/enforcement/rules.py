"""The rules of enforcement, pure: the measure policy and its ladder (A19.2, A7.3), working-day
deadlines (A20.2), report manifests signed with Ed25519 (A19.2, A21.2), and the what-if
replay of a candidate policy over history (A7.3)."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator

from libs.events.contracts._common import Capability
from libs.events.contracts.enforcement import BanSeverity, CommercialCategory, Measure

Category = int | CommercialCategory  # an Art. 18 category 1-10, or an Art. 14 one

ART18 = tuple(range(1, 11))
COMMERCIAL = ("false_advertising", "exaggerated_publicity", "commercial_fraud", "copyright")
ALL_CATEGORIES: tuple[int | str, ...] = (*ART18, *COMMERCIAL)
BANS = ("closure", "blacklist", "reregistration_ban")
CREDIT_LEVELS = ("A", "B", "C", "D", "E")
CHINA = ZoneInfo("Asia/Shanghai")

CATEGORY_LABELS: dict[int | str, tuple[str, str]] = {
    1: ("未以真实身份信息注册或名称头像简介与真实身份不符", "false identity or profile"),
    2: ("恶意假冒、仿冒他人账号", "impersonation"),
    3: ("未经许可或超范围提供互联网新闻信息服务", "news without a permit"),
    4: ("多账号批量发布、虚假流量、人为热点", "fake traffic and artificial hot topics"),
    5: ("煽动极端情绪或实施网络暴力", "inciting passions or online violence"),
    6: ("编造虚假信息、伪造原创、歪曲事实", "false information"),
    7: ("有偿发布删除信息、敲诈勒索", "paid posting or deletion, extortion"),
    8: ("批量注册、囤积或非法交易账号", "account farming or trading"),
    9: ("制作复制发布违法信息", "illegal information"),
    10: ("法律法规禁止的其他行为", "other prohibited conduct"),
    "false_advertising": ("虚假广告", "false advertising"),
    "exaggerated_publicity": ("夸大宣传", "exaggerated publicity"),
    "commercial_fraud": ("商业欺诈", "commercial fraud"),
    "copyright": ("侵犯著作权", "copyright infringement"),
}
MEASURE_LABELS = {"warning": "警示", "function_limit": "限制账号功能",
                  "suspend_updates": "暂停信息更新", "stop_ads": "停止广告发布",
                  "closure": "关闭注销账号", "blacklist": "列入黑名单",
                  "reregistration_ban": "禁止重新注册"}


def category_key(category: int | str) -> str:
    """The category as text (report keys, rule tables): ``"6"``, ``"copyright"``."""
    return str(category)


def legal_basis_of(category: int | str) -> list[str]:
    return ["A18"] if isinstance(category, int) else ["A14"]


# -- the measure policy (a versioned document in the repository) -------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    """One rung of a ladder: the measure, its functions, duration, reversibility, ban."""

    measure: Measure
    capabilities: list[Capability] = []
    duration_days: int | None = Field(None, ge=1)  # None: until lifted (or for good)
    reversible: bool
    ban_severity: BanSeverity | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Step:
        if self.measure == "function_limit" and not self.capabilities:
            raise ValueError("a function_limit names the capabilities it limits")
        if self.measure != "function_limit" and self.capabilities:
            raise ValueError(f"{self.measure} takes no capabilities")
        if self.ban_severity and self.measure not in BANS:
            raise ValueError(f"{self.measure} imposes no ban: ban_severity must be null")
        if self.measure in BANS and not self.ban_severity:
            raise ValueError(f"{self.measure} needs a ban_severity")
        if self.measure in BANS and self.duration_days is not None:
            raise ValueError(f"{self.measure} has no duration (the ban has its severity)")
        return self


class Rule(_Strict):
    id: str = Field(min_length=1, max_length=80)
    categories: list[int | str] = Field(min_length=1)
    legal_basis: list[str] = Field(min_length=1)
    ladder: list[Step] = Field(min_length=1)


class MeasurePolicy(_Strict):
    """The measure policy (A19.2): category x prior confirmed violations x credit level ->
    measure. Versioned (A7.3): every decision records ``policy_id`` and ``version``."""

    policy_id: str = Field(min_length=1, max_length=80)
    version: str = Field(min_length=1, max_length=40)
    effective_from: date | None = None
    description: str = ""
    lookback_days: int = Field(365, ge=1)
    credit_escalation: dict[Literal["A", "B", "C", "D", "E"], int] = {}
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _covers_each_category_once(self) -> MeasurePolicy:
        seen: dict[str, str] = {}
        for rule in self.rules:
            for c in rule.categories:
                if c not in ALL_CATEGORIES:
                    raise ValueError(f"rule {rule.id}: unknown category {c!r}")
                if category_key(c) in seen:
                    raise ValueError(f"category {c!r} is in rules {seen[category_key(c)]} and "
                                     f"{rule.id}")
                seen[category_key(c)] = rule.id
        missing = [c for c in ALL_CATEGORIES if category_key(c) not in seen]
        if missing:
            raise ValueError(f"no rule for categories {missing}")
        if len({r.id for r in self.rules}) != len(self.rules):
            raise ValueError("rule ids must be unique")
        return self

    def rule_for(self, category: int | str) -> Rule:
        return next(r for r in self.rules if category in r.categories)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(orjson.dumps(self.model_dump(mode="json"),
                                           option=orjson.OPT_SORT_KEYS)).hexdigest()


def load_policy(text: str | bytes) -> MeasurePolicy:
    """The policy document parsed and checked (raises pydantic's ValidationError)."""
    return MeasurePolicy.model_validate_json(text)


@dataclass(frozen=True)
class Prior:
    """A confirmed violation already on the account's record."""

    category: int | str
    at: datetime


@dataclass(frozen=True)
class Decision:
    """What the policy decides for one confirmed violation."""

    rule: str
    step: int
    prior: int
    step_spec: Step
    legal_basis: list[str]
    policy_id: str
    policy_version: str

    @property
    def measure(self) -> str:
        return self.step_spec.measure

    def ends_at(self, starts_at: datetime) -> datetime | None:
        d = self.step_spec.duration_days
        return starts_at + timedelta(days=d) if d else None


def decide(policy: MeasurePolicy, category: int | str, history: Iterable[Prior],
           credit_level: str | None, now: datetime) -> Decision:
    """The rung of the category's ladder: one up per prior confirmed violation under the
    same rule within the lookback, plus the credit level's escalation; the top rung stays."""
    rule = policy.rule_for(category)
    since = now - timedelta(days=policy.lookback_days)
    prior = sum(1 for p in history if p.at >= since and p.at <= now and p.category in
                rule.categories)
    step = prior + (policy.credit_escalation.get(credit_level, 0) if credit_level else 0)
    step = min(step, len(rule.ladder) - 1)
    return Decision(rule=rule.id, step=step, prior=prior, step_spec=rule.ladder[step],
                    legal_basis=sorted({*rule.legal_basis, "A19.2"}),
                    policy_id=policy.policy_id, policy_version=policy.version)


# -- what-if (A7.3) ------------------------------------------------------------------------
class Replayed(BaseModel):
    """One confirmed violation as decided then: enough to decide it again."""

    violation_id: str
    account_id: str
    category: int | str
    decided_at: datetime
    credit_level: str | None = None
    measure: str
    rule: str
    step: int
    capabilities: list[str] = []
    duration_days: int | None = None
    prior_violations: int = 0  # as seen then: orders decisions taken at the same instant
    overturned: bool = False  # an upheld appeal lifted it: not part of later history


class Simulation(BaseModel):
    candidate_policy_id: str
    candidate_version: str
    violations: int
    same: int
    different: int
    changes: dict[str, int]  # "warning -> suspend_updates": count
    examples: list[dict[str, Any]]


def simulate(candidate: MeasurePolicy, decided: list[Replayed], *,
             examples: int = 20) -> Simulation:
    """Each confirmed violation decided again, in order, under ``candidate``: the history
    each account had then (upheld appeals excluded), its credit level then."""
    history: dict[str, list[Prior]] = {}
    changes: Counter[str] = Counter()
    shown: list[dict[str, Any]] = []
    same = 0
    for v in sorted(decided, key=lambda v: (v.decided_at, v.prior_violations,
                                                   v.violation_id)):
        d = decide(candidate, v.category, history.get(v.account_id, []), v.credit_level,
                   v.decided_at)
        s = d.step_spec
        if (s.measure, sorted(s.capabilities), s.duration_days) == (
                v.measure, sorted(v.capabilities), v.duration_days):
            same += 1
        else:
            key = f"{v.measure} -> {s.measure}"
            changes[key] += 1
            if len(shown) < examples:
                shown.append({"violation_id": v.violation_id, "account_id": v.account_id,
                              "category": v.category, "decided_at": v.decided_at.isoformat(),
                              "was": {"measure": v.measure, "rule": v.rule, "step": v.step,
                                      "capabilities": v.capabilities,
                                      "duration_days": v.duration_days},
                              "would_be": {"measure": s.measure, "rule": d.rule,
                                           "step": d.step, "capabilities": s.capabilities,
                                           "duration_days": s.duration_days}})
        if not v.overturned:
            history.setdefault(v.account_id, []).append(Prior(v.category, v.decided_at))
    return Simulation(candidate_policy_id=candidate.policy_id,
                      candidate_version=candidate.version, violations=len(decided), same=same,
                      different=len(decided) - same, changes=dict(changes), examples=shown)


# -- deadlines in Chinese working days (A20.2) ----------------------------------------------
def calendar_last_year() -> int:
    """The last year the installed ``chinesecalendar`` knows the holidays of."""
    from chinese_calendar import constants

    return max(constants.holidays).year


def is_workday(day: date) -> bool:
    """A working day in China (statutory holidays and adjusted working weekends); beyond the
    calendar's data, Monday to Friday (the start-up check refuses a calendar behind the
    current year)."""
    import chinese_calendar

    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        return day.weekday() < 5


def working_days_after(start: datetime, days: int) -> datetime:
    """The end (23:59:59 Beijing time) of the ``days``-th working day after ``start``'s
    day in Beijing: a case received on Friday with 1 working day is due Monday night."""
    day = start.astimezone(CHINA).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_workday(day):
            counted += 1
    return datetime.combine(day, time(23, 59, 59), CHINA).astimezone(UTC)


# -- report manifests (A19.2, A21.2) --------------------------------------------------------
def canonical(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def private_key(hex_key: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(hex_key))


def public_key_hex(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def manifest(files: dict[str, bytes | tuple[str, int]], rows: dict[str, int], *,
             position: str, generated_at: datetime, query: dict[str, Any]) -> dict[str, Any]:
    """What a signed report states: each file's size and SHA-256, the row counts, the event
    position it reflects, when it was generated and for what query. A file is given as its
    bytes, or as ``(sha256, size)`` when it was streamed to disk."""
    return {"files": {name: _stated(data) for name, data in sorted(files.items())},
            "rows": rows, "event_position": position,
            "generated_at": generated_at.isoformat(), "query": query}


def _stated(data: bytes | tuple[str, int]) -> dict[str, Any]:
    if isinstance(data, tuple):
        return {"sha256": data[0], "bytes": data[1]}
    return {"sha256": sha256(data), "bytes": len(data)}


def sign_manifest(doc: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The manifest with the public key and an Ed25519 signature over its canonical JSON."""
    body = {**doc, "public_key": public_key_hex(key), "algorithm": "Ed25519"}
    return {**body, "signature": base64.b64encode(key.sign(canonical(body))).decode()}


class ManifestError(Exception):
    pass


def verify_manifest(signed: dict[str, Any], files: dict[str, bytes], *,
                    public_key: str | None = None) -> None:
    """Raise :class:`ManifestError` unless the signature holds (with ``public_key`` if given,
    else the one the manifest names) and every file given has the digest stated."""
    body = {k: v for k, v in signed.items() if k != "signature"}
    key_hex = public_key or body.get("public_key", "")
    if public_key and public_key != body.get("public_key"):
        raise ManifestError("the manifest was signed with another key")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex)).verify(
            base64.b64decode(signed.get("signature", "")), canonical(body))
    except (InvalidSignature, ValueError) as exc:
        raise ManifestError(f"the signature does not hold: {exc!r}") from None
    stated = body.get("files", {})
    for name, data in files.items():
        if name not in stated:
            raise ManifestError(f"{name} is not in the manifest")
        if sha256(data) != stated[name]["sha256"]:
            raise ManifestError(f"{name} differs from the manifest (SHA-256)")
