"""Filings for the provincial office (A7.1, A3): what registration and verification
announced of each account, exported as CSV or XLSX with a signed manifest, on both
databases."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from libs.domain import ForbiddenError
from libs.events import Envelope
from libs.runtime.pii import Sealer
from libs.runtime.settings import DEV_PII_KEY
from services.enforcement import handlers, rules, views
from services.registration import schemas as reg_schemas
from services.registration.domain import Account, Verdict
from tests.conftest import BACKENDS
from tests.integration.test_enforcement_handlers import deliver, deps  # noqa: F401 (fixture)
from tests.registration_support import body

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
STAFF = handlers.Scope(subject="op", regulator=False)


async def register(d, *, province: str, entity_type: str = "natural_person") -> tuple:
    account_id = f"acc-{uuid.uuid4().hex[:8]}"
    b = body(province=province, entity_type=entity_type,
             category="technology" if entity_type != "natural_person" else "health")
    app = reg_schemas.application(reg_schemas.RegisterAccount(**b), Sealer(DEV_PII_KEY))
    data = Account.register(account_id, app, Verdict("accept"))[0].to_data()
    await deliver(d, Envelope.new(
        type="registration.AccountRegistrationSubmitted", source="/registration",
        subject=account_id, stream_id=f"account-{account_id}", time=T0, data=data),
        "registration.events")
    return account_id, b


async def verified(d, account_id: str) -> None:
    await deliver(d, Envelope.new(
        type="verification.AccountVerified", source="/verification", subject=account_id,
        stream_id=f"verification-{account_id}", time=T0,
        data={"account_id": account_id, "identity_level": "three_factor", "badge": "enterprise",
              "legal_basis": ["A8.1"], "evidence_event_ids": []}), "verification.events")


@BACKENDS
async def test_A7_1_filing_lists_business_name_address_uscc_and_verification(deps):  # noqa: F811
    org, org_body = await register(deps, province="440000", entity_type="legal_person")
    person, _ = await register(deps, province="440000")
    await register(deps, province="110000")
    await verified(deps, org)
    filed = {a["account_id"]: a for a in await handlers.filings(deps, STAFF, "440000")}
    assert set(filed) == {org, person}
    assert filed[org]["business_name"] == org_body["organization"]["business_name"]
    assert filed[org]["registered_address"] == org_body["organization"]["registered_address"]
    assert filed[org]["uscc"] == org_body["identity"]["id_number"]  # public registration data
    assert filed[org]["verification"] == "verified"
    # a natural person's identity number is personal data: never in a filing
    assert filed[person]["uscc"] is None and filed[person]["business_name"] is None
    assert filed[person]["verification"] == "pending"


@BACKENDS
async def test_A7_1_csv_and_xlsx_exports_carry_a_manifest_that_verifies(deps):  # noqa: F811
    accounts = {(await register(deps, province="440000"))[0] for _ in range(7)}
    for fmt in ("csv", "xlsx"):
        out = await handlers.filing_export(deps, STAFF, "440000", fmt)
        try:
            data = await asyncio.to_thread(Path(out.path).read_bytes)
        finally:
            os.unlink(out.path)
        assert out.rows == 7 and out.manifest["rows"] == {"accounts": 7}
        rules.verify_manifest(out.manifest, {out.filename: data})
        tampered = bytes([data[0] ^ 1]) + data[1:]
        with pytest.raises(rules.ManifestError):
            rules.verify_manifest(out.manifest, {out.filename: tampered})
        if fmt == "csv":
            lines = data.decode("utf-8-sig").splitlines()
            assert lines[0].startswith("账号 / account,省份 / province")
            listed = {line.split(",")[0] for line in lines[1:]}
        else:
            sheet = load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
            rows = list(sheet.iter_rows(values_only=True))
            assert rows[0][0] == "账号 / account"
            listed = {r[0] for r in rows[1:]}
        assert listed == accounts


@BACKENDS
async def test_A3_a_provincial_regulator_cannot_export_another_province(deps):  # noqa: F811
    await register(deps, province="110000")
    regulator = handlers.Scope(subject="reg", regulator=True, province="440000")
    with pytest.raises(ForbiddenError):
        await handlers.filing_export(deps, regulator, "110000", "csv")
    own = await handlers.filing_export(deps, regulator, None, "csv")
    os.unlink(own.path)
    assert own.rows == 0 and own.manifest["query"]["province"] == "440000"


async def test_a_filing_larger_than_a_sheet_continues_on_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(views, "SHEET_ROWS", 3)

    async def pages():
        for start in (0, 4):
            yield [(f"a{i}", "440000", *[None] * 7) for i in range(start, start + 4)]

    path = str(tmp_path / "f.xlsx")
    written = await views.write_filing_xlsx(pages(), path)
    book = load_workbook(path, read_only=True)
    counts = [sum(1 for _ in ws.iter_rows()) - 1 for ws in book.worksheets]
    assert written.rows == 8 and counts == [3, 3, 2]
