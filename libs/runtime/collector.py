"""The cyclic garbage collector, set for a long-running service (ADR 0041).

A service's heap is mostly what it loaded at start-up and keeps for its life: FastAPI's
routes and models, pydantic's validators, the contracts, phone-number metadata, the
screening indexes. With CPython's defaults every 700 net allocations start a young
collection, and every hundredth of those a full one that walks that whole heap while every
request of the process waits: the tail of ``POST /v1/accounts`` (its p99 halved without
them, bench/RESULTS.md). So, once the service is up:

* :func:`gc.freeze` moves everything alive into the permanent generation, which no
  collection walks again (reference counting still frees what it can);
* the thresholds (``GC_THRESHOLDS``) are raised: a young collection every 50,000 net
  allocations (a few dozen requests), a full one a hundred times rarer than by default.

Cycles made after start-up are still collected, only later and in fewer, larger passes.
``GC_FREEZE=false`` and ``GC_THRESHOLDS='[700, 10, 10]'`` give back CPython's defaults.
"""

from __future__ import annotations

import gc

# CPython's own: (700, 10, 10)
THRESHOLDS = (50_000, 20, 100)

_frozen = False


def tune(thresholds: tuple[int, int, int], *, freeze: bool) -> None:
    """Set the collector's thresholds and, the first time it is asked in this process,
    collect once and freeze what survives (a second app in one process, as in the tests,
    freezes nothing more)."""
    global _frozen
    gc.set_threshold(*thresholds)
    if freeze and not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
