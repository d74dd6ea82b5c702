"""Errors raised by the event kernel. Each carries a stable ``code`` for problem details."""

from __future__ import annotations


class EventKernelError(Exception):
    """Base class of every error the kernel raises."""

    code = "event-kernel-error"


class ConcurrencyError(EventKernelError):
    """The stream is not at the version the writer expected; reload and retry the command."""

    code = "concurrency-conflict"

    def __init__(self, stream_id: str, expected_version: int, detail: str = "") -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        msg = f"stream {stream_id!r} is not at expected version {expected_version}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class UnknownEventTypeError(EventKernelError):
    """No contract is registered for this event type (or this schema version of it)."""

    code = "unknown-event-type"

    def __init__(self, event_type: str, schema_version: int | None = None) -> None:
        self.event_type = event_type
        self.schema_version = schema_version
        where = f" version {schema_version}" if schema_version is not None else ""
        super().__init__(f"no contract registered for event type {event_type!r}{where}")


class InvalidEventError(EventKernelError):
    """The payload does not satisfy its contract, or the envelope is malformed."""

    code = "invalid-event"


class AppendOnlyViolationError(EventKernelError):
    """Something tried to change or delete a stored event."""

    code = "append-only-violation"
