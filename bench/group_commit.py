"""Group commit, measured before deciding (issue 15, ADR 0035): not adopted by the kernel.

Concurrent commands (1 event each, ``writers`` tasks, as ``append_concurrent``) either
run as today, each in its own transaction on a ``Database(pool_size=writers)``
(baseline), or are handed to a :class:`GroupCommit` prototype: a leader takes the
commands queued meanwhile (at most ``max_batch``), runs them in one transaction with a
savepoint each (a failing command is rolled back alone and gets its own error) and
answers every command only after the shared commit, so an answer is still durable.
Reference rows only: PostgreSQL already flushes the WAL of concurrent commits together,
and the savepoints cost two round trips per command. The notes carry the unsafe upper
bound (no savepoints: one failing command would fail its whole group).
"""

from __future__ import annotations

import asyncio
import time

from libs.events import Database, EventStore

from .common import (
    Config,
    Result,
    envelope,
    log,
    make_registry,
    new_stream_id,
    reset_db,
    seed_history,
)

STREAMS_PER_WRITER = 100
ROUNDS = 2


class GroupCommit:
    """Commands queued within one leader's turn share a transaction (prototype)."""

    def __init__(self, db: Database, *, leaders: int, max_batch: int,
                 savepoints: bool = True) -> None:
        self.db, self.leaders, self.max_batch, self.savepoints = db, leaders, max_batch, savepoints
        self.queue: list = []
        self.active = 0
        self.transactions = 0
        self.commands = 0

    async def run(self, work):
        fut = asyncio.get_running_loop().create_future()
        self.queue.append((work, fut))
        if self.active < self.leaders:
            self.active += 1
            asyncio.get_running_loop().create_task(self._lead())
        return await fut

    async def _lead(self) -> None:
        try:
            while self.queue:
                batch, self.queue = self.queue[:self.max_batch], self.queue[self.max_batch:]
                done = []
                try:
                    async with self.db.transaction() as tx:
                        for work, fut in batch:
                            if not self.savepoints:
                                done.append((fut, await work(tx), None))
                                continue
                            savepoint = tx.conn.transaction()  # nested: a SAVEPOINT
                            await savepoint.start()
                            try:
                                result = await work(tx)
                                await savepoint.commit()
                                done.append((fut, result, None))
                            except Exception as exc:  # noqa: BLE001 - the command's own answer
                                await savepoint.rollback()
                                done.append((fut, None, exc))
                except Exception as exc:  # noqa: BLE001 - the shared commit failed: all fail
                    done = [(fut, None, exc) for _, fut in batch]
                self.transactions += 1
                self.commands += len(batch)
                for fut, result, exc in done:  # answered after the commit only
                    if exc is None:
                        fut.set_result(result)
                    else:
                        fut.set_exception(exc)
        finally:
            self.active -= 1


async def run(cfg: Config) -> list[Result]:
    w = cfg.writers
    log(f"== group_commit: 1 event/command, {w} writers, shared transactions vs one each")
    await reset_db(cfg)
    await seed_history(cfg)
    store = EventStore(make_registry(), dialect="postgresql")
    plain_db = Database(cfg.db_url, pool_size=w)
    shapes = {  # name -> (leaders, max batch, savepoints)
        "savepoints, 1 leader, <= 16 per txn": (1, 16, True),
        f"savepoints, 2 leaders, <= {max(w // 2, 1)} per txn": (2, max(w // 2, 1), True),
        "no savepoints (unsafe upper bound), 1 leader": (1, 16, False),
    }
    groups = {name: GroupCommit(Database(cfg.db_url, pool_size=leaders), leaders=leaders,
                                max_batch=mb, savepoints=sp)
              for name, (leaders, mb, sp) in shapes.items()}
    sets = [[new_stream_id() for _ in range(STREAMS_PER_WRITER)] for _ in range(w)]
    version = {s: 0 for streams in sets for s in streams}

    async def plain(work):
        async with plain_db.transaction() as tx:
            return await work(tx)

    async def writers(runner, count: int) -> float:
        async def writer(i: int) -> None:
            for n in range(count // w):
                sid = sets[i][n % STREAMS_PER_WRITER]
                v = version[sid]
                env = envelope(sid, n)

                async def work(tx, sid=sid, v=v, env=env):
                    return await store.append(tx, sid, v, [env])

                await runner(work)
                version[sid] = v + 1

        start = time.perf_counter()
        await asyncio.gather(*(writer(i) for i in range(w)))
        return time.perf_counter() - start

    runners = {"plain": plain, **{name: g.run for name, g in groups.items()}}
    for runner in runners.values():
        await writers(runner, cfg.warmup)
    secs = dict.fromkeys(runners, 0.0)
    per = cfg.concurrent_txns // ROUNDS // w * w
    for _ in range(ROUNDS):
        for name, runner in runners.items():
            secs[name] += await writers(runner, per)
    await plain_db.dispose()
    for g in groups.values():
        await g.db.dispose()
    n = per * ROUNDS
    rate = {name: n / s for name, s in secs.items()}
    unsafe = next(name for name in groups if "unsafe" in name)
    results = []
    for name, g in groups.items():
        if name == unsafe:
            continue
        results.append(Result(
            f"group commit ({name}), {w} writers: vs a transaction each (reference)",
            rate[name], "commands/s", rate["plain"],
            f"one transaction per command, {w} conns", reference=True,
            notes=f"{g.commands / max(g.transactions, 1):.1f} commands per transaction; "
                  f"unsafe upper bound without savepoints {rate[unsafe] / rate['plain']:.2f}x"))
    return results
