"""Kafka clients configured the way the kernel relies on them."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest


def make_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """acks=all and idempotence: a record acknowledged is on every in-sync replica, and
    retries neither duplicate nor reorder records within a partition."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )


# A fetch is answered once it holds FETCH_MIN_BYTES or after FETCH_MAX_WAIT_MS (ADR 0045):
# under load one fetch carries a batch instead of one record, so the broker answers (and
# the consumer commits offsets) a few times a second instead of once per event, for at
# most FETCH_MAX_WAIT_MS more per hop when the log is quiet. aiokafka's defaults (1 byte,
# 500 ms) answer every record at once. 100 ms, not 25 (ADR 0048): every idle consumer
# group asks the broker again after each wait, and at 25 ms those empty fetches cost more
# CPU on two cores than the wait saves in latency.
FETCH_MIN_BYTES = 64 * 1024
FETCH_MAX_WAIT_MS = 100


def make_consumer(bootstrap_servers: str, group_id: str, topics: Sequence[str], *,
                  fetch_min_bytes: int = FETCH_MIN_BYTES,
                  fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> AIOKafkaConsumer:
    """Offsets are committed by the kernel's consumer after its database commit, never
    automatically; a new group starts from the beginning of each topic (the topics are
    the replayable log)."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_min_bytes=fetch_min_bytes,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )


async def probe_broker(producer: AIOKafkaProducer, topic: str) -> None:
    """Ask a broker, over the network, for ``topic``'s metadata; raises if none answers.

    Not the client's cached metadata (``partitions_for`` answers from it while the broker
    is gone): a request that needs a live connection and a reply. Give it a deadline.
    """
    client = producer.client
    node = client.get_random_node()
    if node is None:
        raise KafkaError("no broker known")
    response = await client.send(node, MetadataRequest([topic]))
    if not response.brokers:
        raise KafkaError("the broker answered without any broker in its metadata")
