"""Candidate generation for fuzzy matching: which indexed names are worth scoring.

Scoring a million names with rapidfuzz takes ~100 ms; scoring the few thousand that share
enough character bigrams with the query takes ~1 ms. The bound on "enough" comes from the
score itself (see :func:`max_destroyed_bigrams`), so within the caps below no name that
could reach the threshold is left out.
"""

from __future__ import annotations

from functools import lru_cache

from . import _slots


def bigrams(key: str) -> set[str]:
    """The distinct character bigrams of a normalised key (none for one character)."""
    return {key[i:i + 2] for i in range(len(key) - 1)}


@lru_cache(maxsize=4096)
def max_destroyed_bigrams(length: int, threshold: float) -> int:
    """How many of a ``length``-character string's bigrams an edit can destroy while
    rapidfuzz's ``ratio`` stays >= ``threshold``.

    ratio = 1 - D / (L1 + L2) with D the insertions plus deletions; a deletion destroys at
    most two bigrams of the query, an insertion at most one (the one it splits).
    """
    if threshold <= 0:
        return max(0, length - 1)
    worst = 0
    slack = 1 - threshold
    for deletions in range(length + 1):
        for insertions in range(2 * length + 2):
            edits = deletions + insertions
            if edits > slack * (2 * length - deletions + insertions) + 1e-9:
                break
            worst = max(worst, 2 * deletions + insertions)
    return worst


def candidate_slots(postings: _slots.SlotMap, query: str, threshold: float, *,
                    max_posting: int, max_candidates: int) -> list[int]:
    """Slots that share enough bigrams with ``query`` to possibly score >= ``threshold``.

    Prefix filtering: a name sharing at least k of the query's G bigrams shares at least
    one of any G - k + 1 of them, so only the G - k + 1 rarest posting lists are read (a
    bigram no name has is the rarest of all and costs nothing) and nothing is counted.
    Lists longer than ``max_posting`` are skipped (see
    :class:`~libs.screening.index.NameIndex`); at most ``max_candidates`` are returned,
    taken from the rarest lists first.
    """
    grams = bigrams(query)
    if not grams:
        return []
    required = len(grams) - max_destroyed_bigrams(len(query), threshold)
    lists = [value for gram in grams if (value := postings.get(gram)) is not None]
    # with required <= 0 a match need share no bigram at all: read every list, which is
    # the best a bigram index can do for very short names or low thresholds
    probe = len(grams) - max(required, 1) + 1 - (len(grams) - len(lists))
    if probe <= 0:
        return []
    lists.sort(key=_slots.size)
    found: set[int] = set()
    for value in lists[:probe]:
        if type(value) is int:
            found.add(value)
            continue
        if len(value) > max_posting:
            break  # sorted: every later list is as common
        found.update(value)
        if len(found) >= max_candidates:
            break
    candidates = list(found)
    return candidates if len(candidates) <= max_candidates else candidates[:max_candidates]
