"""Registration handlers on a real database: limits hold under concurrency (A10.1, A10.3)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from libs.domain import DomainError
from libs.events import Database, EventStore
from libs.events.contracts import all_contracts
from libs.events.migrate import upgrade
from libs.runtime.pii import Sealer
from libs.runtime.problems import ProblemError, status_of
from services.registration import handlers, schemas
from services.registration.adapters import ClosedNames
from services.registration.api import answer_of
from services.registration.bootstrap import MIGRATIONS
from services.registration.handlers import Deps, account_streams
from services.registration.rules import Policy
from services.registration.writer import RegistrationWriter
from tests.conftest import BACKENDS
from tests.registration_support import body, phone, resident_id

pytestmark = pytest.mark.postgres
SEALER = Sealer("test-key")


@pytest.fixture(params=["alone", "grouped"])
async def deps(database_url, request):
    """Each registration in its own transaction, or (PostgreSQL) committed in groups by
    the writer the service runs (writer.py): every test here holds for both."""
    if request.param == "grouped" and not database_url.startswith("postgresql"):
        pytest.skip("group commit is for PostgreSQL")
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS)
    db = Database(database_url, pool_size=20)
    store = EventStore(all_contracts(), dialect=db.dialect)
    deps = Deps(db=db, store=store, accounts=account_streams(store), policy=Policy(),
                agreement_version="2025-01", names=ClosedNames(), sealer=SEALER)
    if request.param == "grouped":
        deps.registrations = RegistrationWriter(deps)
    yield deps
    await db.dispose()


async def register(deps, b, key=None):
    """The registration answered as the API answers it: a result, or a raised refusal as
    a problem with the status of its kind."""
    app = schemas.application(schemas.RegisterAccount(**b), SEALER)
    try:
        return answer_of(await handlers.register(deps, app, key=key, digest=str(b)))
    except DomainError as exc:
        raise ProblemError(exc.detail, status=status_of(exc.kind), code=exc.code,
                           **exc.extra) from None


@BACKENDS
async def test_A10_1_concurrent_registrations_cannot_both_pass_the_limit(deps):
    number = resident_id()
    answers = await asyncio.gather(*[register(deps, body(id_number=number)) for _ in range(6)])
    statuses = sorted(a.status for a in answers)
    assert statuses == [202, 202, 409, 409, 409, 409], statuses  # natural person limit: 2
    assert sum(a.body.get("extra_verification_required", False) for a in answers) == 1
    refused = [a for a in answers if a.status == 409]
    assert {a.body["code"] for a in refused} == {"account-limit-reached"}
    async with deps.db.connect() as conn:  # each refusal is recorded as an event (A10.3)
        events = await deps.store.read_stream(conn, f"account-{refused[0].body['account_id']}")
    assert [e.type for e in events] == ["registration.AccountRegistrationRefused"]


@BACKENDS
async def test_A10_3_one_device_registering_in_a_burst_is_held_then_refused(deps):
    device = "device-burst"
    answers = [await register(deps, body(device=device)) for _ in range(12)]
    statuses = [a.body["code"] if a.status >= 400 else a.body["status"] for a in answers]
    assert statuses[:3] == ["pending_verification"] * 3
    assert statuses[3:11] == ["held_for_review"] * 8
    assert statuses[11] == "velocity-limit" and answers[11].status == 429


@BACKENDS
async def test_A8_3_banned_identity_gets_403_and_nothing_is_stored(deps):
    b = body()
    first = await register(deps, b)
    from services.registration import adapters

    async with deps.db.transaction() as tx:
        await adapters.ban(tx, [(first_blind(b), "identity")], until=None, measure_id="m1")
    with pytest.raises(ProblemError) as e:
        await register(deps, body(id_number=b["identity"]["id_number"], phone_number=phone()))
    assert e.value.code == "registration-banned" and e.value.status == 403
    assert e.value.extensions["until"] is None
    async with deps.db.connect() as conn:
        from sqlalchemy import text

        count = await conn.fetchval(text("SELECT count(*) FROM events"))
    assert count == 1 and first.status == 202


def first_blind(b) -> str:
    from libs import identity

    return SEALER.blind("id_number", identity.resident_id(b["identity"]["id_number"]))


@BACKENDS
async def test_idempotency_key_gives_the_first_answer(deps):
    b = body()
    one = await register(deps, b, key="k1")
    two = await register(deps, b, key="k1")
    assert one == two and one.status == 202
    assert datetime.now(UTC)  # the clock is real here


@BACKENDS
async def test_A11_2_a_transferred_account_leaves_the_old_owners_count(deps):
    from libs.events import Envelope

    number = resident_id()
    first = await register(deps, body(id_number=number))
    await register(deps, body(id_number=number))
    third = await register(deps, body(id_number=number))
    assert third.status == 409 and third.body["code"] == "account-limit-reached"
    new_number, new_phone = resident_id(), "+86" + phone()
    who = SEALER.blind("id_number", new_number)  # the subject the values are sealed for
    owner = {"id_kind": "resident_id", "id_number_sealed": SEALER.seal(new_number, subject=who),
             "id_number_blind": SEALER.blind("id_number", new_number),
             "id_number_masked": "x", "holder_name_sealed": SEALER.seal("王五", subject=who),
             "holder_name_masked": "王*", "phone_sealed": SEALER.seal(new_phone, subject=who),
             "phone_blind": SEALER.blind("phone", new_phone), "phone_masked": "x"}
    account_id = first.body["account_id"]
    completed = Envelope.new(
        type="transfer.TransferCompleted", source="/transfer", subject=account_id,
        stream_id=f"transfer-{account_id}", time=datetime.now(UTC),
        data={"transfer_id": "t-1", "account_id": account_id, "new_owner": owner,
              "legal_basis": ["A11.2"]})
    async with deps.db.transaction() as tx:
        # as the consumer delivers it: checked against its contract, at its schema version
        await handlers.when_event(deps, tx, all_contracts().validate(completed))
    again = await register(deps, body(id_number=number))
    assert again.status == 202, again.body  # accepted (perhaps held: 4 attempts in a burst)


@BACKENDS
async def test_concurrent_registrations_share_transactions_and_keep_their_answers(deps):
    """Group commit: many registrations at once are committed in fewer transactions than
    registrations, each with its own account, events and kept answer."""
    bodies = [body() for _ in range(24)]
    answers = await asyncio.gather(*[register(deps, b, key=f"g-{i}")
                                     for i, b in enumerate(bodies)])
    assert [a.status for a in answers] == [202] * 24
    ids = {a.body["account_id"] for a in answers}
    assert len(ids) == 24
    if deps.registrations is not None:
        assert 0 < deps.registrations.groups < 24  # some shared a transaction
    async with deps.db.connect() as conn:
        for a in answers:
            events = await deps.store.read_stream(conn, f"account-{a.body['account_id']}")
            assert [e.type for e in events][0] == "registration.AccountRegistrationSubmitted"
    again = await asyncio.gather(*[register(deps, b, key=f"g-{i}")
                                   for i, b in enumerate(bodies)])
    assert again == answers  # each key gives its own first answer


@BACKENDS
async def test_twins_with_one_key_arriving_together_take_effect_once(deps):
    b = body()
    answers = await asyncio.gather(*[register(deps, b, key="twin") for _ in range(5)])
    assert len({a.body["account_id"] for a in answers}) == 1
    async with deps.db.connect() as conn:
        from sqlalchemy import text

        count = await conn.fetchval(text("SELECT count(*) FROM events"))
    assert count == 1


@BACKENDS
async def test_A8_3_a_banned_identity_in_a_group_is_refused_and_the_others_pass(deps):
    from services.registration import adapters

    banned = body()
    async with deps.db.transaction() as tx:
        await adapters.ban(tx, [(first_blind(banned), "identity")], until=None,
                           measure_id="m-group")
    others = [body() for _ in range(6)]

    async def attempt(b):
        try:
            return await register(deps, b)
        except ProblemError as exc:
            return exc

    results = await asyncio.gather(*[attempt(b) for b in [*others[:3], banned, *others[3:]]])
    refused = results[3]
    assert isinstance(refused, ProblemError) and refused.code == "registration-banned"
    assert all(r.status == 202 for i, r in enumerate(results) if i != 3)
    async with deps.db.connect() as conn:
        from sqlalchemy import text

        count = await conn.fetchval(text("SELECT count(*) FROM events"))
        counted = await conn.fetchval(text(
            "SELECT accounts FROM registration_keys WHERE key = :k"), {"k": first_blind(banned)})
    assert count == 6  # nothing of the banned registration is kept, not even its count
    assert counted is None
