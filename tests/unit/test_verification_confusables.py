"""A8.2 through verification's profile rules: a protected name written with characters
Unicode lists as confusable is still found (ADR 0024)."""

from __future__ import annotations

import pytest

from services.verification.adapters import ProtectedRegistry
from services.verification.rules import ProtectedEntry, Subject, check_profile

PERSON = Subject("natural_person", "technology", frozenset({"me"}))


@pytest.fixture
def registry() -> ProtectedRegistry:
    r = ProtectedRegistry()
    r.add(ProtectedEntry("p1", "人民日报", "media", "rmrb-uscc"))
    r.add(ProtectedEntry("p2", "工商银行", "enterprise", "icbc-uscc"))
    r.add(ProtectedEntry("p3", "马化腾", "person", "pony-id"))
    return r


def codes(registry, name, description="") -> set[str]:
    return {f["code"] for f in check_profile(name=name, description=description,
                                             avatar_phash=None, subject=PERSON,
                                             registry=registry)}


@pytest.mark.parametrize("name", ["エ商银行", "⻢化腾", "人⺠日报官方号", "エ商银行理财"])
def test_A8_2_protected_name_in_confusable_characters_is_found(registry, name):
    assert codes(registry, name) & {"protected-name-similar", "protected-name-contained"}


def test_A8_2_protected_name_in_confusable_characters_inside_a_description(registry):
    assert "protected-name-contained" in codes(registry, "理财笔记", "エ商银行官方合作账号")
