"""The ``eventsourcing`` library's PostgreSQL application recorder, driven the same way as ours.

``PostgresApplicationRecorder.insert_events`` serializes writers with
``LOCK TABLE ... IN EXCLUSIVE MODE`` in every transaction (that is its answer to the
global-order gap problem), uses psycopg 3 (sync), and one pooled connection per call.
These helpers run its three append shapes and its ``select_notifications`` reader.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from .common import Config, payload

TOPIC = "bench.domain:AccountTouched"
TABLE = "es_stored_events"


def open_recorder(
    cfg: Config, pool_size: int
) -> tuple[PostgresDatastore, PostgresApplicationRecorder]:
    p = cfg.pg_params
    datastore = PostgresDatastore(
        dbname=p["dbname"], host=p["host"], port=p["port"], user=p["user"],
        password=p["password"], pool_size=pool_size, max_overflow=0,
    )
    recorder = PostgresApplicationRecorder(datastore, events_table_name=TABLE)
    recorder.create_table()
    return datastore, recorder


def stored(originator_id: uuid.UUID, version: int, n: int) -> StoredEvent:
    return StoredEvent(
        originator_id=originator_id,
        originator_version=version,
        topic=TOPIC,
        state=orjson.dumps(payload(str(originator_id), n)),
    )


class Streams:
    """``count`` aggregates with their next versions, written round-robin."""

    def __init__(self, count: int) -> None:
        self.ids = [uuid.uuid4() for _ in range(count)]
        self.next = dict.fromkeys(self.ids, 1)
        self.i = 0

    def take(self) -> tuple[uuid.UUID, int]:
        oid = self.ids[self.i % len(self.ids)]
        self.i += 1
        v = self.next[oid]
        self.next[oid] = v + 1
        return oid, v


def single(recorder: PostgresApplicationRecorder, count: int, latencies: list[float],
           streams: Streams) -> float:
    """``count`` transactions of one event each, one after the other; returns seconds."""
    pc = time.perf_counter
    start = pc()
    for n in range(count):
        t = pc()
        oid, v = streams.take()
        recorder.insert_events([stored(oid, v, n)])
        latencies.append(pc() - t)
    return pc() - start


def concurrent(recorder: PostgresApplicationRecorder, threads: int, count: int,
               latencies: list[float], streams_per_thread: int = 20) -> float:
    """``count`` one-event transactions spread over ``threads`` threads; returns seconds."""
    per = count // threads
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        streams = Streams(streams_per_thread)
        mine: list[float] = []
        pc = time.perf_counter
        barrier.wait()
        for n in range(per):
            t = pc()
            oid, v = streams.take()
            recorder.insert_events([stored(oid, v, n)])
            mine.append(pc() - t)
        with lock:
            latencies.extend(mine)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        barrier.wait()
        start = time.perf_counter()
        for f in futures:
            f.result()
        return time.perf_counter() - start


def batch(recorder: PostgresApplicationRecorder, txns: int, size: int,
          latencies: list[float]) -> float:
    """``txns`` transactions of ``size`` events of one new aggregate each; returns seconds."""
    pc = time.perf_counter
    start = pc()
    for _ in range(txns):
        t = pc()
        oid = uuid.uuid4()
        recorder.insert_events([stored(oid, v, v) for v in range(1, size + 1)])
        latencies.append(pc() - t)
    return pc() - start


def load(recorder: PostgresApplicationRecorder, events: int, per_txn: int = 1000) -> None:
    """Fill the table with ``events`` events, ``per_txn`` per aggregate and transaction."""
    done = 0
    while done < events:
        k = min(per_txn, events - done)
        oid = uuid.uuid4()
        recorder.insert_events([stored(oid, v, v) for v in range(1, k + 1)])
        done += k


def read_all(recorder: PostgresApplicationRecorder, page: int) -> tuple[int, float]:
    """Page through every notification, decoding each state with orjson; (events, seconds)."""
    loads = orjson.loads
    pc = time.perf_counter
    start = pc()
    total = 0
    after: int | None = None
    while True:
        notes = recorder.select_notifications(after, page, inclusive_of_start=after is None)
        if not notes:
            break
        for n in notes:
            loads(n.state)
        total += len(notes)
        after = notes[-1].id
    return total, pc() - start
