"""Request bodies of the credit API and their translation into what handlers take."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from libs.domain import Line, Text

from . import rules
from .handlers import Follow, MetricsBatch

Metric = Literal["subscribers", "followers", "clicks", "forwards", "comments"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SampleIn(Body):
    account_id: Line = Field(min_length=1, max_length=100)
    metric: Metric
    at: datetime = Field(description="the end of the hour the count covers")
    value: float = Field(ge=0, description="the count in that hour")


class FollowIn(Body):
    account_id: Line = Field(min_length=1, max_length=100)
    follower_id: Line = Field(min_length=1, max_length=100)
    at: datetime
    consent: bool = Field(description="the follower chose to follow (A12.2)")


class MetricsIn(Body):
    samples: list[SampleIn] = Field([], max_length=100_000)
    follows: list[FollowIn] = Field([], max_length=100_000)


class OverrideIn(Body):
    points: int = Field(ge=-100, le=100)
    reason: Text = Field(min_length=1, max_length=2000)
    expires_at: datetime


class SweepIn(Body):
    now: datetime | None = None
    account_ids: list[Line] | None = Field(None, max_length=1000)


def aware(t: datetime | None) -> datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


def metrics(body: MetricsIn) -> MetricsBatch:
    return MetricsBatch(
        samples=[rules.Sample(s.account_id, s.metric, aware(s.at), s.value)
                 for s in body.samples],
        follows=[Follow(account_id=f.account_id, follower_id=f.follower_id, at=aware(f.at),
                        consent=f.consent) for f in body.follows])
