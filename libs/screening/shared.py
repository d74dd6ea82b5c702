"""The same screening as :class:`~libs.screening.NameIndex`, against a table in PostgreSQL.

An in-memory index costs every worker ~400 MB per million names (ADR 0023); a table of
names with their keys is one copy for all workers. This module stays pure: it gives the
keys to store with each name (:func:`row_keys`), the query's parameters
(:meth:`SharedQuery.params`, for :data:`SCREEN_SQL`) and the scoring of the rows it
returns (:meth:`SharedQuery.matches`), which is :class:`NameIndex`'s own. The caller runs
the statement in its transaction.

What the statement does: equality on btree indexes for everything that is a dictionary hit
in memory (normalised key: exact, affix cores and the query's substrings for containment;
pinyin key; digit look-alike key), and ``pg_trgm``'s ``%`` on a GIN index of the normalised
key for fuzzy candidates, re-scored with rapidfuzz like the in-memory candidates. The
trigram candidates are bounded by ``pg_trgm.similarity_threshold`` (set by the caller, see
:data:`TRIGRAM_THRESHOLD`) and by ``:fuzzy_cap``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from ._pinyin import latin_runs
from .affixes import Affixes
from .index import (
    AFFIX_PINYIN_SCORE,
    AFFIX_SCORE,
    CONTAINED_SCORE,
    EXACT_SCORE,
    LOOKALIKE_DIGIT_SCORE,
    PINYIN_SCORE,
    NameMatch,
)
from .normalise import DIGIT_LOOKALIKES, normalise, pinyin_syllables, syllables_of_normalised

# Trigram similarity of a name to itself with one character of seven substituted is 0.45
# and with two characters appended to four 0.5; rapidfuzz ratio >= 0.85 leaves at least that
# much. 0.3 keeps a margin (the benchmark measures recall against the in-memory index).
TRIGRAM_THRESHOLD = 0.3
FUZZY_CAP = 2000

# {table} is the caller's (a constant of its own, never user input).
DDL = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    """CREATE TABLE IF NOT EXISTS {table} (
         id text PRIMARY KEY, name text NOT NULL, norm text NOT NULL, pinyin text NOT NULL,
         lookalike text NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {table}_norm ON {table} (norm)",
    "CREATE INDEX IF NOT EXISTS {table}_pinyin ON {table} (pinyin)",
    "CREATE INDEX IF NOT EXISTS {table}_lookalike ON {table} (lookalike)",
    "CREATE INDEX IF NOT EXISTS {table}_norm_trgm ON {table} USING gin (norm gin_trgm_ops)",
)

SCREEN_SQL = """
SELECT id, name, norm, pinyin, lookalike FROM {table}
 WHERE norm = ANY(CAST(:norms AS text[])) OR pinyin = ANY(CAST(:pinyins AS text[]))
    OR lookalike = :lookalike
UNION
(SELECT id, name, norm, pinyin, lookalike FROM {table} WHERE norm % :query
  LIMIT :fuzzy_cap)
"""


def row_keys(name: str) -> tuple[str, str, str]:
    """(normalised, pinyin, digit look-alike) keys stored beside ``name``."""
    norm = normalise(name)
    return norm, "".join(syllables_of_normalised(norm)), norm.translate(DIGIT_LOOKALIKES)


@dataclass
class SharedQuery:
    """One ``similar()`` question, as parameters for :data:`SCREEN_SQL` and a scoring of
    its rows; arguments as :meth:`NameIndex.similar`. ``lengths``: the normalised lengths
    the table holds (containment only tries substrings of those lengths)."""

    name: str
    threshold: float = 0.85
    limit: int | None = 10
    affixes: Affixes | None = None
    contained_min_length: int | None = None
    lengths: Iterable[int] | None = None
    query: str = field(init=False)
    pinyin: str = field(init=False)
    cores: dict[str, float] = field(init=False)
    core_pinyins: dict[str, float] = field(init=False)
    substrings: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.query = q = normalise(self.name)
        self.pinyin = "".join(pinyin_syllables(self.name))
        self.cores, self.core_pinyins, self.substrings = {}, {}, set()
        if not q:
            return
        if self.affixes is not None:
            for core in self.affixes.cores(q):
                if AFFIX_SCORE >= self.threshold:
                    self.cores[core] = AFFIX_SCORE
                if AFFIX_PINYIN_SCORE >= self.threshold:
                    self.core_pinyins["".join(syllables_of_normalised(core))] = \
                        AFFIX_PINYIN_SCORE
        if self.contained_min_length is not None and CONTAINED_SCORE >= self.threshold:
            wanted = set(self.lengths) if self.lengths is not None else None
            for length in range(self.contained_min_length, len(q)):
                if wanted is None or length in wanted:
                    self.substrings.update(q[i:i + length] for i in range(len(q) - length + 1))

    def params(self, *, fuzzy_cap: int = FUZZY_CAP) -> dict:
        q = self.query
        return {"norms": sorted({q, self.pinyin, *self.cores, *self.core_pinyins,
                                 *self.substrings}),
                "pinyins": sorted({self.pinyin, *self.core_pinyins}),
                "lookalike": q.translate(DIGIT_LOOKALIKES), "query": q,
                "fuzzy_cap": fuzzy_cap}

    def matches(self, rows: Sequence[Sequence[str]]) -> list[NameMatch]:
        """Rows ``(id, name, norm, pinyin, lookalike)`` scored as :class:`NameIndex` would."""
        q = self.query
        if not q:
            return []
        lookalike = q.translate(DIGIT_LOOKALIKES)
        found: dict[str, tuple[float, int, str]] = {}
        for key_id, name, norm, pinyin, look in rows:
            best: tuple[float, int] | None = None

            def keep(score: float, rank: int) -> None:
                nonlocal best
                if score >= self.threshold and (best is None or score > best[0]):
                    best = (score, rank)

            if norm == q:
                keep(EXACT_SCORE, 0 if name == self.name else 1)
            if look == lookalike or (lookalike != q and norm == lookalike):
                keep(LOOKALIKE_DIGIT_SCORE, 1)
            if pinyin == self.pinyin or norm == self.pinyin:
                keep(PINYIN_SCORE, 2)
            keep(fuzz.ratio(q, norm) / 100, 3)
            if norm in self.cores:
                keep(self.cores[norm], 6)
            if pinyin in self.core_pinyins or norm in self.core_pinyins:
                keep(self.core_pinyins.get(pinyin, self.core_pinyins.get(norm, 0.0)), 6)
            if norm in self.substrings:
                keep(CONTAINED_SCORE, 4)
            if best is not None:
                found[key_id] = (best[0], best[1], name)
        return _ranked(found, self.limit)


CONTAINED_SQL = """
SELECT id, name, norm, pinyin, lookalike FROM {table}
 WHERE norm = ANY(CAST(:norms AS text[])) OR pinyin = ANY(CAST(:pinyins AS text[]))
"""


@dataclass
class SharedContained:
    """One ``contained_in()`` question for :data:`CONTAINED_SQL`; ``lengths`` and
    ``pinyin_max`` describe the table (the normalised lengths it holds, its longest pinyin
    key), as the in-memory index keeps them."""

    text: str
    lengths: Iterable[int]
    pinyin_max: int
    min_length: int = 2
    limit: int | None = None
    query: str = field(init=False)
    substrings: set[str] = field(init=False)
    runs: dict[str, int] = field(init=False)  # pinyin run -> its length in letters
    total: int = field(init=False)

    def __post_init__(self) -> None:
        self.query = q = normalise(self.text)
        self.substrings, self.runs = set(), {}
        syllables = syllables_of_normalised(q)
        self.total = sum(map(len, syllables))
        if len(q) < self.min_length:
            return
        for length in sorted(set(self.lengths)):
            if length > len(q):
                break
            if length >= self.min_length:
                self.substrings.update(q[i:i + length] for i in range(len(q) - length + 1))
        for start in range(len(syllables) - 1):
            run = syllables[start]
            for syllable in syllables[start + 1:]:
                run += syllable
                if len(run) > self.pinyin_max:
                    break
                self.runs[run] = len(run)
        for token in latin_runs(q):
            if self.min_length <= len(token) <= self.pinyin_max:
                self.runs[token] = len(token)

    def params(self) -> dict:
        return {"norms": sorted(self.substrings | set(self.runs)), "pinyins": sorted(self.runs)}

    def matches(self, rows: Sequence[Sequence[str]]) -> list[NameMatch]:
        size = len(self.query)
        found: dict[str, tuple[float, int, str]] = {}
        for key_id, name, norm, pinyin, _ in rows:
            if norm in self.substrings and len(norm) >= self.min_length:
                found[key_id] = (len(norm) / size, 4, name)
            elif len(norm) >= self.min_length and (pinyin in self.runs or norm in self.runs):
                run = pinyin if pinyin in self.runs else norm
                found[key_id] = (self.runs[run] / self.total, 5, name)
        return _ranked(found, self.limit)


_KIND_NAMES = ("exact", "normalised", "pinyin", "fuzzy", "contains", "contains_pinyin", "affix")


def _ranked(found: dict[str, tuple[float, int, str]], limit: int | None) -> list[NameMatch]:
    ranked = sorted(found.items(), key=lambda item: (-item[1][0], item[1][1], item[0]))
    if limit is not None:
        ranked = ranked[:limit]
    return [NameMatch(key_id, name, _KIND_NAMES[rank], score)  # type: ignore[arg-type]
            for key_id, (score, rank, name) in ranked]
