# SPDX-License-Identifier: Apache-2.0
"""Messages of plain string fields skip json_format, with json_format's exact results.

The handlers turn requests into dicts and results into responses. For messages made of
singular string fields they do it directly; whatever they build must be what
``MessageToDict`` / ``ParseDict`` would have built, and every input ParseDict refuses
must still be refused the same way.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from endpoints_hello.generated import genkit_sample_pb2 as pb
from genkit_endpoints.grpc.servicer import _as_input, _parse, _string_fields
from tests.example_app.generated import example_pb2

CLASSES: list[type[Message]] = [
    cls
    for module in (pb, example_pb2)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, Message)
]
PLAIN = [cls for cls in CLASSES if _string_fields(cls) is not None]

text = st.text(alphabet=st.characters(codec=None), max_size=12)  # surrogates included
values = st.one_of(
    text,
    st.none(),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(text, max_size=2),
    st.dictionaries(text, text, max_size=2),
)


def keys_of(cls: type[Message]) -> st.SearchStrategy[Any]:
    fields = cls.DESCRIPTOR.fields
    known = [f.name for f in fields] + [f.json_name for f in fields]
    return st.one_of(
        st.sampled_from(known or ["absent"]),  # HealthRequest has no fields
        st.sampled_from(["unknown", "[ext.field]", "[]"]),
        text,
        st.integers(),
    )


def outcome(convert: Any) -> Any:
    try:
        return ("ok", convert())
    except Exception as exc:  # the same refusal, by type and message
        return ("error", type(exc), str(exc))


def test_the_sample_protos_have_both_kinds() -> None:
    assert len(PLAIN) >= 10
    assert any(cls not in PLAIN for cls in CLASSES)  # RpgCharacter, with ints and lists


@pytest.mark.parametrize("cls", PLAIN, ids=lambda c: c.DESCRIPTOR.full_name)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_parse_matches_parse_dict(cls: type[Message], data: st.DataObject) -> None:
    fields = data.draw(st.dictionaries(keys_of(cls), values, max_size=5))
    expected = outcome(lambda: json_format.ParseDict(fields, cls(), ignore_unknown_fields=True))
    assert outcome(lambda: _parse(fields, cls)) == expected


@pytest.mark.parametrize("cls", PLAIN, ids=lambda c: c.DESCRIPTOR.full_name)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_as_input_matches_message_to_dict(cls: type[Message], data: st.DataObject) -> None:
    chosen = {
        f.name: data.draw(st.text(max_size=8))
        for f in cls.DESCRIPTOR.fields
        if data.draw(st.booleans())
    }
    message = cls(**chosen)
    expected = json_format.MessageToDict(message, preserving_proto_field_name=True)
    assert _as_input(message) == expected


def test_other_messages_still_go_through_json_format() -> None:
    character = {"name": "Ada", "backStory": "x", "skills": {"strength": 3}, "abilities": ["a"]}
    parsed = _parse(character, pb.RpgCharacter)
    assert parsed == json_format.ParseDict(character, pb.RpgCharacter(), ignore_unknown_fields=True)
    assert _as_input(parsed) == json_format.MessageToDict(parsed, preserving_proto_field_name=True)
