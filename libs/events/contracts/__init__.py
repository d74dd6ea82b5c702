"""The published language: payload contracts of every event a service publishes.

One module per producing service (``contracts/registration.py``, ...), added by that
service's issue; a consumer imports the contract from here, never from the producing
service. :func:`all_contracts` merges them into one registry.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..registry import EventRegistry


def all_contracts() -> EventRegistry:
    """A registry with every contract module of this package included."""
    registry = EventRegistry()
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):  # shared field types, not a producer
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        registry.include(module.registry)
    return registry
