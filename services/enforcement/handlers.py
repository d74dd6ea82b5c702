"""Use cases: one command or one incoming event -> one transaction.

Handlers return results (pydantic models, kept for an ``Idempotency-Key``) and raise
``libs.domain`` errors. Streams: ``violation-<id>``, ``enforcement-account-<id>`` (the
account's measures), ``case-<id>`` (appeals and complaints), ``regulator-access-<id>``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from libs.domain import DomainError, InvalidCommandError, NotFoundError
from libs.events import Envelope, Streams, new_id, transact
from libs.events.contracts.enforcement import (
    CaseStep,
    Evidence,
    MeasureDecided,
    RegulatorAccessed,
)
from libs.events.db import Tx
from libs.runtime.deps import ServiceDeps
from libs.runtime.pii import Sealer
from libs.runtime.scope import province_filter

from . import projections, rules, views
from .adapters import AccountDirectory
from .domain import (
    POLICY_STREAM,
    Case,
    PolicyVersions,
    Record,
    Violation,
    appeal_case_id,
    apply_measure,
    file_appeal,
    file_complaint,
)
from .policies import (
    POLICIES,
    BlacklistNoted,
    CreditNoted,
    Registered,
    TradingSuspected,
    VerificationNoted,
)

log = logging.getLogger(__name__)




@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the handlers need; built complete in bootstrap."""

    violations: Streams[Violation]
    records: Streams[Record]
    cases: Streams[Case]
    accesses: Streams[Any]
    policies: Streams[PolicyVersions]
    directory: AccountDirectory
    sealer: Sealer
    policy: rules.MeasurePolicy  # the file's: in force until a version is activated
    signing_key: Ed25519PrivateKey
    appeal_window_days: int = 30
    appeal_working_days: int = 7
    complaint_working_days: int = 10


# -- what handlers take and return ---------------------------------------------------------------
class NewViolation(BaseModel):
    account_id: str
    category: int | str
    evidence: Evidence
    source: Literal["moderation", "complaint", "regulator", "credit", "verification"]
    province: str | None = None


class MeasureOut(BaseModel):
    measure_id: str
    account_id: str
    measure: str
    capabilities: list[str]
    starts_at: datetime
    ends_at: datetime | None
    ban_severity: str | None
    reversible: bool
    policy_id: str
    policy_version: str
    rule: str
    step: int
    prior_violations: int
    credit_level: str | None
    legal_basis: list[str]


class ViolationOut(BaseModel):
    violation_id: str
    account_id: str
    category: int | str
    province: str
    status: Literal["reported", "confirmed", "dismissed"]
    intake_to_decision_seconds: float | None = None
    measure: MeasureOut | None = None


class MeasureLiftedOut(BaseModel):
    measure_id: str
    account_id: str
    reason: str
    lifted_by: str


class CaseOut(BaseModel):
    case_id: str
    kind: Literal["appeal", "complaint"]
    account_id: str
    step: CaseStep
    deadline: datetime
    measure_id: str | None = None
    outcome: Literal["upheld", "rejected"] | None = None
    measure_lifted: bool = False


class NewComplaint(BaseModel):
    account_id: str
    reason: str
    category: int | str | None = None
    urls: list[str] = []
    contact: str | None = None


class Scope(BaseModel):
    """Who reads: a regulator (``province`` None for the national office) or staff."""

    subject: str
    regulator: bool
    province: str | None = None


class ReportFiles(BaseModel):
    report: dict[str, Any]
    files: dict[str, bytes]
    manifest: dict[str, Any]


class SigningKeyOut(BaseModel):
    algorithm: Literal["Ed25519"]
    public_key: str  # hex


class CurrentPolicyOut(BaseModel):
    policy: rules.MeasurePolicy
    sha256: str


class PolicyVersion(views.Doc):
    policy_id: str
    version: str
    sha256: str
    activated_by: str
    activated_at: str | None  # null: the service's policy file, in force from the start
    replayed_violations: int | None = None  # an activation's
    would_differ: int | None = None
    event_id: str | None = None


class PolicyVersionsOut(BaseModel):
    versions: list[PolicyVersion]


class Ladder(BaseModel):
    """Where a decision stands on its rule's ladder, and what that step imposes."""

    measure: str
    rule: str
    step: int
    capabilities: list[str]
    duration_days: int | None


class SimulatedChange(BaseModel):
    """One confirmed violation the candidate policy would have decided differently."""

    violation_id: str
    account_id: str
    category: views.Category
    decided_at: str
    was: Ladder
    would_be: Ladder


class SimulationOut(rules.Simulation):
    """:class:`~services.enforcement.rules.Simulation` with its examples typed."""

    examples: list[SimulatedChange]


# -- incoming: registrations (province) and credit levels ---------------------------------
async def when_event(deps: Deps, tx: Tx, event: Envelope) -> None:
    """One event of registration or credit, in the consumer's transaction (with its inbox
    record): what it says of the account kept in the directory (an upsert: redelivery and
    replays change nothing)."""
    policy = POLICIES.get(event.type)
    if policy is None:
        return
    learned = policy(deps.store.registry.payload(event), event)
    if isinstance(learned, Registered):
        uscc = (deps.sealer.open(learned.uscc_sealed, subject=learned.owner_blind)
                if learned.uscc_sealed and learned.owner_blind else None)
        await deps.directory.registered(
            tx, account_id=learned.account_id, province=learned.province,
            category=learned.category, entity_type=learned.entity_type, at=learned.at,
            business_name=learned.business_name,
            registered_address=learned.registered_address, uscc=uscc)
    elif isinstance(learned, CreditNoted):
        await deps.directory.credit(tx, account_id=learned.account_id, level=learned.level,
                                    at=learned.at)
    elif isinstance(learned, VerificationNoted):
        await deps.directory.verification(tx, account_id=learned.account_id,
                                          state=learned.state, at=learned.at)
    elif isinstance(learned, TradingSuspected):
        await _report_trading(deps, tx, learned)
    elif isinstance(learned, BlacklistNoted):
        await projections.BLACKLISTS.apply(tx, [learned.event])


async def _report_trading(deps: Deps, tx: Tx, t: TradingSuspected) -> None:
    """A suspected Art. 18(8) violation at intake, caused by transfer's event; the id is
    derived from that event, so a replay reports it once."""
    known = await deps.directory.get(tx, t.account_id)
    if known is None or not known.province:
        log.info("suspected trading of %s: its province is not known; skipped", t.account_id)
        return
    violation_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"suspected-trading:{t.event.id}"))
    if await deps.violations.load(tx, violation_id) is not None:
        return
    evidence = Evidence(content_ids=[t.transfer_id, *t.account_ids],
                        reporter=f"transfer: {t.transfers_in_window} transfers within "
                                 f"{t.window_days} days")
    await deps.violations.decide(tx, violation_id, lambda s: Violation.report(
        violation_id=violation_id, account_id=t.account_id, category=8, evidence=evidence,
        source="transfer", province=known.province, reported_by="transfer",
        now=deps.clock(), legal_basis=sorted({*rules.legal_basis_of(8), "A11.1"})),
        cause=t.event)


# -- commands --------------------------------------------------------------------------------

def _category(category: int | str) -> int | str:
    if isinstance(category, str) and category.isdigit():
        category = int(category)
    if category not in rules.ALL_CATEGORIES:
        raise InvalidCommandError(
            f"unknown category {category!r}: an Art. 18 category 1-10 or one of "
            f"{list(rules.COMMERCIAL)} (A14)", code="invalid-violation-category",
            legal_basis=["A18", "A14"])
    return category


async def report_violation(deps: Deps, new: NewViolation, *, by: str, key: str | None,
                           digest: str) -> ViolationOut:
    """A suspected violation at intake (A18, A14), its province the account's (as
    registration announced it, else as reported)."""
    category = _category(new.category)
    violation_id = new_id()

    async def work(tx: Tx) -> ViolationOut:
        known = await deps.directory.get(tx, new.account_id)
        province = (known.province if known and known.province else None) or new.province
        if not province:
            raise InvalidCommandError(
                f"the province of account {new.account_id} is not known yet: send it",
                code="province-unknown", legal_basis=["A3"])
        await deps.violations.decide(tx, violation_id, lambda s: Violation.report(
            violation_id=violation_id, account_id=new.account_id, category=category,
            evidence=new.evidence, source=new.source, province=province, reported_by=by,
            now=deps.clock(), legal_basis=rules.legal_basis_of(category)))
        return ViolationOut(violation_id=violation_id, account_id=new.account_id,
                            category=category, province=province, status="reported")

    return await deps.command(key, "enforcement.violations", digest, work, ViolationOut)


def _measure_out(d: MeasureDecided, starts_at: datetime, ends_at: datetime | None
                 ) -> MeasureOut:
    return MeasureOut(measure_id=d.measure_id, account_id=d.account_id, measure=d.measure,
                      capabilities=list(d.capabilities), starts_at=starts_at, ends_at=ends_at,
                      ban_severity=d.ban_severity, reversible=d.reversible,
                      policy_id=d.policy_id, policy_version=d.policy_version, rule=d.rule,
                      step=d.step, prior_violations=d.prior_violations,
                      credit_level=d.credit_level, legal_basis=d.legal_basis)


async def decide_violation(deps: Deps, violation_id: str, *, confirm: bool, by: str, note: str,
                           key: str | None, digest: str) -> ViolationOut:
    """Confirm or dismiss (A19.1: the time since intake is on the event); a confirmation
    decides the measure by the policy and applies it (A19.2) in the same transaction."""

    async def work(tx: Tx) -> ViolationOut:
        v = await deps.violations.load(tx, violation_id)
        if v is None:
            raise NotFoundError(f"no violation {violation_id}", code="violation-not-found",
                                title="No such violation")
        now = deps.clock()
        changed = await deps.violations.decide(tx, violation_id, lambda s: v.decide(
            confirm=confirm, by=by, note=note, now=now,
            legal_basis=rules.legal_basis_of(v.category)), state=v)
        decision_event = changed.events[0]
        out = ViolationOut(violation_id=violation_id, account_id=v.account_id,
                           category=v.category, province=v.province,
                           status="confirmed" if confirm else "dismissed",
                           intake_to_decision_seconds=decision_event.data[
                               "intake_to_decision_seconds"])
        if not confirm:
            return out
        known = await deps.directory.get(tx, v.account_id)
        credit = known.credit_level if known else None
        record = await deps.records.load(tx, v.account_id)
        history = [rules.Prior(c, at) for c, at in record.history()] if record else []
        d = rules.decide(await policy_in_force(deps, tx), v.category, history, credit, now)
        s = d.step_spec
        decided = MeasureDecided(
            account_id=v.account_id, measure_id=new_id(), violation_id=violation_id,
            category=v.category, province=v.province, policy_id=d.policy_id,
            policy_version=d.policy_version, rule=d.rule, step=d.step, prior_violations=d.prior,
            credit_level=credit, measure=s.measure, capabilities=s.capabilities,
            duration_days=s.duration_days, reversible=s.reversible,
            ban_severity=s.ban_severity, legal_basis=d.legal_basis,
            evidence_event_ids=[v.report_event_id, decision_event.id])
        ends_at = d.ends_at(now)
        await deps.records.decide(tx, v.account_id, lambda r: apply_measure(
            decided, starts_at=now, ends_at=ends_at,
            evidence=[v.report_event_id, decision_event.id]),
            cause=decision_event, state=record)
        return out.model_copy(update={"measure": _measure_out(decided, now, ends_at)})

    return await deps.command(key, "enforcement.violation-decisions", digest, work,
                          ViolationOut)


async def expire_measures(deps: Deps, account_id: str, now: datetime) -> list[str]:
    """Lift the account's timed measures that ended by ``now`` (A19.2); their ids."""

    async def work(tx: Tx) -> list[str]:
        record = await deps.records.load(tx, account_id)
        if record is None:
            return []
        ids = record.expired(now)
        await deps.records.decide(tx, account_id, lambda r: [
            e for mid in ids for e in r.lift(mid, reason="expired", legal_basis=["A19.2"],
                                             evidence=[])], state=record)
        return ids

    return await transact(deps.db, work)


async def lift_measure(deps: Deps, account_id: str, measure_id: str, *, note: str, by: str,
                       key: str | None, digest: str) -> MeasureLiftedOut:
    """An operator ends a measure early (A19.2); registration undoes its effect."""

    async def work(tx: Tx) -> MeasureLiftedOut:
        record = await deps.records.load(tx, account_id)
        if record is None:
            raise NotFoundError(f"no measure {measure_id} on account {account_id}",
                                code="measure-not-found", title="No such measure")
        reason = f"operator_decision: {note}" if note else "operator_decision"
        await deps.records.decide(tx, account_id, lambda r: r.lift(
            measure_id, reason=reason, legal_basis=["A19.2"], evidence=[]), state=record)
        return MeasureLiftedOut(measure_id=measure_id, account_id=account_id, reason=reason,
                                lifted_by=by)

    return await deps.command(key, "enforcement.measure-lifts", digest, work,
                          MeasureLiftedOut)


# -- appeals and complaints (A20.2) ------------------------------------------------------
def _case_out(case: Case, lifted: bool = False) -> CaseOut:
    return CaseOut(case_id=case.case_id, kind=case.kind, account_id=case.account_id,
                   step=case.step, deadline=case.deadline, measure_id=case.measure_id,
                   outcome=case.outcome, measure_lifted=lifted)


async def appeal(deps: Deps, *, account_id: str, measure_id: str, reason: str, by: str,
                 key: str | None, digest: str) -> CaseOut:
    """The account's appeal of one of its measures: once per measure, within the window,
    answered within the appeal deadline in working days."""
    case_id = appeal_case_id(measure_id)

    async def work(tx: Tx) -> CaseOut:
        now = deps.clock()
        record = await deps.records.load(tx, account_id)
        case = await deps.cases.load(tx, case_id)
        deadline = rules.working_days_after(now, deps.appeal_working_days)
        changed = await deps.cases.decide(tx, case_id, lambda c: file_appeal(
            record=record, case=case, account_id=account_id, measure_id=measure_id,
            reason=reason, filed_by=by, now=now, window_days=deps.appeal_window_days,
            deadline=deadline, working_days=deps.appeal_working_days), state=case)
        return _case_out(changed.after)

    return await deps.command(key, "enforcement.appeals", digest, work, CaseOut)


async def _province(deps: Deps, tx: Tx, account_id: str) -> str | None:
    """The account's province: as registration announced it, else as its measures say."""
    known = await deps.directory.get(tx, account_id)
    if known and known.province:
        return known.province
    record = await deps.records.load(tx, account_id)
    return next((m.province for m in record.measures.values()), None) if record else None


async def complain(deps: Deps, new: NewComplaint, *, key: str | None,
                   digest: str) -> CaseOut:
    """A complaint or report from the public (A20.2), due in working days; the contact is
    sealed (and masked for display)."""
    category = _category(new.category) if new.category is not None else None
    case_id = f"complaint-{new_id()}"

    async def work(tx: Tx) -> CaseOut:
        now = deps.clock()
        province = await _province(deps, tx, new.account_id)
        contact = new.contact.strip() if new.contact else None
        changed = await deps.cases.decide(tx, case_id, lambda c: file_complaint(
            case_id=case_id, account_id=new.account_id, province=province, reason=new.reason,
            category=category, urls=new.urls,
            contact_sealed=deps.sealer.seal(contact, subject=case_id) if contact else None,
            contact_masked=views.mask(contact), now=now,
            deadline=rules.working_days_after(now, deps.complaint_working_days),
            working_days=deps.complaint_working_days))
        return _case_out(changed.after)

    return await deps.command(key, "enforcement.complaints", digest, work, CaseOut)


async def _case(deps: Deps, tx: Tx, case_id: str) -> Case:
    case = await deps.cases.load(tx, case_id)
    if case is None:
        raise NotFoundError(f"no case {case_id}", code="case-not-found", title="No such case")
    return case


async def take_step(deps: Deps, case_id: str, *, step: str, by: str, assignee: str | None,
                    note: str, key: str | None, digest: str) -> CaseOut:
    """Accept, screen or handle a case, in that order, each with who and when."""

    async def work(tx: Tx) -> CaseOut:
        case = await _case(deps, tx, case_id)
        changed = await deps.cases.decide(tx, case_id, lambda c: case.take_step(
            step, by=by, assignee=assignee, note=note, now=deps.clock()), state=case)
        return _case_out(changed.after)

    return await deps.command(key, "enforcement.case-steps", digest, work, CaseOut)


async def respond(deps: Deps, case_id: str, *, outcome: str, response: str, by: str,
                  key: str | None, digest: str) -> CaseOut:
    """The case's response; an upheld appeal lifts its measure (A20.2) in the same
    transaction (unless it ended meanwhile)."""

    async def work(tx: Tx) -> CaseOut:
        case = await _case(deps, tx, case_id)
        changed = await deps.cases.decide(tx, case_id, lambda c: case.respond(
            outcome=outcome, response=response, by=by, now=deps.clock()), state=case)
        lifted = False
        if case.kind == "appeal" and outcome == "upheld" and case.measure_id:
            record = await deps.records.load(tx, case.account_id)
            if record is not None and record.measure(case.measure_id).active:
                await deps.records.decide(tx, case.account_id, lambda r: r.lift(
                    case.measure_id, reason="appeal_upheld", legal_basis=["A20.2"],
                    evidence=[changed.events[0].id]), cause=changed.events[0], state=record)
                lifted = True
        return _case_out(changed.after, lifted)

    return await deps.command(key, "enforcement.case-responses", digest, work, CaseOut)


# -- reports and inspections (A19.2, A3, A21.2) ----------------------------------------------
def scoped_province(scope: Scope, province: str | None) -> str | None:
    """The province a reader may see: a provincial regulator only its own (A3; the rule
    every service's reads share, :func:`libs.runtime.scope.province_filter`)."""
    return province_filter(scope.province if scope.regulator else None, province)


async def record_access(deps: Deps, scope: Scope, *, resource: str, query: dict[str, Any],
                        manifest_sha256: str | None = None, refused: bool = False) -> None:
    """A regulator's access, granted or refused, recorded as an event (A21.2)."""
    if not scope.regulator:
        return
    access_id = new_id()
    payload = RegulatorAccessed(
        access_id=access_id, regulator=scope.subject, province=scope.province,
        resource=resource, query={k: str(v) for k, v in query.items() if v is not None},
        at=deps.clock(), manifest_sha256=manifest_sha256,
        outcome="refused" if refused else "granted")

    async def work(tx: Tx) -> None:
        await deps.accesses.append(tx, access_id, 0, [payload])

    await transact(deps.db, work)
    deps.committed()


async def inspect(deps: Deps, scope: Scope, province: str | None, resource: str,
                  query: dict[str, Any]) -> str | None:
    """The province to show, the access recorded; a refused one recorded too."""
    try:
        shown = scoped_province(scope, province)
    except DomainError:
        await record_access(deps, scope, resource=resource, query=query, refused=True)
        raise
    return shown


async def enforcement_report(deps: Deps, scope: Scope, *, province: str | None,
                             start: datetime | None, end: datetime | None,
                             fmt: Literal["json", "csv", "xlsx"]) -> ReportFiles:
    """Measures and violations by category, type and province with the case listings, as
    of the read models caught up now; the files and their signed manifest."""
    query = {"province": province, "from": start and start.isoformat(),
             "to": end and end.isoformat(), "format": fmt}
    shown = await inspect(deps, scope, province, "reports/enforcement", query)
    await deps.catch_up()
    now = deps.clock()
    async with deps.db.connect() as conn:
        position = await views.position(conn)
        vs = await views.everything(conn, views.VIOLATIONS)
        ms = await views.everything(conn, views.MEASURES)
        cs = await views.everything(conn, views.CASES)
    report = views.enforcement_report(vs, ms, cs, province=shown, start=start, end=end,
                                      generated_at=now, event_position=position)
    if fmt == "json":
        files = {"report.json": rules.canonical(report)}
    elif fmt == "csv":
        files = views.to_csv(report)
    else:
        files = {"report.xlsx": views.to_xlsx(report)}
    doc = rules.manifest(files, views.row_counts(report), position=position, generated_at=now,
                         query={**query, "province": shown})
    signed = rules.sign_manifest(doc, deps.signing_key)
    await record_access(deps, scope, resource="reports/enforcement", query=query,
                        manifest_sha256=rules.sha256(rules.canonical(signed)))
    return ReportFiles(report=report, files=files, manifest=signed)


async def filings(deps: Deps, scope: Scope, province: str | None) -> list[dict[str, Any]]:
    """Registered accounts per province for filing with the provincial office (A7.1)."""
    shown = await inspect(deps, scope, province, "filings", {"province": province})
    rows = await deps.directory.filed(deps.db, shown)
    await record_access(deps, scope, resource="filings", query={"province": province})
    return rows


class FilingExport(BaseModel):
    """A filing written to ``path`` (the caller sends and removes it) and its manifest."""

    path: str
    filename: str
    rows: int
    manifest: dict[str, Any]


async def filing_export(deps: Deps, scope: Scope, province: str | None,
                        fmt: Literal["csv", "xlsx"]) -> FilingExport:
    """The filing of a province (A7.1, A3) as one CSV or XLSX file streamed to disk with
    bounded memory, and its signed manifest (accounts, SHA-256, the log position)."""
    query = {"province": province, "format": fmt}
    shown = await inspect(deps, scope, province, "filings", query)
    async with deps.db.connect() as conn:
        position = await views.position(conn)
    filename = f"filing-{shown or 'all'}.{fmt}"
    fd, path = tempfile.mkstemp(prefix="filing-", suffix=f".{fmt}")
    try:
        pages = deps.directory.filed_pages(deps.db, shown)
        if fmt == "csv":
            with os.fdopen(fd, "wb") as out:
                written = await views.write_filing_csv(pages, out)
        else:
            os.close(fd)
            written = await views.write_filing_xlsx(pages, path)
    except BaseException:
        os.unlink(path)
        raise
    doc = rules.manifest({filename: (written.sha256, written.bytes)}, {"accounts": written.rows},
                         position=position, generated_at=deps.clock(),
                         query={**query, "province": shown})
    signed = rules.sign_manifest(doc, deps.signing_key)
    await record_access(deps, scope, resource="filings", query=query,
                        manifest_sha256=rules.sha256(rules.canonical(signed)))
    return FilingExport(path=path, filename=filename, rows=written.rows, manifest=signed)


async def list_docs(deps: Deps, scope: Scope, projection: str, *, province: str | None,
                    account_id: str | None, cursor: str, limit: int,
                    by_account: bool = False) -> tuple[list[dict[str, Any]], str | None]:
    """A page of violations, measures, cases or blacklisted accounts (a regulator's limited
    to its province). ``by_account``: the documents carry no province of their own (they
    come from another service's events); each takes its account's, as filed."""
    shown = await inspect(deps, scope, province, projection,
                          {"province": province, "account_id": account_id})
    items: list[dict[str, Any]] = []
    next_cursor: str | None = cursor
    # Filter while paging, so that a page holds ``limit`` matches (not fewer) until the end.
    async with deps.db.connect() as conn:
        while next_cursor is not None and len(items) < limit:
            docs, more = await views.page(conn, projection, after=next_cursor,
                                          limit=limit - len(items))
            if by_account:
                for d in docs:
                    known = await deps.directory.get(conn, d["account_id"])
                    d["province"] = known.province if known else None
            items += [d for d in docs if (shown is None or d.get("province") == shown)
                      and (account_id is None or d["account_id"] == account_id)]
            next_cursor = more
    await record_access(deps, scope, resource=projection,
                        query={"province": province, "account_id": account_id})
    return items, next_cursor


async def current_policy(deps: Deps, scope: Scope) -> dict[str, Any]:
    """The policy in force and its digest, for filing (A7.3); a regulator's read recorded."""
    async with deps.db.connect() as conn:
        policy = await policy_in_force(deps, conn)
    await record_access(deps, scope, resource="policies/current", query={})
    return {"policy": policy.model_dump(mode="json"), "sha256": policy.sha256}


# -- the policy's versions (A7.3) -------------------------------------------------------------
_PARSED: dict[str, rules.MeasurePolicy] = {}  # digest -> document, parsed once per process


async def policy_in_force(deps: Deps, tx: Tx) -> rules.MeasurePolicy:
    """The version the last activation put in force (read in the decision's transaction, so
    every worker decides under the same one), else the file the service started with."""
    state = await deps.policies.load(tx, POLICY_STREAM)
    if state is None or not state.sha256:
        return deps.policy
    if state.sha256 not in _PARSED:
        _PARSED[state.sha256] = rules.MeasurePolicy.model_validate(state.document)
    return _PARSED[state.sha256]


class PolicyActivated(BaseModel):
    """A version put in force, and what replaying history through it found first."""

    policy_id: str
    version: str
    sha256: str
    replayed_violations: int
    would_differ: int
    changes: dict[str, int]


async def activate_policy(deps: Deps, candidate: rules.MeasurePolicy, *, by: str,
                          key: str | None, digest: str) -> PolicyActivated:
    """Put a new version in force (A7.3) after replaying the confirmed violations through it
    (the what-if's figures go on the event); decisions from now on record its version."""
    simulation = await simulate(deps, candidate)

    async def work(tx: Tx) -> PolicyActivated:
        current = await policy_in_force(deps, tx)
        await deps.policies.decide(tx, POLICY_STREAM, lambda s: (s or PolicyVersions()).activate(
            policy_id=candidate.policy_id, version=candidate.version, sha256=candidate.sha256,
            document=candidate.model_dump(mode="json"), by=by,
            replayed=simulation.violations, differ=simulation.different,
            in_force=(current.policy_id, current.version, current.sha256)))
        return PolicyActivated(
            policy_id=candidate.policy_id, version=candidate.version, sha256=candidate.sha256,
            replayed_violations=simulation.violations, would_differ=simulation.different,
            changes=simulation.changes)

    return await deps.command(key, "enforcement.policy-activations", digest, work,
                          PolicyActivated)


async def policy_versions(deps: Deps, scope: Scope) -> list[dict[str, Any]]:
    """Every version that has been in force, oldest first: the file the service started
    with, then each activation (A7.3 filing)."""
    async with deps.db.connect() as conn:
        state = await deps.policies.load(conn, POLICY_STREAM)
    await record_access(deps, scope, resource="policies", query={})
    initial = {"policy_id": deps.policy.policy_id, "version": deps.policy.version,
               "sha256": deps.policy.sha256, "activated_by": "the service's policy file",
               "activated_at": None}
    return [initial, *(state.versions if state else ())]


async def simulate(deps: Deps, candidate: rules.MeasurePolicy) -> rules.Simulation:
    """Every confirmed violation decided again under ``candidate`` (A7.3); nothing is
    appended or published."""
    await deps.catch_up()
    async with deps.db.connect() as conn:
        measures = await views.everything(conn, views.MEASURES)
    replayed = [rules.Replayed(
        violation_id=m["violation_id"], account_id=m["account_id"], category=m["category"],
        decided_at=datetime.fromisoformat(m["decided_at"]), credit_level=m["credit_level"],
        measure=m["measure"], rule=m["rule"], step=m["step"], capabilities=m["capabilities"],
        duration_days=m["duration_days"], prior_violations=m["prior_violations"],
        overturned=m["lifted_reason"] == "appeal_upheld")
        for m in measures]
    return rules.simulate(candidate, replayed)
