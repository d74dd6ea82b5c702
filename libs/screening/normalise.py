"""Screening keys: what two names must share to count as "the same name" to a reader.

A person registering 人民·日報 wants readers to see 人民日报, so every key folds what a
reader does not notice: width, case, spacing and punctuation, invisible characters,
diacritics, traditional characters, letters from other scripts that look Latin, and the
characters Unicode lists as confusable (katakana エ for 工, the radical ⺠ for 民).
The keys are for comparison only; they are never shown or stored as a name.
"""

from __future__ import annotations

import threading
import unicodedata
from functools import lru_cache
from pathlib import Path

from ._confusables import confusable_fold
from ._pinyin import syllables as _syllables

# Everything else a reader takes for another character comes from Unicode's confusables
# data (libs.screening._confusables). These few entries come first because that data is
# case-sensitive and folds small Cyrillic/Greek letters to small capitals (в -> ʙ), while
# here they arrive after casefold and must fold to the Latin letter.
# Look-alikes as they are *after* casefold (so 'А' and 'а' both arrive here as 'а').
# Where the capital and the small letter resemble different Latin letters (Greek Η/η,
# Cyrillic Н/н) the capital wins: brand names in account names are mostly capitals.
HOMOGLYPHS: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j",
    "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y",
    "х": "x", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ь": "b", "г": "r",
    "п": "n", "и": "u", "ү": "y", "ʏ": "y",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "ζ": "z", "η": "h", "ι": "i", "κ": "k",
    "μ": "m", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
    "ϲ": "c", "ϳ": "j",
    # Latin letters that read as others
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ꞵ": "b",
}

# Digits that pass for letters. Kept out of normalise(): "12306" and "l2306" are different
# names to most readers, so this folding is only a second, looser key.
DIGIT_LOOKALIKES = str.maketrans({"0": "o", "1": "l", "5": "s"})

# Categories a reader does not see or does not read as part of a name: separators (Z*),
# punctuation (P*), symbols (S*), controls/format/private-use/unassigned (C*: zero-width
# spaces and joiners are Cf) and combining marks (Mn/Me: diacritics, variation selectors,
# the overlays of "zalgo" text). Combining marks are stripped after NFKD, so é -> e.
_DROPPED_CATEGORIES = frozenset("ZPSC")
_DROPPED_MARKS = frozenset(("Mn", "Me"))


class _FoldTable(dict):
    """``str.translate`` table filled on first sight of each code point.

    translate() looks every character up in the table; a plain dict hit stays in C, so
    after warm-up folding costs one C loop instead of a Python loop over characters.
    Bounded by the number of code points (~300k assigned), i.e. a few tens of MB at worst.
    """

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        category = unicodedata.category(char)
        value: str | None = HOMOGLYPHS.get(char) or confusable_fold().get(char)
        if value is None:
            # radicals are symbols (So) but read as the character they come from: those
            # with a confusable character fold to it above, the rest are dropped here
            if category[0] in _DROPPED_CATEGORIES or category in _DROPPED_MARKS:
                value = None
            else:
                value = char
        elif value != char:
            # a look-alike's target may itself fold (Cherokee Ꮁ -> Greek γ -> y): fold it
            # to the end, or normalise would not be idempotent; the provisional entry ends
            # a cycle
            self[code] = value
            value = value.translate(self)
        self[code] = value
        return value


_FOLD = _FoldTable()

# opencc-python-reimplemented is pure Python (~8 µs per short name) and loads its
# dictionaries on first use; most names hold no traditional character at all, so it is
# created lazily and only consulted when a name contains a character its t2s tables
# change (see _t2s_triggers).
_converter_lock = threading.Lock()
_converter = None
_triggers: frozenset[str] | None = None


def _t2s():
    global _converter, _triggers
    if _converter is None:
        with _converter_lock:
            if _converter is None:
                from opencc import OpenCC

                _triggers = _t2s_triggers()
                _converter = OpenCC("t2s")
    return _converter


def _t2s_triggers() -> frozenset[str] | None:
    """Characters whose presence may make t2s change a string (None: always convert).

    t2s maps single characters (TSCharacters) and a few phrases (TSPhrases, e.g. 乾燥 ->
    干燥 where 乾 alone stays). A phrase can only match if all its characters occur, so
    one character of each changed phrase suffices: preferably one the character table
    knows (乾, 瞭), not one as common as 一 in 一目瞭然.
    """
    import opencc

    folder = Path(opencc.__file__).resolve().parent / "dictionary"
    try:
        characters = _entries(folder / "TSCharacters.txt")
        phrases = _entries(folder / "TSPhrases.txt")
    except OSError:
        return None
    chars = {key for key, changed in characters.items() if changed}
    for phrase, changed in phrases.items():
        if changed and chars.isdisjoint(phrase):
            chars.add(next((c for c in phrase if c in characters), phrase[0]))
    return frozenset(chars)


def _entries(path: Path) -> dict[str, bool]:
    """Keys of an OpenCC table, each with whether its first value differs from it."""
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, values = line.partition("\t")
        if key:
            entries[key] = values.split(" ", 1)[0] != key
    return entries


def to_simplified(text: str) -> str:
    """Traditional Chinese characters of ``text`` replaced by simplified ones."""
    converter = _t2s()
    if _triggers is not None and _triggers.isdisjoint(text):
        return text
    return converter.convert(text)


def _normalise(text: str) -> str:
    folded = _fold_once(text)
    # one pass is nearly always the end; where a step's output is input to another (a
    # traditional character simplified to one with a look-alike of its own: 薴 -> 苧 ->
    # 苎), fold again until nothing changes, so that normalise is idempotent
    for _ in range(3):
        if folded.translate(_FOLD) == folded and to_simplified(folded) == folded:
            break
        folded = _fold_once(folded)
    return folded


def _fold_once(text: str) -> str:
    # NFKD folds full/half width and compatibility forms and splits off diacritics;
    # casefold after it, and NFKD again because casefold can yield decomposable letters.
    folded = unicodedata.normalize("NFKD", text).casefold()
    folded = unicodedata.normalize("NFKD", folded).translate(_FOLD)
    # recompose what stripping left adjacent (Hangul jamo, Indic vowel parts)
    folded = unicodedata.normalize("NFKC", folded)
    return to_simplified(folded)


@lru_cache(maxsize=65_536)
def normalise(text: str) -> str:
    """The comparison key of a name.

    Unicode compatibility folding (full/half width, ligatures, circled and styled
    letters), casefold, diacritics, whitespace, punctuation, symbols and invisible
    (format, zero-width) characters removed, Cyrillic/Greek look-alikes folded to
    Latin, traditional Chinese to simplified; the result is NFKC. Idempotent:
    ``normalise(normalise(x)) == normalise(x)``.
    """
    return _normalise(text)


@lru_cache(maxsize=65_536)
def aggressive_key(text: str) -> str:
    """:func:`normalise` plus digit look-alikes (0 -> o, 1 -> l, 5 -> s)."""
    return normalise(text).translate(DIGIT_LOOKALIKES)


def syllables_of_normalised(key: str) -> tuple[str, ...]:
    """Toneless pinyin syllables of an already normalised key (non-Han runs kept whole)."""
    return _syllables(key)


@lru_cache(maxsize=65_536)
def pinyin_syllables(text: str) -> tuple[str, ...]:
    """Toneless pinyin of ``normalise(text)``, one item per Han character or non-Han run."""
    return syllables_of_normalised(normalise(text))


def pinyin_key(text: str) -> str:
    """The sound of a name: toneless pinyin of its normalised form, concatenated.

    人民日报, 人民日報 and ``renminribao`` share the key ``renminribao``; so do homophones
    written with other characters.
    """
    return "".join(pinyin_syllables(text))
