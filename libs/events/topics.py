"""Topic names and their creation on the broker."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)

SERVICES = ("registration", "verification", "transfer", "credit", "enforcement")


def events_topic(service: str) -> str:
    """The topic a service publishes its events to: ``<service>.events``."""
    return f"{service}.events"


def dead_letter_topic(consumer: str) -> str:
    return f"{consumer}.deadletter"


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
