"""Visually confusable characters from Unicode's confusables data (UTS #39).

The data is ``confusables.txt`` as shipped by the ``confusable-homoglyphs`` package (a
JSON of it: each source character lists its prototype, each prototype lists its
sources), so the table follows Unicode's releases through that package instead of a list
kept by hand. Each class of characters that share a prototype folds to one member:

- an ASCII letter or digit if the class has one (Cyrillic/Greek/mathematical letters,
  full-width forms), else a common Chinese character (GB 2312), else the lowest code
  point: katakana エ and the radical ⼯ fold to 工, the radical ⺠ to 民, ⻢ to 马;
- ASCII characters are never changed here (``normalise`` keeps ``l`` and ``1`` apart;
  :data:`~libs.screening.normalise.DIGIT_LOOKALIKES` is the looser key for that);
- only letters, digits and radicals fold, and only to a letter or digit: a character
  that looks like punctuation is dropped by ``normalise`` anyway;
- a character with a Chinese reading folds only to one that reads alike (値/值, 黒/黑,
  郞/郎): 土 and 士 look alike but read *tu* and *shi*, and folding them would break the
  pinyin key of 博士 (a one-character difference is the fuzzy match's job); 〇 (*ling*)
  stays, although it looks like O.

Unicode's data is case-sensitive (small Cyrillic в has the small capital ʙ as prototype);
``normalise`` folds after casefold, so its own few Cyrillic/Greek entries
(:data:`~libs.screening.normalise.HOMOGLYPHS`) take precedence over this table.
Multi-character prototypes (``rn`` for ``m``) are left out: a key fold is one character
to at most one character.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from importlib import resources

_lock = threading.Lock()
_table: dict[str, str] | None = None


def confusable_fold() -> dict[str, str]:
    """Source character -> the character its confusable class folds to (built once)."""
    global _table
    if _table is None:
        with _lock:
            if _table is None:
                _table = _build()
    return _table


def _load() -> dict[str, list[str]]:
    raw = resources.files("confusable_homoglyphs").joinpath("confusables.json")
    data = json.loads(raw.read_text(encoding="utf-8"))
    # right-to-left characters are stored wrapped in LEFT-TO-RIGHT MARKs for display
    return {key.strip("\u200e"): [item["c"].strip("\u200e") for item in items]
            for key, items in data.items()}


def _classes(data: dict[str, list[str]]) -> list[set[str]]:
    """Connected classes of single characters (each is a prototype and its sources)."""
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.setdefault(c, c) != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for key, others in data.items():
        if len(key) != 1:
            continue
        for other in others:
            if len(other) == 1:
                parent[find(key)] = find(other)
    groups: dict[str, set[str]] = {}
    for c in parent:
        groups.setdefault(find(c), set()).add(c)
    return [g for g in groups.values() if len(g) > 1]


def _is_han(c: str) -> bool:
    return unicodedata.name(c, "").startswith("CJK UNIFIED IDEOGRAPH")


def _common_han(c: str) -> bool:
    try:
        c.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return _is_han(c)


def _rank(c: str) -> tuple[int, int]:
    if c.isascii() and c.isalnum():
        return (0 if c.islower() else 1 if c.isalpha() else 2, ord(c))
    if _common_han(c):
        return (3, ord(c))
    if _is_han(c):
        return (4, ord(c))
    return (5, ord(c))


def _foldable(c: str) -> bool:
    category = unicodedata.category(c)
    return category[0] in "LN" or category == "So" and "RADICAL" in unicodedata.name(c, "")


def _reading(c: str) -> str | None:
    from pypinyin import Style, lazy_pinyin

    value = lazy_pinyin(c, style=Style.NORMAL)[0]
    return None if value == c else value


def _build() -> dict[str, str]:
    table: dict[str, str] = {}
    for group in _classes(_load()):
        target = min(group, key=_rank)
        if not _foldable(target) or unicodedata.category(target)[0] not in "LN":
            continue
        folded = unicodedata.normalize("NFKD", target).casefold()
        if len(folded) != 1:
            continue
        for c in group:
            if c == target or c.isascii() or not _foldable(c):
                continue
            reading = _reading(c)
            if reading is not None and reading != _reading(target):
                continue
            table[c] = folded
    return table
