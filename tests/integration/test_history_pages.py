"""An account's history in pages (views.history) on both databases; the route, its
``Link`` header and its refusals of bad cursors are in tests/e2e."""

from __future__ import annotations

import uuid

import pytest

from libs.events import EventStore
from libs.events.contracts import all_contracts
from libs.events.contracts.registration import AccountActivityRecorded
from services.registration import views
from services.registration.handlers import account_streams
from tests.conftest import BACKENDS
from tests.registration_support import submitted

pytestmark = pytest.mark.postgres


@BACKENDS
async def test_A10_2_A19_history_pages_cover_the_stream_in_order(db):
    store = EventStore(all_contracts(), dialect=db.dialect)
    accounts = account_streams(store, snapshot_every=0)
    account_id = str(uuid.uuid4())
    async with db.transaction() as tx:
        await accounts.append(tx, account_id, 0, [submitted(account_id)])
    async with db.transaction() as tx:
        await accounts.decide(tx, account_id, lambda a: a.activate(evidence=[]))
    for _ in range(5):
        async with db.transaction() as tx:
            await accounts.append(tx, account_id, (await accounts.load(tx, account_id)).version,
                                  [AccountActivityRecorded(account_id=account_id, kind="login",
                                                           legal_basis=["A10.2"])] * 50)
    pages, after = [], 0
    while after is not None:
        page = await views.history(db, store, account_id, after=after, limit=100)
        pages.append(page)
        after = page.next
    assert [len(p.events) for p in pages] == [100, 100, 52]
    versions = [e.stream_version for p in pages for e in p.events]
    assert versions == list(range(1, 253))
    assert await views.history(db, store, account_id, after=252) is not None  # empty page
    assert await views.history(db, store, str(uuid.uuid4())) is None
    assert await views.history(db, store, str(uuid.uuid4()), after=5) is None
