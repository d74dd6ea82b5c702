"""An in-memory index of names for "is this name (nearly) one we already know?".

Everything is keyed by the normalised form (see :mod:`libs.screening.normalise`): exact,
normalised, pinyin and digit look-alike matches are dictionary hits; fuzzy matches come
from an inverted index of character bigrams whose candidates are scored by rapidfuzz; and
containment enumerates the query's substrings, which is cheap because names are short.
A name with a label added (官方, 号, 说: :mod:`libs.screening.affixes`) is found by
stripping the labels from the query and looking the rest up in the same dictionaries.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from rapidfuzz import fuzz, process

from . import _slots
from ._pinyin import latin_runs
from .affixes import Affixes
from .fuzzy import bigrams, candidate_slots
from .normalise import (
    DIGIT_LOOKALIKES,
    _normalise,
    normalise,
    pinyin_syllables,
    syllables_of_normalised,
)

MatchKind = Literal["exact", "normalised", "pinyin", "fuzzy", "contains", "contains_pinyin",
                    "affix"]

# Scores of the dictionary matches. Threshold-able like fuzzy scores, so a caller asking
# for >= 0.95 gets same-looking names but not mere homophones.
EXACT_SCORE = 1.0
LOOKALIKE_DIGIT_SCORE = 0.95
PINYIN_SCORE = 0.9
# similar() with affixes: the name once its labels are stripped (人民日报官方号 -> 人民日报)
# is the indexed name (as a pinyin match if only its sound is); with contained_min_length:
# an indexed name that long occurs inside the query. Both are "a reader takes it for that
# name", a reviewer's question, so they score at the usual review threshold, not above
# the refusal one.
AFFIX_SCORE = 0.9
AFFIX_PINYIN_SCORE = 0.85
CONTAINED_SCORE = 0.85
_KINDS: tuple[MatchKind, ...] = ("exact", "normalised", "pinyin", "fuzzy", "contains",
                                 "contains_pinyin", "affix")
_AFFIX, _CONTAINS = 6, 4
# Longer texts (descriptions) are not worth the caches: they rarely repeat and would push
# out the names that do.
_CACHED_UP_TO = 64
# Normalised names up to this many characters are also kept in one fixed-width array, from
# which a query's fuzzy candidates are read in one gather (a longer one is read from its
# string): on a million names, reaching each candidate's own string object was a cache
# miss apiece and most of a slow query's time.
_FIXED_WIDTH = 16
# contained_in's pinyin runs: a run of at least n letters can only sound like a name whose
# pinyin starts with the run's first n letters, so the index counts those prefixes (for
# each n here), and a run whose prefix no name has is not extended further (exactly: every
# longer run from the same start has the same prefix). On a description, most runs die at
# their second or third syllable instead of running on to the longest name's length.
_PINYIN_PREFIXES = (6, 10)


def _keep_best(found: dict[int, tuple[float, int]], slot: int, score: float,
               rank: int) -> None:
    best = found.get(slot)
    if best is None or score > best[0]:
        found[slot] = (score, rank)


@dataclass(frozen=True, slots=True)
class NameMatch:
    """An indexed name that matched a query.

    ``kind`` is the strongest way it matched: ``exact`` (same string), ``normalised``
    (same :func:`normalise` key, or the same after folding digit look-alikes: score
    0.95), ``pinyin`` (same toneless pinyin: score 0.9), ``fuzzy`` (rapidfuzz ratio of
    the normalised forms), ``affix`` (the query less its labels, see ``similar``); from
    :meth:`NameIndex.contained_in`, ``contains`` and ``contains_pinyin`` with ``score``
    the share of the query the name covers (from ``similar``, ``contains`` scores 0.85).
    """

    id: str
    name: str
    kind: MatchKind
    score: float


class NameIndex:
    """Names keyed by an opaque id; written and read from one thread (the event loop).

    ``max_posting`` bounds fuzzy latency: a bigram held by more names than that (公司,
    科技...) is not used to find candidates, so a fuzzy match sharing only such bigrams
    with the query is missed (its exact/normalised/pinyin match is not). ``max_candidates``
    bounds how many candidates are scored (those sharing the most bigrams first).
    """

    def __init__(self, *, max_posting: int = 3_000, max_candidates: int = 6_000) -> None:
        self.max_posting = max_posting
        self.max_candidates = max_candidates
        self._slot_of: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._names: list[str | None] = []
        self._norms: list[str | None] = []
        self._free: list[int] = []  # slots of removed names, reused before growing
        self._by_norm: _slots.SlotMap = {}
        # only names whose key differs from their normalised form: a Latin or digit name
        # is its own pinyin and look-alike key, and a lookup in _by_norm finds it there
        self._by_pinyin: _slots.SlotMap = {}
        self._by_lookalike: _slots.SlotMap = {}
        self._bigrams: _slots.SlotMap = {}
        self._norm_lengths: Counter[int] = Counter()
        self._pinyin_lengths: Counter[int] = Counter()
        self._pinyin_prefixes: Counter[str] = Counter()
        self._lengths_cache: tuple[tuple[int, ...], int] | None = None
        # per slot: the normalised length (capped at 255; 0 for a free slot) and the
        # normalised name if it fits _FIXED_WIDTH; grown by doubling
        self._length_of = np.zeros(1024, dtype=np.uint8)
        self._fixed = np.zeros(1024, dtype=f"<U{_FIXED_WIDTH}")

    # -- writing -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._slot_of

    def add(self, key_id: str, name: str) -> None:
        """Index ``name`` under ``key_id``, replacing the name it had."""
        self._add(key_id, name, normalise(name))

    def bulk_load(self, items: Iterable[tuple[str, str]]) -> None:
        """:meth:`add` each ``(id, name)``; skips the caches meant for repeated queries."""
        for key_id, name in items:
            self._add(key_id, name, _normalise(name))

    def remove(self, key_id: str) -> None:
        """Forget ``key_id``; does nothing if it is not indexed (replays are harmless)."""
        slot = self._slot_of.pop(key_id, None)
        if slot is None:
            return
        norm = self._norms[slot]
        if norm:
            pinyin = "".join(syllables_of_normalised(norm))
            for table, key in self._keys(norm, pinyin):
                _slots.discard(table, key, slot)
            for gram in bigrams(norm):
                _slots.discard(self._bigrams, gram, slot)
            self._count_lengths(norm, pinyin, -1)
        self._ids[slot] = self._names[slot] = self._norms[slot] = None
        self._length_of[slot] = 0
        self._fixed[slot] = ""
        self._free.append(slot)

    def _add(self, key_id: str, name: str, norm: str) -> None:
        old = self._slot_of.get(key_id)
        if old is not None:
            if self._names[old] == name:
                return
            self.remove(key_id)
        if norm == name:
            norm = name  # one string object for both: most names are already normal
        if self._free:
            slot = self._free.pop()
            self._ids[slot], self._names[slot], self._norms[slot] = key_id, name, norm
        else:
            slot = len(self._ids)
            self._ids.append(key_id)
            self._names.append(name)
            self._norms.append(norm)
        self._slot_of[key_id] = slot
        if not norm:
            return  # nothing a reader would see: it cannot match anything
        if slot >= len(self._length_of):
            self._length_of = np.concatenate((self._length_of, np.zeros_like(self._length_of)))
            self._fixed = np.concatenate((self._fixed, np.zeros_like(self._fixed)))
        self._length_of[slot] = min(len(norm), 255)
        if len(norm) <= _FIXED_WIDTH:
            self._fixed[slot] = norm
        pinyin = "".join(syllables_of_normalised(norm))
        for table, key in self._keys(norm, pinyin):
            _slots.put(table, key, slot)
        _slots.put_all(self._bigrams, bigrams(norm), slot)
        self._count_lengths(norm, pinyin, 1)

    def _keys(self, norm: str, pinyin: str) -> Iterator[tuple[dict, str]]:
        """The dictionary entries a name has besides its bigrams: one place, so that
        ``_add`` and ``remove`` cannot drift apart."""
        yield self._by_norm, norm
        if pinyin != norm:
            yield self._by_pinyin, pinyin
        lookalike = norm.translate(DIGIT_LOOKALIKES)
        if lookalike != norm:
            yield self._by_lookalike, lookalike

    def _count_lengths(self, norm: str, pinyin: str, delta: int) -> None:
        prefixes = self._pinyin_prefixes
        for size in _PINYIN_PREFIXES:
            if len(pinyin) < size:
                break
            prefix = pinyin[:size]
            count = prefixes[prefix] + delta
            if count > 0:
                prefixes[prefix] = count
            else:
                del prefixes[prefix]
        for counter, length in ((self._norm_lengths, len(norm)),
                                (self._pinyin_lengths, len(pinyin))):
            count = counter[length] + delta
            if count > 0:
                counter[length] = count
            else:
                del counter[length]
            if count == 0 or (count == 1 and delta > 0):  # a length appeared or vanished
                self._lengths_cache = None

    # -- reading -----------------------------------------------------------------------
    def similar(self, name: str, *, threshold: float = 0.85, limit: int | None = 10,
                affixes: Affixes | None = None,
                contained_min_length: int | None = None) -> list[NameMatch]:
        """Indexed names like ``name`` with ``score >= threshold``, best first.

        With ``affixes``, also the names that ``name`` is once its labels are stripped
        (``affix``: 0.9, or 0.85 by sound); with ``contained_min_length``, also the names
        of at least that many (normalised) characters that occur inside it (``contains``,
        0.85). Ties (a name closed under many ids) come in indexing order.
        """
        query = normalise(name)
        if not query:
            return []
        names = self._names
        found: dict[int, tuple[float, int]] = {}  # slot -> (score, rank of kind)
        for slot in _slots.slots(self._by_norm.get(query)):
            found[slot] = (EXACT_SCORE, 0 if names[slot] == name else 1)
        # nothing below scores 1.0, so with `limit` perfect matches the answer is known
        if limit is None or len(found) < limit:
            self._similar_beyond_normalised(name, query, threshold, found)
            if affixes is not None:
                self._affixed(query, affixes, threshold, found)
            if contained_min_length is not None and CONTAINED_SCORE >= threshold:
                for slot, (_, rank) in self._contained(name, contained_min_length,
                                                       pinyin=False).items():
                    if rank == _CONTAINS:
                        _keep_best(found, slot, CONTAINED_SCORE, _CONTAINS)
        ranked = [(-score, rank, slot) for slot, (score, rank) in found.items()
                  if score >= threshold]
        return self._matches(ranked, limit)

    def _similar_beyond_normalised(self, name: str, query: str, threshold: float,
                                   found: dict[int, tuple[float, int]]) -> None:
        def hit(value: _slots.Slots | None, score: float, rank: int) -> None:
            for slot in _slots.slots(value):
                best = found.get(slot)
                found[slot] = (score, rank) if best is None else (max(best[0], score),
                                                                  min(best[1], rank))

        lookalike = query.translate(DIGIT_LOOKALIKES)
        hit(self._by_lookalike.get(lookalike), LOOKALIKE_DIGIT_SCORE, 1)
        if lookalike != query:
            hit(self._by_norm.get(lookalike), LOOKALIKE_DIGIT_SCORE, 1)
        pinyin = "".join(pinyin_syllables(name))
        hit(self._by_pinyin.get(pinyin), PINYIN_SCORE, 2)
        if pinyin != query:
            hit(self._by_norm.get(pinyin), PINYIN_SCORE, 2)

        candidates = candidate_slots(self._bigrams, self._length_of, query, threshold,
                                     max_posting=self.max_posting,
                                     max_candidates=self.max_candidates)
        if len(candidates):
            choices = self._fixed[candidates].tolist()
            for i in np.flatnonzero(self._length_of[candidates] > _FIXED_WIDTH).tolist():
                choices[i] = self._norms[candidates[i]]
            slots = candidates.tolist()
            for _, score, i in process.extract(query, choices, scorer=fuzz.ratio,
                                               score_cutoff=threshold * 100, limit=None):
                hit((slots[i],), score / 100, 3)

    def _affixed(self, query: str, affixes: Affixes, threshold: float,
                 found: dict[int, tuple[float, int]]) -> None:
        for core in affixes.cores(query):
            if AFFIX_SCORE >= threshold:
                for slot in _slots.slots(self._by_norm.get(core)):
                    _keep_best(found, slot, AFFIX_SCORE, _AFFIX)
            if AFFIX_PINYIN_SCORE >= threshold:
                pinyin = "".join(syllables_of_normalised(core))
                for value in (self._by_pinyin.get(pinyin), self._by_norm.get(pinyin)):
                    for slot in _slots.slots(value):
                        _keep_best(found, slot, AFFIX_PINYIN_SCORE, _AFFIX)

    def contained_in(self, text: str, *, min_length: int = 2,
                     limit: int | None = None) -> list[NameMatch]:
        """Indexed names (normalised length >= ``min_length``) that occur inside ``text``.

        ``contains``: the name's normalised form is a substring of the text's;
        ``contains_pinyin``: its pinyin is that of a run of two or more of the text's
        syllables. Longest (highest score) first.
        """
        found = self._contained(text, min_length)
        ranked = [(-score, rank, slot) for slot, (score, rank) in found.items()]
        return self._matches(ranked, limit)

    def _contained(self, text: str, min_length: int, *, pinyin: bool = True
                   ) -> dict[int, tuple[float, int]]:
        long = len(text) > _CACHED_UP_TO
        query = _normalise(text) if long else normalise(text)
        found: dict[int, tuple[float, int]] = {}
        if len(query) < min_length:
            return found
        norm_lengths, pinyin_max = self._lengths()
        by_norm, norms = self._by_norm, self._norms
        size = len(query)
        for length in norm_lengths:
            if length > size:
                break
            if length < min_length:
                continue
            score = length / size
            for start in range(size - length + 1):
                value = by_norm.get(query[start:start + length])
                if value is not None:
                    for slot in _slots.slots(value):
                        found[slot] = (score, _CONTAINS)
        if not pinyin:
            return found

        syllables = syllables_of_normalised(query) if long else pinyin_syllables(text)
        total = sum(map(len, syllables))
        by_pinyin = self._by_pinyin

        def sounds_like(run: str) -> None:
            for value in (by_pinyin.get(run), by_norm.get(run)):
                for slot in _slots.slots(value):
                    if slot not in found and len(norms[slot]) >= min_length:
                        found[slot] = (len(run) / total, 5)

        prefixes = self._pinyin_prefixes
        short, long = _PINYIN_PREFIXES
        for start in range(len(syllables) - 1):
            run = syllables[start]
            for syllable in syllables[start + 1:]:
                run += syllable
                if len(run) > pinyin_max:
                    break
                if len(run) >= short and (run[:short] not in prefixes or len(run) >= long
                                          and run[:long] not in prefixes):
                    break  # no name's pinyin starts so: nor does any longer run's
                sounds_like(run)
        # pinyin typed in Latin letters is one token whatever its syllables: 关注renminribao
        for token in latin_runs(query):
            if min_length <= len(token) <= pinyin_max:
                sounds_like(token)
        return found

    def _matches(self, ranked: list[tuple[float, int, int]],
                 limit: int | None) -> list[NameMatch]:
        # build NameMatch objects for the answer only: a name closed under thousands of
        # ids must not cost thousands of objects when ten are asked for
        if limit is not None and len(ranked) > limit:
            ranked = heapq.nsmallest(limit, ranked)
        else:
            ranked.sort()
        ids, names = self._ids, self._names
        return [NameMatch(ids[slot], names[slot], _KINDS[rank], -score)
                for score, rank, slot in ranked]

    def _lengths(self) -> tuple[tuple[int, ...], int]:
        # contained_in tries only the lengths some name has, and stops where none is longer
        if self._lengths_cache is None:
            self._lengths_cache = (tuple(sorted(self._norm_lengths)),
                                   max(self._pinyin_lengths, default=0))
        return self._lengths_cache

