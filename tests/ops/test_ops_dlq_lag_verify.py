"""acctctl dlq (retry in stream order, skip with reason, both recorded), lag and verify-log
against the real broker."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import text

from libs.events import Envelope, Relay, ensure_topics, events_topic, save_checkpoint
from libs.events.kafka_binding import to_kafka
from libs.events.store import LogCursor
from libs.runtime.kafka import make_producer
from services.registration.bootstrap import bootstrap as registration
from tests.conftest import eventually
from tests.ops.conftest import OPS_BACKENDS, acctctl, register

pytestmark = pytest.mark.postgres
CONSUMER = "registration-inbound"
_DEAD = text(
    """INSERT INTO dead_letters (consumer, event_id, event_type, topic, partition, "offset", key,
       value, headers, error, attempts, failed_at)
       VALUES (:consumer, :event_id, :event_type, 'verification.events', 0, :offset, :key,
               :value, :headers, 'RuntimeError: provider away', 5, :now)"""
)


async def dead_letter(rt, env: Envelope, offset: int) -> None:
    key, value, headers = to_kafka(env)
    async with rt.db.transaction() as tx:
        await tx.execute(_DEAD, {
            "consumer": CONSUMER, "event_id": env.id, "event_type": env.type, "offset": offset,
            "key": key, "value": value, "now": datetime.now(UTC),
            "headers": orjson.dumps([[k, v.decode()] for k, v in headers]).decode()})


def verified(account_id: str, version: int) -> Envelope:
    return Envelope.new(type="verification.AccountVerified",
                        data={"account_id": account_id, "legal_basis": ["A8.1"],
                              "identity_level": "two_factor", "badge": "verified"},
                        stream_id=f"verification-{account_id}", subject=account_id,
                        source="/verification", time=datetime.now(UTC), schema_version=1
                        ).with_stream_version(version)


@OPS_BACKENDS
async def test_dlq_list_show_retry_and_skip_are_recorded(ops_env):
    rt = registration()
    a, b = await register(rt.deps), await register(rt.deps)
    await dead_letter(rt, verified(a, 1), offset=7)
    await dead_letter(rt, verified(b, 1), offset=8)
    await rt.db.dispose()

    listed = await acctctl("dlq", "list", "-s", "registration", "--json")
    assert listed.exit_code == 0, listed.output
    letters = orjson.loads(listed.stdout)
    assert [(x["event_type"], x["status"]) for x in letters] == [
        ("verification.AccountVerified", "pending")] * 2
    first, second = (x["id"] for x in letters)
    shown = orjson.loads((await acctctl("dlq", "show", "-s", "registration", str(first),
                                        "--json")).stdout)
    assert shown["account_id"] == a and shown["error"].startswith("RuntimeError")
    assert (await acctctl("dlq", "show", "-s", "registration", "999")).exit_code == 3

    retried = await acctctl("dlq", "retry", "-s", "registration", str(first), "--reason",
                            "provider back", "--json")
    assert retried.exit_code == 0, retried.output
    assert [r["succeeded"] for r in orjson.loads(retried.stdout)] == [True]
    assert (await acctctl("dlq", "skip", "-s", "registration", str(second))).exit_code == 2
    skipped = await acctctl("dlq", "skip", "-s", "registration", str(second), "--reason",
                            "account deregistered meanwhile")
    assert skipped.exit_code == 0, skipped.output
    assert (await acctctl("dlq", "skip", "-s", "registration", str(second), "--reason",
                          "again")).exit_code == 1
    pending = orjson.loads((await acctctl("dlq", "list", "-s", "registration", "--json")).stdout)
    assert pending == []

    rt = registration()
    async with rt.db.connect() as conn:
        audit = await rt.store.read_stream(conn, "ops-registration")
        events = await rt.store.read_stream(conn, f"account-{a}")
    await rt.db.dispose()
    assert [(e.type, e.subject) for e in audit] == [("ops.DeadLetterRetried", a),
                                                    ("ops.DeadLetterSkipped", b)]
    assert audit[1].data["reason"] == "account deregistered meanwhile"
    assert events[-1].type == "registration.AccountActivated"  # the handler ran


async def test_lag_and_verify_log_against_the_broker(ops_env, kafka_bootstrap):
    rt = registration()
    for _ in range(5):
        await register(rt.deps)
    await rt.catch_up_projections()
    await ensure_topics(kafka_bootstrap, [rt.ns + events_topic(s) for s in
                                          ("registration", "verification", "credit",
                                           "enforcement", "transfer")])
    out = orjson.loads((await acctctl("lag", "-s", "registration", "--json")).stdout)
    relay = out["registration"]["relay"]
    assert relay["unpublished"] == 5 and relay["oldest_age_seconds"] >= 0
    lags = out["registration"]["consumers"]
    assert {r["consumer"] for r in lags} == {CONSUMER} and all(r["lag"] == 0 for r in lags)

    producer = make_producer(kafka_bootstrap, "ops-test")
    await producer.start()
    relay = Relay(db=rt.db, store=rt.store, producer=producer, topic=rt.topic)
    published = 0

    async def all_published() -> bool:  # the horizon is cluster-wide: it may hold back
        nonlocal published
        published += await relay.publish_pending()
        return published == 5

    try:
        await eventually(all_published, what="the relay to publish the 5 events")
    finally:
        await producer.stop()
    out = orjson.loads((await acctctl("lag", "-s", "registration", "--json")).stdout)
    assert out["registration"]["relay"]["unpublished"] == 0

    ok = await acctctl("verify-log", "-s", "registration", "--kafka", "--json")
    assert ok.exit_code == 0, ok.output
    report = orjson.loads(ok.stdout)
    assert report["relay"]["passed"] == 5 and report["gaps"] == []

    # a rolled-back append leaves a gap (reported, harmless); a checkpoint moved past events
    # it never folded is a skip (exit 4)
    try:
        async with rt.db.transaction() as tx:
            await tx.execute(text("SELECT 1"))
            await register(rt.deps)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    await register(rt.deps)
    async with rt.db.transaction() as tx:
        await tx.execute(text("DELETE FROM checkpoints WHERE name = 'projection:accounts'"))
        await save_checkpoint(tx, "projection:accounts", LogCursor(10**12, 10**6))
    await rt.db.dispose()
    bad = await acctctl("verify-log", "-s", "registration", "--json")
    assert bad.exit_code == 4, bad.output
    report = orjson.loads(bad.stdout)
    assert [p["ok"] for p in report["projections"]] == [False]
