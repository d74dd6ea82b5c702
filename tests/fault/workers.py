"""Worker processes for fault tests: a relay or a consumer that the test kills with SIGKILL.

python -m tests.fault.workers relay    DATABASE_URL TOPIC
python -m tests.fault.workers consumer DATABASE_URL TOPIC GROUP
"""

from __future__ import annotations

import asyncio
import sys

from libs.events import Consumer, Database, DocumentProjection, EventStore, Relay
from libs.runtime.kafka import make_consumer, make_producer
from tests.conftest import KAFKA, registry


def tally(doc, event):
    doc = doc or {"count": 0, "ns": []}
    return {"count": doc["count"] + 1, "ns": doc["ns"] + [event.data["n"]]}


class SlowProducer:
    """Small pages, each followed by a pause, so the kill lands mid-stream."""

    def __init__(self, real) -> None:
        self.real = real

    async def send(self, *args, **kw):
        await asyncio.sleep(0.002)
        return await self.real.send(*args, **kw)


async def relay(url: str, topic: str) -> None:
    db = Database(url)
    producer = make_producer(KAFKA, "fault-relay")
    await producer.start()
    r = Relay(db=db, store=EventStore(registry, dialect=db.dialect),
              producer=SlowProducer(producer), topic=topic, batch_size=25)
    await r.run()


async def consumer(url: str, topic: str, group: str) -> None:
    db = Database(url)
    producer = make_producer(KAFKA, "fault-consumer")
    await producer.start()
    projection = DocumentProjection("tally", tally)

    async def handle(conn, events):
        await asyncio.sleep(0.03)
        await projection.apply(conn, events)

    c = Consumer(name=group, db=db, registry=registry,
                 source=make_consumer(KAFKA, group, [topic]), handler=handle,
                 dead_letter_producer=producer, batch_size=20)
    await c.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    asyncio.run({"relay": relay, "consumer": consumer}[kind](*args))
