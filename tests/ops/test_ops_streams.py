"""acctctl streams show / state: an account across services, sealed unless revealed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from libs.events import Envelope, EventStore
from libs.runtime.auth import issue_token
from libs.runtime.settings import DEV_AUTH_SECRET
from ops.runtime import runtime
from services.registration import handlers
from services.registration.bootstrap import bootstrap as registration
from tests.ops.conftest import OPS_BACKENDS, acctctl, register

pytestmark = pytest.mark.postgres
BOTH = ["-s", "registration", "-s", "verification"]


async def verified(account_id: str) -> Envelope:
    async with runtime("verification") as rt:
        env = Envelope.new(type="verification.AccountVerified",
                           data={"account_id": account_id, "legal_basis": ["A8.1"],
                                 "identity_level": "two_factor", "badge": "verified"},
                           stream_id=f"verification-{account_id}", subject=account_id,
                           source="/verification", time=datetime.now(UTC))
        async with rt.db.transaction() as tx:
            [stored] = await rt.store.append(tx, env.stream_id, 0, [env])
        return stored


@OPS_BACKENDS
async def test_streams_show_merges_services_in_order_and_keeps_personal_data_sealed(ops_env):
    rt = registration()
    try:
        account = await register(rt.deps)
    finally:
        await rt.db.dispose()
    await verified(account)
    result = await acctctl(*["streams", "show", account, *BOTH, "--json"])
    assert result.exit_code == 0, result.output
    rows = orjson.loads(result.stdout)
    assert [r["service"] for r in rows][-1] == "verification"
    assert rows[0]["type"] == "registration.AccountRegistrationSubmitted"
    identity = rows[0]["data"]["identity"]
    assert identity["id_number_sealed"] == "«sealed»"
    assert identity["id_number_masked"].count("*") > 0
    assert "v1:" not in result.stdout and "v2:" not in result.stdout  # nor a sealed token

    # --reveal: refused without an operator token (exit 2), allowed with one and a reason
    refused = await acctctl(*["streams", "show", account, "-s", "registration", "--reveal",
                               "--reason", "court order 12"])
    assert refused.exit_code == 2
    reviewer = issue_token(DEV_AUTH_SECRET, subject="rev", roles=["reviewer"])
    assert (await acctctl(*["streams", "show", account, "-s", "registration", "--reveal",
                            "--reason", "x", "--token", reviewer])).exit_code == 2
    token = issue_token(DEV_AUTH_SECRET, subject="alice", roles=["operator"])
    shown = await acctctl(*["streams", "show", account, "-s", "registration", "--reveal",
                             "--reason", "court order 12", "--token", token, "--json"])
    assert shown.exit_code == 0, shown.output
    opened = orjson.loads(shown.stdout)[0]["data"]["identity"]
    assert opened["holder_name_sealed"] == "张三"
    async with runtime("registration") as rt:
        async with rt.db.connect() as conn:
            audit = await rt.store.read_stream(conn, "ops-registration")
    assert [e.type for e in audit] == ["ops.PersonalDataRevealed"]
    assert audit[0].data["operator"] == "alice" and audit[0].subject == account

    assert (await acctctl(*["streams", "show", "nobody", *BOTH])).exit_code == 3
    assert (await acctctl(*["streams", "show", account, "-s", "nosuch"])).exit_code == 3


@OPS_BACKENDS
async def test_streams_show_reveals_a_value_stored_v1_through_the_upcaster(ops_env):
    """A registration stored before ADR 0033 (every sealed value ``v1:``): acctctl reads it
    through the service's bootstrap, whose registry upcasts it, and --reveal opens it."""
    import uuid

    from tests.integration.test_sealed_values_legacy import legacy_registration

    account = f"acc-{uuid.uuid4().hex[:6]}"
    env, clear = legacy_registration(account)
    async with runtime("registration") as rt:
        async with rt.db.transaction() as tx:
            await rt.store.append(tx, env.stream_id, 0, [env])
    token = issue_token(DEV_AUTH_SECRET, subject="alice", roles=["operator"])
    shown = await acctctl(*["streams", "show", account, "-s", "registration", "--reveal",
                             "--reason", "court order 13", "--token", token, "--json"])
    assert shown.exit_code == 0, shown.output
    data = orjson.loads(shown.stdout)[0]["data"]
    assert "«cannot open»" not in shown.stdout
    assert {f: data["identity"][f] for f in clear if f != "contact_sealed"} == {
        f: v for f, v in clear.items() if f != "contact_sealed"}
    assert data["contact_sealed"] == clear["contact_sealed"]


@OPS_BACKENDS
async def test_state_as_of_folds_each_services_log_up_to_that_time(ops_env):
    rt = registration()
    try:
        before = datetime.now(UTC) - timedelta(seconds=1)
        account = await register(rt.deps)
    finally:
        await rt.db.dispose()
    await verified(account)
    now = await acctctl(*["state", account, *BOTH, "--json"])
    assert now.exit_code == 0, now.output
    out = orjson.loads(now.stdout)
    doc = out["services"]["registration"]["projections"]["accounts"][account]
    assert doc["status"] == "pending_verification"
    assert doc["owner"]["id_number_sealed"] == "«sealed»"
    schedule = out["services"]["verification"]["projections"]["verification_schedule"]
    assert schedule[account]["verified"] is True
    earlier = await acctctl(*["state", account, *BOTH, "--as-of", before.isoformat()])
    assert earlier.exit_code == 3
    assert (await acctctl(*["state", account, "--as-of", "yesterday"])).exit_code == 2


@OPS_BACKENDS
async def test_streams_show_reads_each_log_in_pages_and_loses_nothing(ops_env):
    """A stream longer than a page is shown whole and in order, read a page at a time."""
    rt = registration()
    try:
        account = await register(rt.deps)
        for _ in range(6):
            await handlers.record_activity(rt.deps, account, "login", key=None, digest="")
    finally:
        await rt.db.dispose()
    await verified(account)
    whole = await acctctl(*["streams", "show", account, *BOTH, "--json"])
    assert whole.exit_code == 0, whole.output
    rows = orjson.loads(whole.stdout)
    assert len(rows) == 8
    reads: list[int] = []
    original = EventStore.read_subject

    async def counted(self, conn, subject, **kw):
        events = await original(self, conn, subject, **kw)
        reads.append(len(events))
        return events

    EventStore.read_subject = counted  # type: ignore[method-assign]
    try:
        paged = await acctctl(*["streams", "show", account, *BOTH, "--json",
                                "--page-size", "3"])
    finally:
        EventStore.read_subject = original  # type: ignore[method-assign]
    assert paged.exit_code == 0, paged.output
    assert orjson.loads(paged.stdout) == rows
    assert reads == [3, 3, 1, 1]  # registration: 7 events in pages of 3; verification: 1
    registration_rows = [r for r in rows if r["service"] == "registration"]
    assert [r["stream_version"] for r in registration_rows] == list(range(1, 8))
    assert (await acctctl(*["streams", "show", account, "--page-size", "0"])).exit_code == 2
