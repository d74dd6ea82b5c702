"""How many examples the fuzz run sent, per service and operation (the run's summary)."""

from __future__ import annotations

from collections import Counter

requests: Counter[tuple[str, str]] = Counter()


def count(service: str, operation: str) -> None:
    requests[(service, operation)] += 1


def summary() -> list[str]:
    if not requests:
        return []
    services = sorted({s for s, _ in requests})
    lines = [f"fuzz: {len(requests)} operations, {sum(requests.values())} examples"]
    for service in services:
        ops = {op: n for (s, op), n in requests.items() if s == service}
        lines.append(f"  {service}: {len(ops)} operations, {sum(ops.values())} examples")
    return lines
