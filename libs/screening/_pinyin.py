"""pypinyin's ``lazy_pinyin(text, style=Style.NORMAL)``, exactly, at a fraction of the cost.

lazy_pinyin costs ~40 µs per name, mostly converting tone marks call by call; indexing a
million names would spend most of its time there. It splits the text into Han and
non-Han runs, cuts each Han run into dictionary phrases (forward maximum matching) and
reads each phrase from the phrase dictionary or, failing that, each character's first
reading. So:

- a non-Han run is its own syllable (lazy_pinyin keeps it as is);
- a Han run none of whose characters is read differently inside some phrase is the
  characters' first readings, one dictionary hit each;
- any other run is cut with pypinyin's own segmenter and each phrase is read by
  lazy_pinyin itself, cached: phrases repeat across names where whole names do not.

The unit tests compare the result with lazy_pinyin.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from pypinyin import Style, lazy_pinyin
from pypinyin.constants import PHRASES_DICT, PINYIN_DICT, RE_HANS
from pypinyin.seg import mmseg
from pypinyin.style import convert as convert_style


class _CharReadings(dict):
    """Toneless first reading of a Han character, as lazy_pinyin gives it alone."""

    def __missing__(self, char: str) -> str:
        value = lazy_pinyin(char, style=Style.NORMAL)[0]
        self[char] = value
        return value


_readings = _CharReadings()
_lock = threading.Lock()
_context_chars: frozenset[str] | None = None


def _contextual() -> frozenset[str]:
    """Characters some phrase reads otherwise than their first toneless reading (~430),
    and Han characters with no reading at all; computed once, in ~0.4 s."""
    global _context_chars
    if _context_chars is None:
        with _lock:
            if _context_chars is None:
                chars: set[str] = set()
                for phrase, readings in PHRASES_DICT.items():
                    for char, options in zip(phrase, readings, strict=False):
                        if char in chars:
                            continue
                        known = PINYIN_DICT.get(ord(char))
                        first = known.split(",", 1)[0] if known else None
                        if first is None or (first != options[0] and _toneless(first)
                                             != _toneless(options[0])):
                            chars.add(char)
                _context_chars = frozenset(chars)
    return _context_chars


def _toneless(reading: str) -> str:
    return convert_style(reading, Style.NORMAL, True)


def _runs_pattern() -> re.Pattern[str] | None:
    # pypinyin's own definition of a Han character, as one character class
    pattern = RE_HANS.pattern
    if not (pattern.startswith("^(?:[") and pattern.endswith("])+$")):
        return None
    chars = pattern[5:-4]
    return re.compile(f"([{chars}]+)|[^{chars}]+")


_RUNS = _runs_pattern()


@lru_cache(maxsize=262_144)
def _phrase_syllables(phrase: str) -> tuple[str, ...]:
    return tuple(lazy_pinyin(phrase, style=Style.NORMAL))


def syllables(key: str) -> tuple[str, ...]:
    """``tuple(lazy_pinyin(key, style=Style.NORMAL))`` (for keys without whitespace)."""
    if not key:
        return ()
    if _RUNS is None:  # a pypinyin whose Han pattern we do not understand: the slow way
        return tuple(lazy_pinyin(key, style=Style.NORMAL))
    contextual = _contextual()
    out: list[str] = []
    for match in _RUNS.finditer(key):
        run = match.group()
        if match.group(1) is None:
            out.append(run)
        elif contextual.isdisjoint(run):
            out.extend([_readings[c] for c in run])
        else:
            for phrase in mmseg.seg.cut(run):
                out.extend(_phrase_syllables(phrase))
    return tuple(out)


def latin_runs(key: str) -> list[str]:
    """The non-Han runs of a key, which lazy_pinyin keeps as they are."""
    if _RUNS is None:
        return []
    return [match.group() for match in _RUNS.finditer(key) if match.group(1) is None]
