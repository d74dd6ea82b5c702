"""What the Schemathesis run (tests/fuzz) found, each pinned by a test of its own so it stays
fixed whatever the fuzzer's seed draws (docs/decisions/0034-schemathesis-and-offline-docs.md)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from libs.runtime.auth import issue_token
from libs.runtime.problems import MEDIA_TYPE, ProblemError
from libs.runtime.settings import DEV_AUTH_SECRET
from services.registration import schemas


@pytest.mark.parametrize("data", ["=\u009a\u00e0\r\u0085", "ñ" * 8, "QUJD\u00a0"])
def test_avatar_base64_with_non_ascii_characters_is_invalid_avatar_not_500(data):
    """PATCH /v1/accounts/{id}/profile answered 500: b64decode raises ValueError, not
    binascii.Error, for a str with characters outside ASCII."""
    # the request schema refuses it first (a 422 at the edge, libs.domain.values.Base64) ...
    with pytest.raises(ValidationError):
        schemas.AvatarIn(data_base64=data)
    # ... and decoding, should a value get past it, refuses it too, never a 500
    with pytest.raises(ProblemError) as refused:
        schemas.avatar_fields(schemas.AvatarIn.model_construct(data_base64=data))
    assert refused.value.status == 422 and refused.value.code == "invalid-avatar"


def test_history_after_beyond_a_stream_version_is_422_not_500():
    """GET /v1/accounts/{id}/history?after=597762849257 answered 500: PostgreSQL refused the
    integer. The bound is refused at the edge, before any handler or database."""
    from services.registration.main import app

    runtime = SimpleNamespace(settings=SimpleNamespace(auth_secret=DEV_AUTH_SECRET,
                                                       environment="development"),
                              deps=None, prometheus=None, admission=None)
    app.state.runtime = runtime  # no lifespan: the request must not get past validation
    try:
        token = issue_token(DEV_AUTH_SECRET, subject="t", roles=["operator"])
        client = TestClient(app, raise_server_exceptions=False)
        r = client.get("/v1/accounts/a/history", params={"after": 2**31},
                       headers={"Authorization": f"Bearer {token}"})
    finally:
        del app.state.runtime
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == MEDIA_TYPE
    assert r.json()["errors"][0]["location"] == ["query", "after"]


def test_enforcement_xlsx_with_control_characters_is_written_not_500():
    """GET /v1/reports/enforcement?format=xlsx answered 500 once a violation's content ids
    held a control character (openpyxl's IllegalCharacterError); the same for filings."""
    import asyncio
    import io
    import os
    import tempfile

    from openpyxl import load_workbook

    from services.enforcement import views

    report = {"totals": {"violations": 1}, "violations_by_category": {"a\x01b": 1},
              "measures_by_type": {}, "by_province": {}, "intake_to_decision_seconds": {},
              **{name: [] for name in views.TABLES}}
    report["violations"] = [{"violation_id": "v\x02", "account_id": "a", "province": "p",
                             "category": "c", "source": "s\x1f", "status": "reported",
                             "reported_at": None, "decided_at": None, "content_ids": ["x\x0b"],
                             "urls": [], "reporter": None, "intake_to_decision_seconds": None,
                             "measure_id": None}]
    data = views.to_xlsx(report)
    cells = [c.value for ws in load_workbook(io.BytesIO(data)) for row in ws.iter_rows()
             for c in row]
    assert "v\ufffd" in cells and "violations_by_category.a\ufffdb" in cells

    async def pages():
        yield [("acc\x03", None, "name\x1e")]

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.xlsx")
        asyncio.run(views.write_filing_xlsx(pages(), path))
        cells = [c.value for ws in load_workbook(path) for row in ws.iter_rows() for c in row]
    assert "acc\ufffd" in cells and "name\ufffd" in cells
