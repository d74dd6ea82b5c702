"""Queries over the read models and how they are presented: lists, the enforcement report
for regulators (A19.2, A3, A21.2) as JSON, CSV (zipped) and XLSX, personal data masked; the
models of those answers (the documents, their pages, the report, the filing)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
import statistics
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, BinaryIO, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from libs.domain import NotFoundError
from libs.events.checkpoints import load_checkpoint
from libs.events.db import Tx

from .rules import CATEGORY_LABELS, MEASURE_LABELS, Category, category_key

VIOLATIONS, MEASURES, CASES = "enforcement_violations", "enforcement_measures", "enforcement_cases"
BLACKLISTS = "enforcement_blacklists"
_PAGE = text("SELECT key, doc FROM projection_documents WHERE projection = :p "
             "AND key > :after ORDER BY key LIMIT :limit")
_GET = text("SELECT doc FROM projection_documents WHERE projection = :p AND key = :key")


async def page(tx: Tx, projection: str, *, after: str = "", limit: int = 50
               ) -> tuple[list[dict[str, Any]], str | None]:
    rows = await tx.fetch(_PAGE, {"p": projection, "after": after, "limit": limit + 1})
    docs = [orjson.loads(r[1]) for r in rows[:limit]]
    return docs, (rows[limit - 1][0] if len(rows) > limit else None)


async def get(tx: Tx, projection: str, key: str) -> dict[str, Any] | None:
    raw = await tx.fetchval(_GET, {"p": projection, "key": key})
    return orjson.loads(raw) if raw else None


async def everything(tx: Tx, projection: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    after: str | None = ""
    while after is not None:
        batch, after = await page(tx, projection, after=after, limit=1000)
        docs += batch
    return docs


async def one(tx: Tx, projection: str, key: str, what: str) -> dict[str, Any]:
    doc = await get(tx, projection, key)
    if doc is None:
        raise NotFoundError(f"no {what} {key}", code=f"{what}-not-found",
                            title=f"No such {what}")
    return doc


async def position(tx: Tx) -> str:
    """The event position the read models reflect (the least advanced of them)."""
    cursors = [await load_checkpoint(tx, f"projection:{p}") for p in (VIOLATIONS, MEASURES,
                                                                        CASES)]
    least = min(cursors)  # in log order, (xid, position): a position alone is not an order
    return str(least)


# -- answers: the read models' documents, pages of them, reports and filings ----------------
# Times in read-model documents, reports and filings are ISO 8601 text as it was written
# (the answers hand it on unchanged), hence ``str``.
class Doc(BaseModel):
    """A read-model document as the projection keeps it (services.enforcement.projections),
    answered as it is: a key the projection adds only at a later step (a violation's
    ``note`` once decided, a case's ``responded_at`` once responded, a blacklist's
    ``lifted_at`` once lifted) is absent before, not null (the routes answer with
    ``response_model_exclude_unset``); a key the model does not name is passed on."""

    model_config = ConfigDict(extra="allow")


class EvidenceDoc(Doc):
    content_ids: list[str] = []
    hashes: list[str] = []
    urls: list[str] = []
    reporter: str | None = None


class ViolationDoc(Doc):
    violation_id: str
    account_id: str
    category: Category
    source: str
    province: str
    evidence: EvidenceDoc
    reported_by: str
    reported_at: str
    status: Literal["reported", "confirmed", "dismissed"]
    decided_at: str | None
    decided_by: str | None
    intake_to_decision_seconds: float | None
    measure_id: str | None
    event_ids: list[str]
    note: str | None = None  # once decided


class MeasureDoc(Doc):
    measure_id: str
    account_id: str
    violation_id: str
    category: Category
    province: str
    measure: str
    capabilities: list[str]
    duration_days: int | None
    reversible: bool
    ban_severity: str | None
    policy_id: str
    policy_version: str
    rule: str
    step: int
    prior_violations: int
    credit_level: str | None
    legal_basis: list[str]
    decided_at: str
    starts_at: str | None
    ends_at: str | None
    status: Literal["active", "lifted"]
    lifted_at: str | None
    lifted_reason: str | None
    event_ids: list[str]


class CaseStepDoc(Doc):
    step: str
    at: str
    by: str | None
    assignee: str | None
    note: str | None = None  # accepted, screened, handled


class CaseDoc(Doc):
    case_id: str
    kind: Literal["appeal", "complaint"]
    account_id: str
    province: str | None
    measure_id: str | None
    category: Category | None
    reason: str
    contact_masked: str | None
    urls: list[str]
    received_at: str
    deadline: str
    working_days: int
    step: str
    assignee: str | None
    outcome: str | None
    response: str | None
    steps: list[CaseStepDoc]
    responded_at: str | None = None  # once responded


class BlacklistDoc(Doc):
    account_id: str
    identity_blind: str
    blacklist_id: str
    account_ids: list[str]
    strike_ids: list[str]
    legal_basis: list[str]
    at: str
    status: Literal["standing", "lifted"]
    event_id: str
    lifted_at: str | None = None  # once lifted
    overruled_strike_id: str | None = None
    lift_event_id: str | None = None
    province: str | None  # the account's, as filed (the list adds it)


NextCursor = Annotated[str | None, Field(description="pass as ``cursor`` for the next page; "
                                                   "null at the end")]


class ViolationPage(BaseModel):
    items: list[ViolationDoc]
    next_cursor: NextCursor


class MeasurePage(BaseModel):
    items: list[MeasureDoc]
    next_cursor: NextCursor


class CasePage(BaseModel):
    items: list[CaseDoc]
    next_cursor: NextCursor


class BlacklistPage(BaseModel):
    items: list[BlacklistDoc]
    next_cursor: NextCursor


class ManifestFile(BaseModel):
    sha256: str
    bytes: int


class Manifest(BaseModel):
    """A report's or filing's signed manifest (rules.manifest, rules.sign_manifest)."""

    files: dict[str, ManifestFile]
    rows: dict[str, int]
    event_position: str
    generated_at: str
    query: dict[str, str | None]
    public_key: str
    algorithm: Literal["Ed25519"]
    signature: str


class ReportQuery(BaseModel):
    province: str | None
    from_: str | None = Field(alias="from")
    to: str | None


class ReportTotals(BaseModel):
    violations: int
    confirmed: int
    dismissed: int
    pending: int
    measures: int
    active_measures: int
    cases: int
    appeals: int
    complaints: int
    overdue_cases: int


class ProvinceCounts(BaseModel):
    violations: int
    measures: int
    cases: int


class Seconds(BaseModel):
    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    max: float | None


class ReportViolation(BaseModel):
    violation_id: str
    account_id: str
    province: str
    category: Category
    source: str
    status: str
    reported_at: str
    decided_at: str | None
    intake_to_decision_seconds: float | None
    measure_id: str | None
    content_ids: list[str]
    urls: list[str]
    reporter: str | None  # masked


class ReportMeasure(BaseModel):
    measure_id: str
    account_id: str
    province: str
    category: Category
    measure: str
    capabilities: list[str]
    ban_severity: str | None
    rule: str
    step: int
    policy_id: str
    policy_version: str
    legal_basis: list[str]
    decided_at: str
    starts_at: str | None
    ends_at: str | None
    status: str
    lifted_reason: str | None
    violation_id: str


class ReportCase(BaseModel):
    case_id: str
    kind: str
    account_id: str
    province: str | None
    measure_id: str | None
    step: str
    assignee: str | None
    received_at: str
    deadline: str
    overdue: bool
    outcome: str | None
    responded_at: str | None
    contact: str | None  # masked


class EnforcementReportOut(BaseModel):
    """The enforcement report as JSON (views.enforcement_report) with its signed manifest;
    the manifest's ``report.json`` digest is over the canonical JSON of the rest."""

    query: ReportQuery
    generated_at: str
    event_position: str
    totals: ReportTotals
    violations_by_category: dict[str, int]
    measures_by_type: dict[str, int]
    measures_by_category: dict[str, int]
    by_province: dict[str, ProvinceCounts]
    intake_to_decision_seconds: Seconds
    case_feedback_seconds: Seconds
    violations: list[ReportViolation]
    measures: list[ReportMeasure]
    cases: list[ReportCase]
    manifest: Manifest


class FiledAccount(BaseModel):
    """A registered account as filed with its provincial office (A7.1)."""

    account_id: str
    province: str
    category: str | None
    entity_type: str | None
    business_name: str | None
    registered_address: str | None
    uscc: str | None
    verification: str | None
    registered_at: str | None


class FilingsOut(BaseModel):
    province: str | None  # null: every province (the national office, staff)
    accounts: list[FiledAccount]


# -- the enforcement report ---------------------------------------------------------------
def mask(value: str | None) -> str | None:
    """Personal data in a report: the first and last character kept."""
    if not value:
        return value
    return value[0] + "*" * max(1, len(value) - 2) + (value[-1] if len(value) > 2 else "")


def _within(doc: dict[str, Any], at: str, province: str | None, start: datetime | None,
            end: datetime | None) -> bool:
    if province and doc.get("province") != province:
        return False
    t = doc.get(at)
    if t is None:
        return start is None and end is None
    when = datetime.fromisoformat(t)
    return (start is None or when >= start) and (end is None or when < end)


def _seconds(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "mean": None, "p50": None, "p90": None, "max": None}
    ordered = sorted(values)
    return {"count": len(values), "mean": round(statistics.fmean(values), 3),
            "p50": ordered[len(ordered) // 2], "p90": ordered[int(len(ordered) * 0.9)
                                                              if len(ordered) > 1 else 0],
            "max": ordered[-1]}


def enforcement_report(violations: list[dict], measures: list[dict], cases: list[dict], *,
                       province: str | None, start: datetime | None, end: datetime | None,
                       generated_at: datetime, event_position: str) -> dict[str, Any]:
    """Measures and violations by category, measure type and province, the intake-to-decision
    time (A19.1), the case listings (A20.2); reporters' personal data masked."""
    vs = [v for v in violations if _within(v, "reported_at", province, start, end)]
    ms = [m for m in measures if _within(m, "decided_at", province, start, end)]
    cs = [c for c in cases if _within(c, "received_at", province, start, end)]
    by_province: dict[str, dict[str, int]] = {}
    for kind, docs in (("violations", vs), ("measures", ms), ("cases", cs)):
        for d in docs:
            row = by_province.setdefault(d.get("province") or "unknown",
                                         {"violations": 0, "measures": 0, "cases": 0})
            row[kind] += 1
    status = Counter(v["status"] for v in vs)
    feedback = [(datetime.fromisoformat(c["responded_at"]) - datetime.fromisoformat(
        c["received_at"])).total_seconds() for c in cs if c.get("responded_at")]
    return {
        "query": {"province": province, "from": start and start.isoformat(),
                  "to": end and end.isoformat()},
        "generated_at": generated_at.isoformat(), "event_position": event_position,
        "totals": {"violations": len(vs), "confirmed": status["confirmed"],
                   "dismissed": status["dismissed"], "pending": status["reported"],
                   "measures": len(ms),
                   "active_measures": sum(1 for m in ms if m["status"] == "active"),
                   "cases": len(cs), "appeals": sum(1 for c in cs if c["kind"] == "appeal"),
                   "complaints": sum(1 for c in cs if c["kind"] == "complaint"),
                   "overdue_cases": sum(1 for c in cs if _overdue(c, generated_at))},
        "violations_by_category": dict(sorted(Counter(category_key(v["category"])
                                                      for v in vs).items())),
        "measures_by_type": dict(sorted(Counter(m["measure"] for m in ms).items())),
        "measures_by_category": dict(sorted(Counter(category_key(m["category"])
                                                    for m in ms).items())),
        "by_province": dict(sorted(by_province.items())),
        "intake_to_decision_seconds": _seconds([v["intake_to_decision_seconds"] for v in vs
                                                if v["intake_to_decision_seconds"] is not None]),
        "case_feedback_seconds": _seconds(feedback),
        "violations": [_violation_row(v) for v in sorted(vs, key=lambda v: v["reported_at"])],
        "measures": [_measure_row(m) for m in sorted(ms, key=lambda m: m["decided_at"])],
        "cases": [_case_row(c, generated_at) for c in sorted(cs, key=lambda c: c["received_at"])],
    }


def _overdue(c: dict[str, Any], now: datetime) -> bool:
    return c["step"] != "responded" and datetime.fromisoformat(c["deadline"]) < now


def _violation_row(v: dict[str, Any]) -> dict[str, Any]:
    ev = v["evidence"]
    return {"violation_id": v["violation_id"], "account_id": v["account_id"],
            "province": v["province"], "category": v["category"], "source": v["source"],
            "status": v["status"], "reported_at": v["reported_at"],
            "decided_at": v["decided_at"],
            "intake_to_decision_seconds": v["intake_to_decision_seconds"],
            "measure_id": v["measure_id"], "content_ids": ev.get("content_ids", []),
            "urls": ev.get("urls", []), "reporter": mask(ev.get("reporter"))}


def _measure_row(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in ("measure_id", "account_id", "province", "category", "measure",
                              "capabilities", "ban_severity", "rule", "step", "policy_id",
                              "policy_version", "legal_basis", "decided_at", "starts_at",
                              "ends_at", "status", "lifted_reason", "violation_id")}


def _case_row(c: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {"case_id": c["case_id"], "kind": c["kind"], "account_id": c["account_id"],
            "province": c["province"], "measure_id": c["measure_id"], "step": c["step"],
            "assignee": c["assignee"], "received_at": c["received_at"],
            "deadline": c["deadline"], "overdue": _overdue(c, now), "outcome": c["outcome"],
            "responded_at": c.get("responded_at"), "contact": c.get("contact_masked")}


# -- files: CSV (zipped, one per table) and XLSX (write-only), Chinese and English headers ----
Column = tuple[str, str, Callable[[dict[str, Any]], Any]]


def _col(zh: str, en: str, key: str) -> Column:
    return (zh, en, lambda r: r.get(key))


def _joined(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda r: ";".join(str(x) for x in r.get(key) or [])


def _label(r: dict[str, Any]) -> str:
    zh, en = CATEGORY_LABELS.get(r["category"], ("", ""))
    return f"{zh} / {en}"


TABLES: dict[str, list[Column]] = {
    "violations": [
        _col("违规编号", "violation id", "violation_id"), _col("账号", "account", "account_id"),
        _col("省份", "province", "province"), _col("类别", "category", "category"),
        ("类别说明", "category label", _label), _col("来源", "source", "source"),
        _col("状态", "status", "status"), _col("受理时间", "reported at", "reported_at"),
        _col("决定时间", "decided at", "decided_at"),
        _col("受理至决定秒数", "intake to decision (s)", "intake_to_decision_seconds"),
        _col("处置编号", "measure id", "measure_id"),
        ("内容编号", "content ids", _joined("content_ids")), ("链接", "urls", _joined("urls")),
        _col("举报人", "reporter (masked)", "reporter")],
    "measures": [
        _col("处置编号", "measure id", "measure_id"), _col("账号", "account", "account_id"),
        _col("省份", "province", "province"), _col("类别", "category", "category"),
        _col("处置措施", "measure", "measure"),
        ("措施说明", "measure label", lambda r: MEASURE_LABELS.get(r["measure"], "")),
        ("限制功能", "capabilities", _joined("capabilities")),
        _col("禁止注册等级", "ban severity", "ban_severity"), _col("规则", "rule", "rule"),
        _col("梯度", "ladder step", "step"),
        ("策略版本", "policy version", lambda r: f"{r['policy_id']}@{r['policy_version']}"),
        ("法律依据", "legal basis", _joined("legal_basis")),
        _col("决定时间", "decided at", "decided_at"), _col("开始", "starts at", "starts_at"),
        _col("结束", "ends at", "ends_at"), _col("状态", "status", "status"),
        _col("解除原因", "lifted reason", "lifted_reason"),
        _col("违规编号", "violation id", "violation_id")],
    "cases": [
        _col("案件编号", "case id", "case_id"), _col("类型", "kind", "kind"),
        _col("账号", "account", "account_id"), _col("省份", "province", "province"),
        _col("处置编号", "measure id", "measure_id"), _col("环节", "step", "step"),
        _col("承办人", "assignee", "assignee"), _col("受理时间", "received at", "received_at"),
        _col("期限", "deadline", "deadline"), _col("逾期", "overdue", "overdue"),
        _col("结果", "outcome", "outcome"), _col("答复时间", "responded at", "responded_at"),
        _col("联系方式", "contact (masked)", "contact")],
}
SUMMARY_HEADER = ("指标 / metric", "数值 / value")


def summary_rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """The report's figures as (metric, value) rows: totals, by category, type, province."""
    rows: list[tuple[str, Any]] = [(f"totals.{k}", v) for k, v in report["totals"].items()]
    rows += [(f"violations_by_category.{k}", v)
             for k, v in report["violations_by_category"].items()]
    rows += [(f"measures_by_type.{k}", v) for k, v in report["measures_by_type"].items()]
    for prov, counts in report["by_province"].items():
        rows += [(f"by_province.{prov}.{k}", v) for k, v in counts.items()]
    rows += [(f"intake_to_decision_seconds.{k}", v)
             for k, v in report["intake_to_decision_seconds"].items()]
    return rows


def _cell(value: Any) -> Any:
    return "" if value is None else _sheet_safe(value)


@cache
def _illegal_characters() -> re.Pattern[str]:
    # openpyxl is imported when a sheet is first written, not at the service's start-up
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE


def _sheet_safe(value: Any) -> Any:
    """A value a worksheet can hold: the control characters it cannot (openpyxl's
    IllegalCharacterError: a report or filing with one answered 500) become U+FFFD."""
    return _illegal_characters().sub("\ufffd", value) if isinstance(value, str) else value


def to_csv(report: dict[str, Any]) -> dict[str, bytes]:
    """One CSV per table (UTF-8 with a byte-order mark, for spreadsheet programs)."""
    files: dict[str, bytes] = {}
    for name, columns in [("summary", None), *TABLES.items()]:
        buf = io.StringIO()
        w = csv.writer(buf)
        if columns is None:
            w.writerow(SUMMARY_HEADER)
            w.writerows(summary_rows(report))
        else:
            w.writerow([f"{zh} / {en}" for zh, en, _ in columns])
            for r in report[name]:
                w.writerow([_cell(get(r)) for _, _, get in columns])
        files[f"{name}.csv"] = ("\ufeff" + buf.getvalue()).encode()
    return files


def to_xlsx(report: dict[str, Any]) -> bytes:
    """One workbook, written in openpyxl's write-only mode: a summary and three listings."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("summary")
    ws.append(list(SUMMARY_HEADER))
    for row in summary_rows(report):
        ws.append([_cell(v) for v in row])
    for name, columns in TABLES.items():
        ws = wb.create_sheet(name)
        ws.append([f"{zh} / {en}" for zh, en, _ in columns])
        for r in report[name]:
            ws.append([_cell(get(r)) for _, _, get in columns])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def zipped(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def row_counts(report: dict[str, Any]) -> dict[str, int]:
    return {name: len(report[name]) for name in TABLES}


FILING_COLUMNS: list[Column] = [
    _col("账号", "account", "account_id"), _col("省份", "province", "province"),
    _col("类别", "category", "category"), _col("主体类型", "entity type", "entity_type"),
    _col("主体名称", "business name", "business_name"),
    _col("注册地址", "registered address", "registered_address"),
    _col("统一社会信用代码", "USCC", "uscc"), _col("认证状态", "verification", "verification"),
    _col("注册时间", "registered at", "registered_at")]
_FILING_HEADER = [f"{zh} / {en}" for zh, en, _ in FILING_COLUMNS]
# An XLSX sheet holds 1,048,576 rows: a larger filing continues on the next sheet.
SHEET_ROWS = 1_000_000


def _filing_row(a: dict[str, Any]) -> list[Any]:
    return [_cell(get(a)) for _, _, get in FILING_COLUMNS]


def filing_csv(accounts: list[dict[str, Any]]) -> bytes:
    """Registered accounts for filing with the provincial office (A7.1), as CSV."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(_FILING_HEADER)
    w.writerows(_filing_row(a) for a in accounts)
    return ("\ufeff" + buf.getvalue()).encode()


@dataclass(frozen=True)
class Written:
    """A file written for a regulator: its digest, size and the accounts it lists."""

    sha256: str
    bytes: int
    rows: int


async def write_filing_csv(pages: AsyncIterator[list[tuple]], out: BinaryIO) -> Written:
    """The filing as CSV (UTF-8 with a BOM so that spreadsheets read the Chinese headers),
    written page by page from rows in :data:`FILING_COLUMNS` order (the directory's
    ``filed_pages``): memory holds one page, whatever the number of accounts."""
    digest, size, rows = hashlib.sha256(), 0, 0

    def put(text: str) -> None:
        nonlocal size
        data = text.encode()
        digest.update(data)
        out.write(data)
        size += len(data)

    buf = io.StringIO()
    csv.writer(buf).writerow(_FILING_HEADER)
    put("\ufeff" + buf.getvalue())
    async for page in pages:
        buf = io.StringIO()
        csv.writer(buf).writerows(page)  # None is written as an empty field
        put(buf.getvalue())
        rows += len(page)
    return Written(digest.hexdigest(), size, rows)


async def write_filing_xlsx(pages: AsyncIterator[list[tuple]], path: str) -> Written:
    """The filing as XLSX in openpyxl's write-only mode (rows go to disk as they come);
    the work runs in a thread so the service keeps answering meanwhile."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    sheets = [wb.create_sheet("filing")]
    sheets[0].append(_FILING_HEADER)
    rows, in_sheet = 0, 1

    def append(page: list[tuple]) -> None:
        nonlocal in_sheet
        for row in page:
            if in_sheet > SHEET_ROWS:
                sheets.append(wb.create_sheet(f"filing {len(sheets) + 1}"))
                sheets[-1].append(_FILING_HEADER)
                in_sheet = 1
            sheets[-1].append([_sheet_safe(v) for v in row])
            in_sheet += 1

    async for page in pages:
        await asyncio.to_thread(append, page)
        rows += len(page)
    await asyncio.to_thread(wb.save, path)
    sha, size = await asyncio.to_thread(_file_digest, path)
    return Written(sha, size, rows)


def _file_digest(path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
