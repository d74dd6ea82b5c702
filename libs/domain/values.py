"""Small value conversions every domain needs when it folds stored (JSON) payloads, and the
string types request bodies use for what people read (names, descriptions)."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError


def as_datetime(value: Any) -> datetime | None:
    """A time from a payload: ``None``, a datetime as is, or its ISO 8601 text parsed."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


# -- characters that hurt (ADR 0030) ----------------------------------------------------------
# Text a person reads (a name, a description) must show what it stores. Refused: control
# characters (Cc: NUL, which PostgreSQL cannot store, escapes, line breaks in a name), format
# characters (Cf: zero-width spaces and joiners, bidi overrides and isolates that reorder
# what is shown, the BOM, soft hyphens), lone surrogates (Cs) and, in names, private-use
# and unassigned code points. Hangul and braille fillers are letters to Unicode but show
# nothing; a name needs at least one character that shows.
ZWJ = "\u200d"  # joins emoji sequences in descriptions; never in a name
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
TEXT_CONTROLS = frozenset("\t\n\r")  # line structure, in multi-line text only


def _char_error(kind: str, value: str, i: int, what: str) -> PydanticCustomError:
    return PydanticCustomError(
        kind, "{what} must not contain U+{codepoint} ({category}) at position {position}",
        {"what": what, "codepoint": f"{ord(value[i]):04X}",
         "category": unicodedata.category(value[i]), "position": i})


def _check(value: str, *, what: str, controls: frozenset[str], joiner: bool,
           name: bool) -> str:
    if not name and value.isprintable():  # the common case, at C speed
        return value
    visible = False
    for i, ch in enumerate(value):
        category = unicodedata.category(ch)
        if category == "Cc" and ch not in controls or category in ("Zl", "Zp") and not controls:
            raise _char_error("control-character", value, i, what)
        if category in ("Cf", "Cs") and not (joiner and ch == ZWJ):
            raise _char_error("format-character", value, i, what)
        if name:
            if category in ("Co", "Cn") or ch in INVISIBLE_LETTERS:
                raise _char_error("invisible-name", value, i, what)
            visible = visible or category[0] not in "ZMC"
    if name and value and not visible:
        raise PydanticCustomError("invisible-name",
                                  "a name needs at least one visible character", {})
    return value


def name_text(value: str) -> str:
    """A name (an account's, a person's, a business's): one line, every character shown."""
    return _check(value, what="a name", controls=frozenset(), joiner=False, name=True)


def line_text(value: str) -> str:
    """One line of text (a number, a contact, an id): no control or format characters."""
    return _check(value, what="the text", controls=frozenset(), joiner=False, name=False)


def long_text(value: str) -> str:
    """Multi-line text (a description, a reason, a note): tabs and line breaks allowed, and
    the zero-width joiner of emoji sequences; no other control or format character."""
    return _check(value, what="the text", controls=TEXT_CONTROLS, joiner=True, name=False)


_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=]")


def base64_text(value: str) -> str:
    """Base64 (a document, a logo: megabytes): printable ASCII passes at C speed, and the
    decoder refuses what is not of the alphabet; anything else is named here."""
    if value.isascii() and value.isprintable():
        return value
    found = _NOT_BASE64.search(value)
    assert found is not None
    i = found.start()
    category = unicodedata.category(value[i])
    kind = ("control-character" if category == "Cc" else
            "format-character" if category in ("Cf", "Cs") else "string_pattern_mismatch")
    raise _char_error(kind, value, i, "base64")


Name = Annotated[str, AfterValidator(name_text)]
Line = Annotated[str, AfterValidator(line_text)]
Text = Annotated[str, AfterValidator(long_text)]
Base64 = Annotated[str, AfterValidator(base64_text)]
CHARACTER_ERRORS = frozenset({"control-character", "format-character", "invisible-name"})
