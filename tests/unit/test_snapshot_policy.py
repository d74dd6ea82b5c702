"""When a snapshot is due, and that an account's state survives its encoding exactly."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from libs.events import Snapshots
from services.registration.domain import ACCOUNT_SCHEMA, Account

SNAPS = Snapshots(Account, schema_version=ACCOUNT_SCHEMA, every=100)


@pytest.mark.parametrize(("base", "before", "after", "due"), [
    (0, 0, 1, False),        # a new stream
    (0, 98, 99, False),
    (0, 99, 100, True),      # 100 events folded on top of no snapshot
    (0, 4_000, 4_001, True),  # a stream whose snapshot was another schema's: rebuilt now
    (200, 250, 299, False),
    (200, 299, 300, True),
    (200, 250, 250, False),  # nothing appended
    (None, 199, 200, True),  # the caller brought the state: at a multiple of every
    (None, 150, 199, False),
    (None, 198, 203, True),
])
def test_a_snapshot_is_due_every_n_events(base, before, after, due):
    assert SNAPS.due(base=base, before=before, after=after) is due


def test_an_account_round_trips_through_its_snapshot_encoding():
    t = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
    acc = Account(account_id="a", phase="live", registered_at=t, last_active_at=t,
                  owner={"id_number_blind": "b", "n": 1}, profile={"name": "健康小站"},
                  restrictions={"r1": ("comment", "message")}, suspensions={"s": "inactivity"},
                  expiries={"r1": t.isoformat()}, credit_withheld=("advertise",),
                  correction_deadline=t, bans={"m": {"severity": "grave", "until": None,
                                                     "keys": ["b"]}}, warnings=2, version=7)
    back = SNAPS.decode(SNAPS.encode(acc))
    assert back == acc
    assert isinstance(back.restrictions["r1"], tuple) and back.credit_withheld == ("advertise",)
    assert back.correction_deadline.utcoffset().total_seconds() == 0
    assert SNAPS.decode(SNAPS.encode(replace(acc, organization=None))) == acc


def test_every_must_be_positive():
    with pytest.raises(ValueError):
        Snapshots(Account, schema_version=1, every=0)
