"""Topic names and their creation on the broker."""

from __future__ import annotations

import logging
from functools import cache

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)

SERVICES = ("registration", "verification", "transfer", "credit", "enforcement")


def events_topic(service: str) -> str:
    """The topic a service publishes its events to: ``<service>.events``."""
    return f"{service}.events"


def dead_letter_topic(consumer: str) -> str:
    return f"{consumer}.deadletter"


# Event types every service may record in its own store, so they appear on its topic too:
# the operations tool's audit trail (``ops.*``, libs/events/contracts/ops.py).
SHARED_PREFIXES = ("ops",)


@cache  # asked per consumed record; the topics are few
def producer_of(topic: str, namespace: str = "") -> str | None:
    """The service whose events ``topic`` carries (``<namespace><service>.events``), or
    None for a topic that is no service's events topic (the kernel's tests use their own)."""
    name = topic[len(namespace):] if namespace and topic.startswith(namespace) else topic
    for service in SERVICES:
        if name == events_topic(service):
            return service
    return None


def belongs_to_topic(event_type: str, topic: str, namespace: str = "") -> bool:
    """Whether an event of ``event_type`` may come from ``topic``: a service's topic carries
    that service's event types (``<service>.<Name>``, the contracts of
    ``libs/events/contracts/<service>.py``) and the shared ones; any other topic, any type."""
    producer = producer_of(topic, namespace)
    if producer is None:
        return True
    prefix = event_type.split(".", 1)[0]
    return prefix == producer or prefix in SHARED_PREFIXES


async def ensure_topics(
    bootstrap_servers: str,
    names: list[str],
    *,
    partitions: int = 3,
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics that do not exist yet, with unlimited retention; returns those created.

    Event topics are a replayable log, so nothing is ever deleted by age or size.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name=n,
                            num_partitions=partitions,
                            replication_factor=replication_factor,
                            topic_configs={"retention.ms": "-1", "retention.bytes": "-1"},
                        )
                        for n in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass  # another process won the race; the topic is there, which is all we need
            log.info("created topics %s", missing)
        return missing
    finally:
        await admin.close()
