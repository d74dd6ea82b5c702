"""acctctl replay: a shadow rebuilt while registrations keep arriving converges to the live
projection, and the swap loses nothing (side table included)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from sqlalchemy import text

from libs.events import ProjectionRunner
from libs.events.projections import count_documents, documents_hash
from ops import replay, verify
from services.registration.bootstrap import bootstrap as registration
from tests.conftest import eventually
from tests.ops.conftest import OPS_BACKENDS, acctctl, register

pytestmark = pytest.mark.postgres
LIST = text("SELECT COUNT(*) FROM registration_account_list")


@OPS_BACKENDS
async def test_replay_while_registrations_arrive_converges_and_swap_loses_nothing(ops_env):
    rt = registration()  # the running service: its runner and its handlers
    [accounts] = rt.projection_defs
    runner = ProjectionRunner(db=rt.db, store=rt.store, projection=accounts, batch_size=50,
                              idle_seconds=0.01)
    registered: list[str] = []
    stop = asyncio.Event()

    async def writer() -> None:
        while not stop.is_set():
            registered.append(await register(rt.deps))
            await asyncio.sleep(0.005)

    for _ in range(30):
        registered.append(await register(rt.deps))
    runner_task = asyncio.create_task(runner.run())
    writing = asyncio.create_task(writer())
    try:
        await asyncio.sleep(0.3)
        out = await replay.run("registration", "accounts", operator="test", page_size=20)
        cmp = out["comparison"]
        assert cmp["identical"], cmp["differences"]
        assert cmp["shadow_documents"] == cmp["live_documents"] >= 30
        swapped = await replay.run("registration", "accounts", swap=True, operator="test",
                                   page_size=20)
        assert swapped["comparison"]["identical"]
        assert swapped["swapped"]["old"] == "accounts~old"
        await asyncio.sleep(0.3)  # registrations keep arriving after the swap
    finally:
        stop.set()
        await writing
    runner.stop()
    await asyncio.wait_for(runner_task, 10)

    async def caught_up() -> bool:
        # The horizon is cluster-wide: another database's open transaction holds it back.
        await runner.catch_up()
        async with rt.db.connect() as conn:
            return await count_documents(conn, "accounts") == len(set(registered))

    await eventually(caught_up, what="the live projection to catch up")

    async with rt.db.connect() as conn:
        live = await count_documents(conn, "accounts")
        listed = await conn.fetchval(LIST)
        kept = await count_documents(conn, "accounts~old")
        audit = await rt.store.read_stream(conn, "ops-registration")
    assert live == listed == len(set(registered)), (live, listed, len(registered))
    assert kept > 0
    assert [e.type for e in audit] == ["ops.ProjectionSwapped"]
    proof = await verify._projection_check(rt, accounts)
    assert proof["ok"], proof
    await rt.db.dispose()

    # a second swap refuses while the old copy is kept; --drop-old alone drops it
    again = await acctctl("replay", "-s", "registration", "-p", "accounts", "--swap", "--json")
    assert again.exit_code == 4, again.output
    dropped = await acctctl("replay", "-s", "registration", "-p", "accounts", "--drop-old",
                            "--json")
    assert dropped.exit_code == 0 and orjson.loads(dropped.stdout)["dropped_old"] == kept
    assert (await acctctl("replay", "-s", "registration", "-p", "nosuch")).exit_code == 3


@OPS_BACKENDS
async def test_replay_reports_a_live_projection_that_drifted(ops_env):
    rt = registration()
    for _ in range(5):
        await register(rt.deps)
    await rt.catch_up_projections()
    async with rt.db.transaction() as tx:  # corrupt one live document
        await tx.execute(text("UPDATE projection_documents SET doc = '{\"x\": 1}' "
                              "WHERE projection = 'accounts' AND key = "
                              "(SELECT MIN(key) FROM projection_documents "
                              "WHERE projection = 'accounts')"))
        before = await documents_hash(tx, "accounts")
    await rt.db.dispose()
    result = await acctctl("replay", "-s", "registration", "-p", "accounts", "--json")
    assert result.exit_code == 4, result.output
    out = orjson.loads(result.stdout)
    assert not out["comparison"]["identical"]
    [diff] = out["comparison"]["differences"]
    assert diff["live"] == {"x": 1} and diff["shadow"]["account_id"] == diff["key"]
    assert out["comparison"]["live_hash"] == before
    fixed = await acctctl("replay", "-s", "registration", "-p", "accounts", "--swap",
                          "--drop-old", "--json")
    assert fixed.exit_code == 0, fixed.output
    assert orjson.loads(fixed.stdout)["dropped_old"] == 5
    verified = await acctctl("verify-log", "-s", "registration", "--json")
    assert verified.exit_code == 0, verified.output
