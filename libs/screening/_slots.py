"""Compact multimaps from a key to the slots (small ints) of the names that have it.

A million names give millions of keys, most of them held by a single name, so a key
maps to a bare ``int`` until a second slot arrives and only then to an ``array('i')``
(4 bytes a slot, against 8 for a list pointer plus the int object it points to).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import TypeAlias

Slots: TypeAlias = "int | array[int]"
SlotMap: TypeAlias = "dict[str, int | array[int]]"


def put(index: SlotMap, key: str, slot: int) -> None:
    """Add ``slot`` under ``key``; the caller adds a slot to a key at most once."""
    current = index.get(key)
    if current is None:
        index[key] = slot
    elif type(current) is int:
        index[key] = array("i", (current, slot))
    else:
        current.append(slot)


def put_all(index: SlotMap, keys: Iterable[str], slot: int) -> None:
    """:func:`put` for several keys (the bulk-load loop: one call instead of one a key)."""
    get = index.get
    for key in keys:
        current = get(key)
        if current is None:
            index[key] = slot
        elif type(current) is int:
            index[key] = array("i", (current, slot))
        else:
            current.append(slot)


def discard(index: SlotMap, key: str, slot: int) -> None:
    current = index.get(key)
    if current is None:
        return
    if type(current) is int:
        if current == slot:
            del index[key]
        return
    try:
        current.remove(slot)  # a C scan: fine even for a posting of 100k slots
    except ValueError:
        return
    if len(current) == 1:
        index[key] = current[0]


def slots(value: Slots | None) -> Iterable[int]:
    if value is None:
        return ()
    if type(value) is int:
        return (value,)
    return value


def size(value: Slots) -> int:
    return 1 if type(value) is int else len(value)
