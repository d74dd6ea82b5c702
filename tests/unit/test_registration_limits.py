"""A10.1 limits as settings: per entity type, and per category where a field needs more."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.registration.bootstrap import policy_from
from services.registration.rules import LEGAL, NATURAL, Limit, Policy, limit_for
from services.registration.settings import Settings


def test_A10_1_a_category_limit_wins_over_the_entity_types():
    policy = Policy()
    assert limit_for(policy, LEGAL, "government_affairs")[0] == Limit(10, 50)
    assert limit_for(policy, LEGAL, "news")[0] == Limit(5, 20)
    assert limit_for(policy, LEGAL, "culture")[0] == Limit(2, 5)
    assert limit_for(policy, NATURAL, "health")[0] == Limit(1, 2)


def test_A10_1_category_limits_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("REGISTRATION_CATEGORY_LIMITS",
                       '{"news": {"threshold": 3, "limit": 9}}')
    monkeypatch.setenv("REGISTRATION_CLOSURE_BAN_SEVERITY", "grave")
    policy = policy_from(Settings())
    assert policy.category_limits == {"news": Limit(3, 9)}
    assert policy.closure_ban_severity == "grave"


def test_A10_1_a_threshold_above_its_limit_is_refused(monkeypatch):
    monkeypatch.setenv("REGISTRATION_CATEGORY_LIMITS",
                       '{"news": {"threshold": 30, "limit": 9}}')
    with pytest.raises(ValidationError):
        Settings()
