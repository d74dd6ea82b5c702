"""Idempotency-Key: the answer is kept with the command's effects, on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from libs.events import Envelope
from libs.runtime.idempotency import Answer, fingerprint, run_idempotent
from libs.runtime.problems import ProblemError
from tests.conftest import BACKENDS

pytestmark = pytest.mark.postgres


def _work(store, stream: str, calls: list[int]):
    async def work(tx) -> Answer:
        calls.append(1)
        version = len(await store.read_stream(tx, stream))
        env = Envelope.new(type="test.Noted", data={"n": version}, stream_id=stream,
                           source="/test", time=datetime.now(UTC))
        await store.append(tx, stream, version, [env])
        return Answer(202, {"version": version + 1})
    return work


async def _stream_length(db, store, stream: str) -> int:
    async with db.connect() as conn:
        return len(await store.read_stream(conn, stream))


@BACKENDS
async def test_a_retry_with_the_same_key_gets_the_first_answer_and_appends_nothing(db, store):
    calls: list[int] = []
    digest = fingerprint("/v1/things", {"a": 1})
    first = await run_idempotent(db, "key-1", scope="things", digest=digest,
                                 work=_work(store, "s-1", calls))
    again = await run_idempotent(db, "key-1", scope="things", digest=digest,
                                 work=_work(store, "s-1", calls))
    assert first == again == Answer(202, {"version": 1})
    assert len(calls) == 1
    assert await _stream_length(db, store, "s-1") == 1


@BACKENDS
async def test_the_same_key_with_another_body_is_refused_and_changes_nothing(db, store):
    calls: list[int] = []
    await run_idempotent(db, "key-2", scope="things", digest=fingerprint({"a": 1}),
                         work=_work(store, "s-2", calls))
    with pytest.raises(ProblemError) as refused:
        await run_idempotent(db, "key-2", scope="things", digest=fingerprint({"a": 2}),
                             work=_work(store, "s-2", calls))
    assert refused.value.code == "idempotency-key-reused"
    assert await _stream_length(db, store, "s-2") == 1


@BACKENDS
async def test_without_a_key_every_request_acts_and_failures_are_not_remembered(db, store):
    calls: list[int] = []
    await run_idempotent(db, None, scope="things", digest="x", work=_work(store, "s-3", calls))
    await run_idempotent(db, None, scope="things", digest="x", work=_work(store, "s-3", calls))
    assert await _stream_length(db, store, "s-3") == 2

    async def failing(tx) -> Answer:
        raise ProblemError("bad input", code="bad-input")

    with pytest.raises(ProblemError):
        await run_idempotent(db, "key-3", scope="things", digest="y", work=failing)
    answer = await run_idempotent(db, "key-3", scope="things", digest="y",
                                  work=_work(store, "s-3", calls))
    assert answer.body == {"version": 3}


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_concurrent_requests_with_one_key_act_once(db, store):
    calls: list[int] = []
    digest = fingerprint({"a": "concurrent"})
    answers = await asyncio.gather(*(
        run_idempotent(db, "key-4", scope="things", digest=digest,
                       work=_work(store, "s-4", calls)) for _ in range(8)))
    assert len(set(map(repr, answers))) == 1
    assert await _stream_length(db, store, "s-4") == 1


@BACKENDS
async def test_an_operation_of_many_transactions_runs_once_per_key(db, store):
    from libs.runtime.idempotency import run_once

    runs: list[int] = []

    async def sweep() -> Answer:
        runs.append(1)
        for i in range(3):  # several transactions of its own, like a sweep
            await run_idempotent(db, None, scope="things", digest="-",
                                 work=_work(store, f"sweep-{i}", []))
        return Answer(200, {"swept": 3})

    first = await run_once(db, "sweep-key", scope="sweep", digest="d1", run=sweep)
    again = await run_once(db, "sweep-key", scope="sweep", digest="d1", run=sweep)
    assert first == again == Answer(200, {"swept": 3}) and len(runs) == 1
    with pytest.raises(ProblemError) as refused:
        await run_once(db, "sweep-key", scope="sweep", digest="d2", run=sweep)
    assert refused.value.code == "idempotency-key-reused" and len(runs) == 1
    await run_once(db, None, scope="sweep", digest="d1", run=sweep)
    assert len(runs) == 2
