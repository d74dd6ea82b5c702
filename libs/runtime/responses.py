"""Building blocks of the services' response models (their OpenAPI, Swagger UI and the
Schemathesis run hold every answer to them): a page of a list, and the ``Location``
header of a 201 or 202. Each service declares its own models with them."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """A page of a list in key order. Subclass it per item (``class XPage(Page[X])``) so
    the OpenAPI names the schema."""

    items: list[Item]
    next_cursor: str | None = Field(description="pass it as `cursor` for the next page; "
                                                "null on the last one")


def location(description: str) -> dict[str, Any]:
    """The ``headers`` of a response (``responses={202: location("...")}``) that sets
    ``Location``; FastAPI merges it into the route's own status and model."""
    return {"headers": {"Location": {"description": description,
                                     "schema": {"type": "string"}}}}
