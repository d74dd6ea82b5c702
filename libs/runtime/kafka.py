"""Kafka clients configured the way the kernel relies on them."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


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


def make_consumer(bootstrap_servers: str, group_id: str, topics: Sequence[str]) -> AIOKafkaConsumer:
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
    )
