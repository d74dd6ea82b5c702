"""Event contracts: (type, schema version) -> payload schema, and upcasters from old versions.

A contract is a pydantic model deriving from :class:`EventPayload` that names its
``event_type`` and ``schema_version``. Producers validate payloads against the
latest version before appending; readers upcast old payloads step by step
(v1 -> v2 -> ...) so that consumers only ever see the latest shape.

Example::

    registry = EventRegistry()

    @registry.contract
    class AccountSuspended(EventPayload):
        event_type: ClassVar[str] = "registration.AccountSuspended"
        schema_version: ClassVar[int] = 2
        reason: str
        legal_basis: str

    @registry.upcaster("registration.AccountSuspended", from_version=1)
    def _v1_to_v2(data):
        return {**data, "legal_basis": "A10.2"}

Besides these per (type, version) steps, a registry may hold *value upcasters*
(:meth:`EventRegistry.add_value_upcaster`): functions of a whole event, applied after the
schema upcasting to every event read, whatever its type, for a change in how values are
written rather than in a payload's shape (sealed values of an older format, ADR 0033).
The kernel only runs them; what they need (keys) their owner gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from .envelope import Envelope
from .errors import InvalidEventError, UnknownEventTypeError

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
ValueUpcaster = Callable[[Envelope], Envelope]

_TYPE = itemgetter(Envelope._fields.index("type"))
_SCHEMA_VERSION = itemgetter(Envelope._fields.index("schema_version"))
_TYPE_AND_VERSION = itemgetter(Envelope._fields.index("type"),
                               Envelope._fields.index("schema_version"))


class EventPayload(BaseModel):
    """Base class of event payload contracts: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    def to_data(self) -> dict[str, Any]:
        """The payload as JSON-ready data, as it is stored and published."""
        return self.model_dump(mode="json")


class EventRegistry:
    """Known event types, their payload schemas and their upcasters."""

    def __init__(self) -> None:
        self._schemas: dict[tuple[str, int], type[EventPayload]] = {}
        self._latest: dict[str, int] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._values: dict[str, tuple[ValueUpcaster, str | None, bytes | None]] = {}
        self._lists: dict[type[EventPayload], TypeAdapter] = {}

    # -- registration -------------------------------------------------------------
    def contract(self, model: type[EventPayload]) -> type[EventPayload]:
        """Register ``model`` as the schema of its (event_type, schema_version); a decorator."""
        key = (model.event_type, model.schema_version)
        if key in self._schemas and self._schemas[key] is not model:
            raise ValueError(f"contract {key} registered twice")
        self._schemas[key] = model
        self._latest[model.event_type] = max(self._latest.get(model.event_type, 0), key[1])
        return model

    def upcaster(self, event_type: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function turning a ``from_version`` payload into ``from_version + 1``."""

        def decorate(fn: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = fn
            return fn

        return decorate

    def add_value_upcaster(self, name: str, fn: ValueUpcaster, *,
                           marker: str | None = None) -> None:
        """Apply ``fn`` to every event read (:meth:`upcast`), after its schema upcasting.

        For a change in how values are written that is no schema change (any type, any
        version): ``fn`` takes the event at its latest schema and returns it with its data
        brought up to date. It must return the envelope itself when it has nothing to change
        and be idempotent: an event already upcast may be upcast again (``payload`` of an
        event a consumer decoded). One function per ``name``: adding another under the
        same name replaces it (a service wired again with other keys).

        ``marker``, if given, is a text that the JSON form of every payload ``fn`` changes
        contains (``'"v1:'``: a string value starting with ``v1:``) as it was stored and
        published; readers that still hold that text (the event store's pages, a consumer's
        record) call ``fn`` only for the payloads that contain it, so that an event with
        nothing to change costs one substring search.
        """
        if not name:
            raise ValueError("a value upcaster needs a name")
        self._values[name] = (fn, marker, None if marker is None else marker.encode())

    @property
    def value_upcasters(self) -> list[tuple[ValueUpcaster, str | None]]:
        """The value upcasters and their markers, in the order they apply."""
        return [(fn, marker) for fn, marker, _ in self._values.values()]

    def include(self, other: EventRegistry) -> None:
        """Merge another registry's contracts and upcasters (value upcasters too) into
        this one."""
        for model in other._schemas.values():
            self.contract(model)
        self._upcasters.update(other._upcasters)
        self._values.update(other._values)

    # -- queries ----------------------------------------------------------------
    def knows(self, event_type: str) -> bool:
        return event_type in self._latest

    def latest_version(self, event_type: str) -> int:
        try:
            return self._latest[event_type]
        except KeyError:
            raise UnknownEventTypeError(event_type) from None

    def schema(self, event_type: str, schema_version: int | None = None) -> type[EventPayload]:
        version = schema_version or self.latest_version(event_type)
        try:
            return self._schemas[(event_type, version)]
        except KeyError:
            raise UnknownEventTypeError(event_type, version) from None

    # -- use ----------------------------------------------------------------------
    def _writable(self, envelope: Envelope) -> tuple[Envelope, type[EventPayload]]:
        """The envelope at its type's latest version (0 means "the latest") and its schema."""
        latest = self.latest_version(envelope.type)
        if envelope.schema_version == 0:
            envelope = envelope.with_data(envelope.data, latest)
        elif envelope.schema_version != latest:
            raise InvalidEventError(
                f"{envelope.type} must be written at schema version {latest}, "
                f"not {envelope.schema_version}"
            )
        return envelope, self._schemas[(envelope.type, latest)]

    def validate(self, envelope: Envelope) -> Envelope:
        """Check a new event's payload against its contract; return it with normalised data.

        An event at schema version 0 is taken to be at its type's latest version.
        Raises :class:`UnknownEventTypeError` or :class:`InvalidEventError`.
        """
        envelope, model = self._writable(envelope)
        try:
            data = model.model_validate(envelope.data).to_data()
        except ValidationError as exc:
            raise InvalidEventError(f"{envelope.type} payload is invalid: {exc}") from exc
        return envelope.with_data(data, envelope.schema_version)

    def check_json(self, envelope: Envelope, data_json: bytes) -> Envelope:
        """Validate an event whose payload is already serialized, on the append hot path.

        Validation parses the JSON text that will be stored (pydantic's Rust JSON parser,
        strict types), so the payload is serialized once and not re-dumped; returns the
        envelope with its schema version set.
        """
        envelope, model = self._writable(envelope)
        try:
            # Strict: what is stored must already be the contract's shape, not coercible to it.
            model.model_validate_json(data_json, strict=True)
        except ValidationError as exc:
            raise InvalidEventError(f"{envelope.type} payload is invalid: {exc}") from exc
        return envelope

    def check_json_batch(self, envelopes: Sequence[Envelope], datas: Sequence[bytes]
                         ) -> list[int]:
        """:meth:`check_json` for a batch: the schema version each event is written at.

        The payloads of each event type are validated together, as one JSON array through
        a ``TypeAdapter(list[Model])`` (one call into pydantic per type instead of one per
        event); when a batch fails, its events are checked one by one so that the error
        names the first invalid payload exactly as :meth:`check_json` does.
        """
        if len(envelopes) == 1:  # most commands: no grouping to do
            return [self.check_json(envelopes[0], datas[0]).schema_version]
        types = set(map(_TYPE, envelopes))
        if len(types) == 1:
            # The common batch: one event type (checked once, not per event).
            (event_type,) = types
            latest = self._latest.get(event_type)
            if latest is None or not set(map(_SCHEMA_VERSION, envelopes)) <= {0, latest}:
                for e in envelopes:
                    self._writable(e)  # raises the precise error
            versions = [latest] * len(envelopes)
            groups = {self._schemas[(event_type, latest)]: list(datas)}
        else:
            versions = []
            groups: dict[type[EventPayload], list[bytes]] = {}
            for e, d in zip(envelopes, datas, strict=True):
                e, model = self._writable(e)
                versions.append(e.schema_version)
                group = groups.get(model)
                if group is None:
                    groups[model] = [d]
                else:
                    group.append(d)
        for model, group in groups.items():
            if len(group) == 1:
                try:
                    model.model_validate_json(group[0], strict=True)
                except ValidationError as exc:
                    raise InvalidEventError(
                        f"{model.event_type} payload is invalid: {exc}") from exc
                continue
            adapter = self._lists.get(model)
            if adapter is None:
                adapter = self._lists[model] = TypeAdapter(list[model])
            try:
                adapter.validate_json(b"[" + b",".join(group) + b"]", strict=True)
            except ValidationError as exc:
                for e, d in zip(envelopes, datas, strict=True):
                    self.check_json(e, d)
                raise InvalidEventError(  # pragma: no cover - the loop above raised
                    f"{model.event_type} payload is invalid: {exc}") from exc
        return versions

    def upcast(self, envelope: Envelope, *, stored: str | bytes | None = None) -> Envelope:
        """Bring an event read from the store or the broker to its type's latest schema,
        then through the value upcasters (:meth:`add_value_upcaster`).

        ``stored``: the payload's JSON text as stored or published, when the reader has it
        (a Kafka record's value); value upcasters whose marker it lacks are skipped.

        An event already at the latest version, which no value upcaster changes, is
        returned as is (no copy, no validation: it was validated when it was written).
        Raises :class:`UnknownEventTypeError` for a type or version this registry does not
        know, and :class:`InvalidEventError` when an upcaster step is missing.
        """
        envelope = self.upcast_schema(envelope)
        for fn, marker, bmarker in self._values.values():
            if stored is not None and marker is not None and (
                    (bmarker if isinstance(stored, bytes) else marker) not in stored):
                continue
            envelope = fn(envelope)
        return envelope

    def upcast_page(self, events: list[Envelope], stored: list[str]) -> list[Envelope]:
        """:meth:`upcast` for a page of events read together, ``stored`` their payloads'
        JSON texts: the schema steps only when some (type, version) of the page is not
        its type's latest (one C-level pass finds out), and each value upcaster only for
        the events whose stored text has its marker."""
        latest = self._latest
        if any(latest.get(t) != v for t, v in set(map(_TYPE_AND_VERSION, events))):
            events = [self.upcast_schema(e) for e in events]
        for fn, marker, _ in self._values.values():
            if marker is None:
                events = [fn(e) for e in events]
            else:
                events = [fn(e) if marker in text else e
                          for e, text in zip(events, stored, strict=True)]
        return events

    def upcast_schema(self, envelope: Envelope) -> Envelope:
        """:meth:`upcast` without the value upcasters: the per (type, version) steps only
        (:meth:`upcast_page` applies the value upcasters to a page's events whose stored
        text has their marker)."""
        latest = self.latest_version(envelope.type)
        version = envelope.schema_version
        if version == latest:
            return envelope
        if version > latest or version < 1:
            raise UnknownEventTypeError(envelope.type, version)
        data = envelope.data
        while version < latest:
            step = self._upcasters.get((envelope.type, version))
            if step is None:
                raise InvalidEventError(
                    f"no upcaster for {envelope.type} from schema version {version}"
                )
            data = step(dict(data))
            version += 1
        return envelope.with_data(data, version)

    def check(self, envelope: Envelope) -> Envelope:
        """Check an event read from the broker (already upcast) against its contract.

        What a consumer receives was written by another process, perhaps another version
        of it, perhaps not by a producer of this kernel at all: its payload is validated
        before any handler sees it. Returns the envelope unchanged (the handler gets the
        data as published); raises :class:`UnknownEventTypeError` or
        :class:`InvalidEventError`.
        """
        model = self.schema(envelope.type, envelope.schema_version)
        if not isinstance(envelope.data, dict):
            raise InvalidEventError(f"{envelope.type} payload is not a JSON object")
        try:
            model.model_validate(envelope.data)
        except ValidationError as exc:
            raise InvalidEventError(f"{envelope.type} payload is invalid: {exc}") from exc
        return envelope

    def payload(self, envelope: Envelope) -> EventPayload:
        """The event's payload parsed into its contract model (after upcasting); an event
        not yet stored (schema version 0) is read at its type's latest version."""
        if envelope.schema_version == 0:
            envelope = envelope.with_data(envelope.data, self.latest_version(envelope.type))
        env = self.upcast(envelope)
        return self.schema(env.type, env.schema_version).model_validate(env.data)
