"""Contracts and upcasters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import pytest

from libs.events import (
    Envelope,
    EventPayload,
    EventRegistry,
    InvalidEventError,
    UnknownEventTypeError,
)
from libs.events.contracts import all_contracts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_registry() -> EventRegistry:
    reg = EventRegistry()

    @reg.contract
    class Suspended(EventPayload):
        event_type: ClassVar[str] = "x.Suspended"
        schema_version: ClassVar[int] = 3
        reason: str
        legal_basis: str
        days: int

    @reg.upcaster("x.Suspended", from_version=1)
    def _v1(data):
        return {**data, "legal_basis": "A10.2"}

    @reg.upcaster("x.Suspended", from_version=2)
    def _v2(data):
        return {**data, "days": 30}

    return reg


def event(version: int, data: dict, type_: str = "x.Suspended") -> Envelope:
    return Envelope.new(type=type_, data=data, stream_id="a", source="t", time=T0,
                        schema_version=version)


def test_old_versions_are_upcast_step_by_step():
    reg = make_registry()
    up = reg.upcast(event(1, {"reason": "inactive"}))
    assert up.schema_version == 3
    assert up.data == {"reason": "inactive", "legal_basis": "A10.2", "days": 30}
    assert reg.payload(event(2, {"reason": "r", "legal_basis": "A19.2"})).days == 30


def test_latest_version_passes_untouched():
    reg = make_registry()
    e = event(3, {"reason": "r", "legal_basis": "A19.2", "days": 1})
    assert reg.upcast(e) is e


def test_unknown_type_or_future_version_is_a_clear_error():
    reg = make_registry()
    with pytest.raises(UnknownEventTypeError, match="x.Nope"):
        reg.upcast(event(1, {}, "x.Nope"))
    with pytest.raises(UnknownEventTypeError, match="version 4"):
        reg.upcast(event(4, {}))


def test_writes_must_use_the_latest_version_and_a_valid_payload():
    reg = make_registry()
    with pytest.raises(InvalidEventError, match="schema version 3"):
        reg.validate(event(1, {"reason": "r"}))
    with pytest.raises(InvalidEventError, match="payload is invalid"):
        reg.validate(event(3, {"reason": "r", "legal_basis": "A19.2", "days": "many"}))
    with pytest.raises(InvalidEventError):
        reg.validate(event(3, {"reason": "r", "legal_basis": "A", "days": 1, "extra": 1}))


def test_a_contract_cannot_be_registered_twice_with_another_model():
    reg = make_registry()

    class Other(EventPayload):
        event_type: ClassVar[str] = "x.Suspended"
        schema_version: ClassVar[int] = 3

    with pytest.raises(ValueError, match="twice"):
        reg.contract(Other)


def test_all_contracts_merges_every_service_module():
    assert isinstance(all_contracts(), EventRegistry)


def _renaming(calls: list[str]):
    """A value upcaster: every string value ``old:...`` becomes ``new:...``."""

    def fn(e: Envelope) -> Envelope:
        calls.append(e.id)
        data = {k: "new:" + v[4:] if isinstance(v, str) and v.startswith("old:") else v
                for k, v in e.data.items()}
        return e if data == e.data else e.with_data(data, e.schema_version)

    return fn


def test_a_value_upcaster_applies_after_the_schema_steps_to_every_event():
    reg = make_registry()
    calls: list[str] = []
    reg.add_value_upcaster("rename", _renaming(calls))
    up = reg.upcast(event(1, {"reason": "old:inactive"}))
    # the schema steps first (legal_basis, days), then the value upcaster on the result
    assert up.schema_version == 3
    assert up.data == {"reason": "new:inactive", "legal_basis": "A10.2", "days": 30}
    assert reg.payload(event(3, {"reason": "old:r", "legal_basis": "A", "days": 1})
                       ).reason == "new:r"
    latest = event(3, {"reason": "r", "legal_basis": "A19.2", "days": 1})
    assert reg.upcast(latest) is latest  # nothing to change: the same event
    assert reg.upcast(up) is up  # an event upcast already comes through unchanged
    assert len(calls) == 4


def test_a_value_upcaster_is_one_per_name_merged_by_include_and_skipped_without_its_marker():
    reg = make_registry()
    first: list[str] = []
    second: list[str] = []
    reg.add_value_upcaster("rename", _renaming(first), marker='"old:')
    reg.add_value_upcaster("rename", _renaming(second), marker='"old:')  # replaces
    assert len(reg.value_upcasters) == 1 and reg.value_upcasters[0][1] == '"old:'
    e = event(3, {"reason": "old:r", "legal_basis": "A", "days": 1})
    assert reg.upcast(e).data["reason"] == "new:r" and not first and len(second) == 1
    # a reader holding the stored text: skipped when it lacks the marker (str or bytes)
    assert reg.upcast(e, stored='{"reason": "r"}') is e
    assert reg.upcast(e, stored=b'{"reason": "r"}') is e
    assert reg.upcast(e, stored=b'{"reason": "old:r"}').data["reason"] == "new:r"
    merged = EventRegistry()
    merged.include(reg)
    assert merged.upcast(e).data["reason"] == "new:r"
    with pytest.raises(ValueError, match="name"):
        reg.add_value_upcaster("", _renaming([]))
