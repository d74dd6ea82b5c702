"""A8.3 through the registration handlers on a real database: a closed account's name
with a label added, inside a longer name, or written with confusable characters does not
pass as a new name (docs/decisions/0024-closed-name-affixes.md)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from libs.events import Database, EventStore
from libs.events.contracts import all_contracts
from libs.events.migrate import upgrade
from libs.runtime.pii import Sealer
from services.registration import adapters, handlers, schemas
from services.registration.adapters import ClosedNames
from services.registration.api import answer_of
from services.registration.bootstrap import MIGRATIONS
from services.registration.handlers import Deps, account_streams
from services.registration.rules import Policy
from tests.conftest import BACKENDS
from tests.registration_support import body

pytestmark = pytest.mark.postgres
SEALER = Sealer("test-key")


@pytest.fixture
async def deps(database_url):
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS)
    db = Database(database_url, pool_size=5)
    store = EventStore(all_contracts(), dialect=db.dialect)
    yield Deps(db=db, store=store, accounts=account_streams(store), policy=Policy(),
               agreement_version="2025-01", names=ClosedNames(), sealer=SEALER)
    await db.dispose()


async def close_names(deps, *names: str) -> None:
    """Names of accounts closed under enforcement, as the closure's handler records them,
    then the worker's periodic refresh."""
    async with deps.db.transaction() as tx:
        for name in names:
            await adapters.record_closed_name(tx, account_id=str(uuid.uuid4()), name=name,
                                              at=datetime.now(UTC))
    await deps.names.refresh(deps.db)


async def register(deps, name: str):
    b = body(name=name)
    app = schemas.application(schemas.RegisterAccount(**b), SEALER)
    return answer_of(await handlers.register(deps, app, key=None, digest=str(b)))


@BACKENDS
@pytest.mark.parametrize("name", ["深夜零食研究所官方号", "官方深夜零食研究所", "深夜零食研究所说",
                                  "深夜零食研究所-官方账号", "关注深夜零食研究所的朋友们"])
async def test_A8_3_closed_name_with_affix_is_held_or_refused(deps, name):
    await close_names(deps, "深夜零食研究所")
    answer = await register(deps, name)
    # a reviewer decides (ADR 0010: only the same normalised name is refused outright)
    assert (answer.status, answer.body["status"]) == (202, "held_for_review"), answer.body
    assert any("closed account" in r for r in answer.body["reasons"]), answer.body


@BACKENDS
async def test_A8_3_short_closed_name_with_a_label_is_held(deps):
    await close_names(deps, "阿狸")
    answer = await register(deps, "阿狸官方")
    assert (answer.status, answer.body["status"]) == (202, "held_for_review"), answer.body
    other = await register(deps, "阿狸猫咪乐园")  # two characters inside: not by containment
    assert other.body["status"] == "pending_verification", other.body


@BACKENDS
@pytest.mark.parametrize(("closed", "confusable"), [("工商银行生活", "エ商银行生活"),
                                                    ("人民日报社区", "人⺠日报社区")])
async def test_A8_3_closed_name_in_confusable_characters_is_refused(deps, closed, confusable):
    await close_names(deps, closed)
    answer = await register(deps, confusable)
    assert answer.status == 409, answer.body
    assert answer.body["code"] == "similar-to-closed-account", answer.body


def test_closed_name_labels_and_containment_are_settings(monkeypatch):
    from services.registration.settings import Settings

    monkeypatch.setenv("REGISTRATION_CLOSED_NAMES_AFFIXES", '["小站"]')
    monkeypatch.setenv("REGISTRATION_CLOSED_NAMES_CONTAINED_MIN_LENGTH", "0")
    s = Settings()
    names = ClosedNames(affixes=s.closed_names_affixes,
                        contained_min_length=s.closed_names_contained_min_length)
    names.add("c1", "阿狸")
    names.add("c2", "深夜零食研究所")
    assert [m.kind for m in names.similar("阿狸小站", threshold=0.85)] == ["affix"]
    assert names.similar("阿狸官方", threshold=0.85) == []  # not a label any more
    assert names.similar("关注深夜零食研究所的朋友们", threshold=0.85) == []  # containment off
