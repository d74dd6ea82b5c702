"""The garbage collector of a running service (libs.runtime.collector, ADR 0041): the
thresholds and the freeze that every app's lifespan applies from its settings, and that
garbage made after the freeze is still collected.

These change the test process's own collector; each test gives back what it found.
"""

from __future__ import annotations

import gc
import weakref
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from libs.runtime import collector
from libs.runtime.app import create_app
from libs.runtime.settings import ServiceSettings


@pytest.fixture
def fresh_collector(monkeypatch):
    """The process's collector as it was, and a module that has frozen nothing yet."""
    before = gc.get_threshold()
    monkeypatch.setattr(collector, "_frozen", False)
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_settings_default_to_a_frozen_heap_and_rare_collections(monkeypatch):
    monkeypatch.delenv("GC_FREEZE", raising=False)
    monkeypatch.delenv("GC_THRESHOLDS", raising=False)
    s = ServiceSettings(service="registration", port=1)
    assert s.gc_freeze is True
    assert s.gc_thresholds == collector.THRESHOLDS == (50_000, 20, 100)


def test_settings_give_back_cpythons_defaults_and_refuse_a_zero(monkeypatch):
    monkeypatch.setenv("GC_FREEZE", "false")
    monkeypatch.setenv("GC_THRESHOLDS", "[700, 10, 10]")
    s = ServiceSettings(service="registration", port=1)
    assert (s.gc_freeze, s.gc_thresholds) == (False, (700, 10, 10))
    monkeypatch.setenv("GC_THRESHOLDS", "[0, 10, 10]")  # 0 would turn collection off
    with pytest.raises(ValidationError, match="GC_THRESHOLDS"):
        ServiceSettings(service="registration", port=1)


def test_tune_sets_the_thresholds_and_freezes_once(fresh_collector):
    made_before = []
    collector.tune((12_345, 7, 3), freeze=True)
    assert _frozen_now(made_before)
    assert gc.get_threshold() == (12_345, 7, 3)
    frozen = gc.get_freeze_count()
    assert frozen > 1000  # the test process's modules, at least
    made_since = []  # alive across the second call
    collector.tune((12_345, 7, 3), freeze=True)
    # a second app in the process freezes no more (the frozen that died meanwhile are gone)
    assert gc.get_freeze_count() <= frozen
    assert not _frozen_now(made_since)


def _frozen_now(obj) -> bool:
    """Whether ``obj`` is in the permanent generation: a collection of every generation
    never lists frozen objects among the tracked ones."""
    return not any(o is obj for o in gc.get_objects())


def test_without_freeze_nothing_is_frozen(fresh_collector):
    gc.unfreeze()
    collector.tune((700, 10, 10), freeze=False)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)


def test_cycles_made_after_the_freeze_are_still_collected(fresh_collector):
    collector.tune(collector.THRESHOLDS, freeze=True)

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: reference counting alone never frees it
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None
    gc.collect()
    assert gone() is None


async def test_every_apps_lifespan_applies_its_settings(fresh_collector):
    started = []
    settings = SimpleNamespace(service="registration", log_level="WARNING", gc_freeze=True,
                               gc_thresholds=(23_456, 11, 5))

    async def start():
        started.append(gc.get_freeze_count())

    async def stop():
        pass

    runtime = SimpleNamespace(settings=settings, start=start, stop=stop)
    app = create_app(lambda: runtime, title="t", description="d")
    gc.unfreeze()
    async with app.router.lifespan_context(app):
        assert started == [0]  # tuned after the runtime started: its objects are frozen too
        assert gc.get_threshold() == (23_456, 11, 5)
        assert gc.get_freeze_count() > 0
