"""A9.1: a case a reviewer sees in the queue can be decided at once.

The queue (``pending_reviews``) and ``review_cases`` are folded from the same events by two
projection runners, each at its own pace. A decision finds the case's account in whichever
has it (``views.review_case``, which the case's page reads too); a case in neither is a
404 problem.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.domain import NotFoundError
from libs.events import Envelope
from services.verification import bootstrap as verification_boot
from services.verification import views
from services.verification.projections import all_projections
from tests.conftest import BACKENDS
from tests.integration.test_inbound_redelivery import migrated

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def submitted(case_id: str, account_id: str) -> Envelope:
    return Envelope.new(
        type="verification.QualificationSubmitted", stream_id=f"verification-{account_id}",
        source="/verification", time=T0, subject=account_id,
        data={"account_id": account_id, "case_id": case_id, "kind": "professional",
              "submitted_by": "platform", "legal_basis": ["A9.1"],
              "qualification_type": "执业医师资格证", "number": "Q1", "issuer": "卫健委",
              "valid_from": T0.isoformat(), "valid_until": T0.replace(year=2027).isoformat(),
              "document_sha256": "0" * 64, "document_content_type": "application/pdf",
              "document_bytes": 10})


@BACKENDS
async def test_A9_1_a_case_in_the_queue_before_review_cases_is_found(database_url):
    db = await migrated(database_url, verification_boot.MIGRATIONS)
    try:
        queue = next(p for p in all_projections() if p.name == "pending_reviews")
        cases = next(p for p in all_projections() if p.name == "review_cases")
        event = submitted("case-1", "acc-1")
        async with db.transaction() as tx:
            await queue.apply(tx, [event])  # the queue's runner is ahead
        async with db.connect() as conn:
            assert await views.get(conn, "review_cases", "case-1") is None
            assert (await views.review_case(conn, "case-1"))["account_id"] == "acc-1"
        async with db.transaction() as tx:
            await cases.apply(tx, [event])
        async with db.connect() as conn:
            assert (await views.review_case(conn, "case-1"))["account_id"] == "acc-1"
            with pytest.raises(NotFoundError) as refused:
                await views.review_case(conn, "case-2")
        assert refused.value.code == "review-case-not-found"
    finally:
        await db.dispose()
