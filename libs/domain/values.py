"""Small value conversions every domain needs when it folds stored (JSON) payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def as_datetime(value: Any) -> datetime | None:
    """A time from a payload: ``None``, a datetime as is, or its ISO 8601 text parsed."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)
