"""The character policy of request bodies (ADR 0030), over every service's schemas: every
string a body carries refuses NUL, other control characters and the format characters
that hide or reorder text; every name refuses a value that shows nothing. A field added
tomorrow as a plain ``str`` fails here the day it is written."""

from __future__ import annotations

import importlib
import inspect
from typing import Annotated

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from libs.domain import CHARACTER_ERRORS, Line, Name, Text

SERVICES = ("registration", "verification", "transfer", "credit", "enforcement")
PROBES = ("abcd", "https://abcd")  # a plain value, and one for the URL-shaped fields
HOSTILE = ("\x00", "\x1b", "\u202e", "\u2066", "\u200b", "\ufeff", "\ud800")


def _string_fields():
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.schemas")
        for _, model in inspect.getmembers(module, inspect.isclass):
            if not issubclass(model, BaseModel) or model.__module__ != module.__name__:
                continue
            for name, field in model.model_fields.items():
                adapter = TypeAdapter(Annotated[field.annotation, *field.metadata]
                                      if field.metadata else field.annotation)
                for probe in PROBES:
                    for value in (probe, [probe]):
                        try:
                            adapter.validate_python(value)
                        except ValidationError:
                            continue
                        yield pytest.param(adapter, value, id=f"{model.__name__}.{name}")
                        break
                    else:
                        continue
                    break


def _with(value, hostile: str):
    text = value if isinstance(value, str) else value[0]
    spiked = text[:2] + hostile + text[2:]
    return spiked if isinstance(value, str) else [spiked]


@pytest.mark.parametrize(("adapter", "value"), list(_string_fields()))
def test_every_string_of_every_request_body_refuses_control_and_format_characters(
        adapter, value):
    for hostile in HOSTILE:
        with pytest.raises(ValidationError) as refused:
            adapter.validate_python(_with(value, hostile))
        # base64 fields refuse by their alphabet; pydantic refuses a lone surrogate itself
        assert {e["type"] for e in refused.value.errors()} & (
            CHARACTER_ERRORS | {"string_pattern_mismatch", "string_unicode"}), hostile


def test_the_schemas_have_string_fields_to_check():
    assert len(list(_string_fields())) > 60


@pytest.mark.parametrize("value", ["\u200b\u200c", "\u3164", "\u115f\u1160", "\u2800", " ",
                                   "\u3000", "\u0301", "\ue000abc", "ab\u200dcd"])
def test_a_name_that_shows_nothing_or_hides_something_is_refused(value):
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(Name).validate_python(value)
    assert refused.value.errors()[0]["type"] in CHARACTER_ERRORS


@pytest.mark.parametrize("value", ["张三", "广州某某科技有限公司", "Zoë Ñúñez", "科技 频道",
                                   "Ali's 📱 tips", "السلام"])
def test_names_people_write_pass(value):
    assert TypeAdapter(Name).validate_python(value) == value


def test_text_keeps_line_structure_and_emoji_sequences_a_line_does_not():
    text = "第一行\r\n第二行\t👨\u200d👩\u200d👧 \u3000end"
    assert TypeAdapter(Text).validate_python(text) == text
    with pytest.raises(ValidationError):
        TypeAdapter(Line).validate_python("a\nb")
    with pytest.raises(ValidationError):
        TypeAdapter(Text).validate_python("a\u2028b\u202e")
