"""libs.events — the shared event kernel of every service.

Public API (everything a service needs to be event-sourced, nothing domain-specific):

- :class:`Envelope` — CloudEvents 1.0 event with stream, schema, causal and trace attributes.
- :class:`EventRegistry`, :class:`EventPayload` — event contracts and upcasters;
  the published contracts of each service live in :mod:`libs.events.contracts`.
- :class:`Streams`, :class:`Changed`, :func:`transact` — load, decide, append with the
  cause, for every handler; a unit of work retried when a stream moved on meanwhile.
- :class:`Snapshots` — an aggregate's state kept beside its stream every N events, so a
  command's cost does not grow with the stream (given to :class:`Streams`).
- :class:`Database` — async engine and the transaction boundary handlers open.
- :class:`EventStore`, :class:`LogCursor`, :class:`LogPage`, :data:`START` — append with
  expected version, read a stream (as of a time), tail the gap-safe global log.
- :class:`Relay` — the transactional outbox's publisher to ``<service>.events``.
- :class:`Consumer`, :func:`each` — consumer group with inbox, retries and dead letters;
  :func:`list_dead_letters`, :func:`redrive`.
- :class:`DocumentProjection`, :class:`ProjectionRunner` — rebuildable read models;
  :class:`ProjectionsRunner` keeps several with one read of each page.
- :func:`upgrade` — Alembic migrations (kernel tables: :mod:`libs.events.migrations`).
- :func:`ensure_topics`, :func:`events_topic` — topics on the broker.
- :mod:`libs.events.kafka_binding` — the CloudEvents Kafka binding.
- :mod:`libs.events.testing` — in-memory store and fake broker, for unit tests only.
- Errors: :class:`ConcurrencyError`, :class:`UnknownEventTypeError`,
  :class:`InvalidEventError`, all :class:`EventKernelError` with a stable ``code``.
"""

from .aggregates import Changed, Streams, transact, version_of
from .checkpoints import load_checkpoint, reset_checkpoint, save_checkpoint
from .consumer import Consumer, each
from .db import Database
from .deadletters import DeadLetter, list_dead_letters, redrive
from .envelope import Envelope, new_event_id, new_id
from .errors import (
    AppendOnlyViolationError,
    ConcurrencyError,
    EventKernelError,
    InvalidEventError,
    UnknownEventTypeError,
)
from .migrate import upgrade
from .outbox import Relay
from .projections import DocumentProjection, ProjectionRunner, ProjectionsRunner, canonical_json
from .registry import EventPayload, EventRegistry
from .snapshots import Snapshot, Snapshots
from .store import START, EventStore, LogCursor, LogPage
from .topics import dead_letter_topic, ensure_topics, events_topic

__all__ = [
    "START",
    "AppendOnlyViolationError",
    "Changed",
    "ConcurrencyError",
    "Consumer",
    "Database",
    "DeadLetter",
    "DocumentProjection",
    "Envelope",
    "EventKernelError",
    "EventPayload",
    "EventRegistry",
    "EventStore",
    "InvalidEventError",
    "LogCursor",
    "LogPage",
    "ProjectionRunner",
    "ProjectionsRunner",
    "Snapshot",
    "Snapshots",
    "Streams",
    "Relay",
    "UnknownEventTypeError",
    "canonical_json",
    "dead_letter_topic",
    "each",
    "ensure_topics",
    "events_topic",
    "list_dead_letters",
    "load_checkpoint",
    "new_event_id",
    "new_id",
    "redrive",
    "reset_checkpoint",
    "save_checkpoint",
    "transact",
    "upgrade",
    "version_of",
]
