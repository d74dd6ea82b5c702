"""How many requests the fuzz run sent, per service and operation (for the run's summary)."""

from __future__ import annotations

from collections import Counter

requests: Counter[tuple[str, str]] = Counter()


def count(service: str, operation: str) -> None:
    requests[(service, operation)] += 1


def summary() -> list[str]:
    if not requests:
        return []
    services = sorted({s for s, _ in requests})
    lines = [f"fuzz: {len(requests)} operations, {sum(requests.values())} requests"]
    for service in services:
        ops = {op: n for (s, op), n in requests.items() if s == service}
        lines.append(f"  {service}: {len(ops)} operations, {sum(ops.values())} requests")
    return lines
