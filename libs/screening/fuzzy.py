"""Candidate generation for fuzzy matching: which indexed names are worth scoring.

Scoring a million names with rapidfuzz takes ~100 ms; scoring the few hundred that share
enough character bigrams with the query, and have a length close enough to it, takes well
under 1 ms. Both bounds come from the score itself (see :func:`max_destroyed_bigrams`), so
within the caps below no name that could reach the threshold is left out. Ruling names out
is done on arrays of slots and lengths: on a large index, touching a name's string costs a
cache miss, and was most of a slow query's time.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import _slots

_NONE = np.empty(0, dtype=np.int32)


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


def candidate_slots(postings: _slots.SlotMap, lengths: np.ndarray, query: str,
                    threshold: float, *, max_posting: int, max_candidates: int
                    ) -> np.ndarray:
    """Slots (int32) of the names that share enough bigrams with ``query``, and are of a
    length close enough to it, to possibly score >= ``threshold``; ``lengths`` holds each
    slot's normalised length (uint8).

    Count filtering: a name that can reach the threshold shares at least
    :func:`max_destroyed_bigrams`-many fewer than all of the query's bigrams, so the
    posting lists are merged and counted (in numpy: a name's strings are never touched to
    rule it out), and a name found fewer times than that is dropped. Length filtering:
    ``ratio = 1 - D / (L1 + L2)`` and ``D >= |L1 - L2|``. Lists longer than
    ``max_posting`` are not read (see :class:`~libs.screening.index.NameIndex`): a name is
    then required to share that many fewer. At most ``max_candidates`` are returned, those
    sharing the most bigrams first.
    """
    grams = bigrams(query)
    if not grams:
        return _NONE
    size = len(query)
    required = max(len(grams) - max_destroyed_bigrams(size, threshold), 1)
    lists, skipped = [], 0
    for gram in grams:
        value = postings.get(gram)
        if value is None:
            continue  # a bigram no name has: no name can count it
        if type(value) is int:
            lists.append(np.array((value,), dtype=np.int32))
        elif len(value) <= max_posting:
            lists.append(np.frombuffer(value, dtype=np.int32))
        else:
            skipped += 1
    if not lists:
        return _NONE
    found, counts = np.unique(np.concatenate(lists), return_counts=True)
    need = required - skipped
    if need > 1:
        keep = counts >= need
        found, counts = found[keep], counts[keep]
    # |L1 - L2| <= (1 - t) (L1 + L2), with a hair of slack for the float threshold
    other = lengths[found].astype(np.float32)
    keep = np.abs(other - size) <= (1 - threshold) * (other + size) + 1e-6
    found, counts = found[keep], counts[keep]
    if len(found) > max_candidates:
        found = found[np.argsort(-counts, kind="stable")[:max_candidates]]
    return found
