"""libs.screening — is a new name or avatar too close to one we must protect?

Pure Python, no I/O, no framework: the registration service screens new account names
against closed accounts' names (Art. 8¶3), the verification service screens profile
names, descriptions and avatars against protected names and logos (Art. 8¶2). Both load
an index at start-up from their own read models and query it per request.

Public API:

- :func:`normalise` — the comparison key of a name (width, case, spacing, punctuation,
  invisible characters, diacritics, look-alike letters and characters from Unicode's
  confusables data, traditional -> simplified);
  :func:`aggressive_key` also folds look-alike digits (0/1/5 -> o/l/s).
- :func:`pinyin_key`, :func:`pinyin_syllables` — the toneless pinyin of the normalised
  name: 人民日报, 人民日報 and ``renminribao`` share one key.
- :class:`NameIndex` — names by opaque id: ``similar()`` (exact, normalised, pinyin and
  fuzzy matches; on request also a name with labels added, :class:`Affixes`, and longer
  names containing an indexed one) and ``contained_in()`` (indexed names occurring
  inside a text), each answering in milliseconds over a million names;
  :class:`NameMatch` is one answer.
- :mod:`libs.screening.shared` — the same questions as statements and scoring for a
  table in PostgreSQL (``pg_trgm``), measured against the index in ADR 0023.
- :func:`avatar_fingerprint` -> :class:`AvatarFingerprint` (SHA-256 and perceptual
  hash), :func:`phash_distance`, :class:`LogoIndex` (nearest logos by Hamming distance);
  :class:`InvalidImageError` for bytes that are not an acceptable image.
"""

from .affixes import DEFAULT_AFFIXES, Affixes
from .images import (
    AvatarFingerprint,
    InvalidImageError,
    LogoIndex,
    avatar_fingerprint,
    phash_distance,
)
from .index import MatchKind, NameIndex, NameMatch
from .normalise import aggressive_key, normalise, pinyin_key, pinyin_syllables

__all__ = [
    "DEFAULT_AFFIXES",
    "Affixes",
    "AvatarFingerprint",
    "InvalidImageError",
    "LogoIndex",
    "MatchKind",
    "NameIndex",
    "NameMatch",
    "aggressive_key",
    "avatar_fingerprint",
    "normalise",
    "phash_distance",
    "pinyin_key",
    "pinyin_syllables",
]
