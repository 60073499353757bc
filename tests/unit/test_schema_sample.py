# SPDX-License-Identifier: Apache-2.0
"""`sample` builds values that both jsonschema and Pydantic accept, deterministically."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

import jsonschema
import pytest
from genkit.plugin_api import to_json_schema
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AnyUrl, BaseModel, ConfigDict, Field, TypeAdapter

from genkit_endpoints.model.schema_sample import ROOT_HINT, sample


class Color(StrEnum):
    RED = "red"
    GREEN = "green"


class Character(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(min_length=2, max_length=40)
    back_story: str = Field(alias="backStory")
    level: int = Field(ge=1, le=20)
    languages: list[Annotated[str, Field(pattern=r"^[a-zA-Z#+]+$")]] = Field(max_length=4)
    mood: Literal["happy", "grumpy"]
    color: Color
    nickname: str | None = None


class Address(BaseModel):
    street: str
    city: str = Field(max_length=12)
    zip_code: str = Field(pattern=r"^\d{5}(-\d{4})?$")


class LineItem(BaseModel):
    sku: str = Field(pattern=r"^[A-Z]{3}-\d{3}$")
    quantity: int = Field(gt=0, lt=10)
    price: float = Field(ge=0.5, le=99.5, multiple_of=0.5)


class Order(BaseModel):
    id: uuid.UUID
    placed_at: dt.datetime
    ship_on: dt.date
    address: Address
    items: list[LineItem] = Field(min_length=1, max_length=3)
    tags: set[str] = Field(default_factory=set)
    notes: dict[str, int] = Field(default_factory=dict)
    pair: tuple[int, str] = (1, "a")
    website: AnyUrl | None = None
    discount: float | None = Field(default=None, gt=0, lt=1)


class TreeNode(BaseModel):
    label: str
    children: list[TreeNode] = Field(default_factory=list)


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = Field(ge=1, le=9)


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Pet(BaseModel):
    pet: Cat | Dog = Field(discriminator="kind")
    code: str = Field(min_length=3, max_length=3)
    language: str = "French"
    motto: str = Field(default="x", min_length=3)  # invalid default: must not be used
    ratio: Annotated[float, Field(multiple_of=0.1, ge=0, le=1)] = 0.5


MODELS: list[type[BaseModel]] = [Character, Address, LineItem, Order, TreeNode, Pet]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("seed", ["a", "b", "c", "seed-42", ""])
def test_sample_validates_with_jsonschema_and_pydantic(model: type[BaseModel], seed: str) -> None:
    schema = model.model_json_schema()
    value = sample(schema, seed=seed)
    jsonschema.validate(value, schema)
    model.model_validate(value)


def test_sample_accepts_genkit_to_json_schema_output() -> None:
    schema = to_json_schema(Order)
    value = sample(schema, seed="genkit")
    jsonschema.validate(value, schema)
    Order.model_validate(value)


@settings(max_examples=60, deadline=None)
@given(seed=st.text(max_size=30))
def test_any_seed_gives_a_valid_order(seed: str) -> None:
    schema = Order.model_json_schema()
    value = sample(schema, seed=seed)
    jsonschema.validate(value, schema)
    Order.model_validate(value)


@settings(max_examples=40, deadline=None)
@given(seed=st.text(max_size=30))
def test_any_seed_gives_a_valid_character_by_alias(seed: str) -> None:
    value = sample(Character.model_json_schema(), seed=seed)
    assert "backStory" in value
    Character.model_validate(value)


def test_same_seed_gives_same_value_and_seeds_vary_it() -> None:
    schema = Character.model_json_schema()
    assert sample(schema, seed="x") == sample(schema, seed="x")
    assert len({repr(sample(schema, seed=str(i))) for i in range(10)}) > 5


def test_optional_and_non_required_properties_are_filled() -> None:
    value = sample(Order.model_json_schema(), seed="fill")
    assert value["website"] is not None
    assert value["discount"] is not None
    assert set(value) == set(Order.model_fields)


def test_plain_strings_read_like_words() -> None:
    value = sample({"type": "object", "properties": {"story": {"type": "string"}}}, seed="w")
    assert re.fullmatch(r"[A-Z][a-z]+( [a-z]+)+\.", value["story"])


def test_formats_parse_as_their_types() -> None:
    value = sample(Order.model_json_schema(), seed="fmt")
    dt.datetime.fromisoformat(value["placed_at"].replace("Z", "+00:00"))
    dt.date.fromisoformat(value["ship_on"])
    uuid.UUID(value["id"])
    TypeAdapter(AnyUrl).validate_python(value["website"])
    email = sample({"type": "string", "format": "email"}, seed="e")
    assert re.fullmatch(r"[a-z]+\.[a-z]+@example\.com", email)


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[a-zA-Z#+]+$",
        r"^\d{3}-\d{4}$",
        r"^(foo|bar)_[a-z]{2,5}$",
        r"^[^x-z\s]{4}$",
        r"^\w+@\w+\.com$",
        r"^[A-Z][a-z]+( [A-Z][a-z]+)*$",
        r"^(ab|cd)\1$",
        r"^#[0-9a-fA-F]{6}$",
        r"^v\d+\.\d+\.\d+$",
        r"colou?r",
        r"^\S+\s\S+$",
        r"^.{3,5}$",
        r"^(?:[a-z]+-)*[a-z]+$",
    ],
)
def test_pattern_strings_match_their_regex(pattern: str) -> None:
    for seed in ("1", "2", "3"):
        text = sample({"type": "string", "pattern": pattern}, seed=seed)
        assert re.search(pattern, text), (pattern, text)


def test_pattern_combines_with_length_limits() -> None:
    schema = {"type": "string", "pattern": r"^[a-z]+$", "minLength": 20, "maxLength": 25}
    for seed in ("1", "2", "3"):
        jsonschema.validate(sample(schema, seed=seed), schema)


def test_pattern_prefers_whole_words_over_noise() -> None:
    text = sample({"type": "string", "pattern": r"^[a-zA-Z#+]+$"}, seed="lang")
    assert text.isalpha()
    assert text.islower()


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 50},
        {"type": "string", "maxLength": 4},
        {"type": "string", "minLength": 7, "maxLength": 7},
        {"type": "string", "maxLength": 0},
        {"type": "integer", "minimum": 7, "maximum": 23, "multipleOf": 5},
        {"type": "integer", "exclusiveMinimum": -3, "exclusiveMaximum": -1},
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.05},
        {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.1},
        {"type": "number", "maximum": -1000.5},
        {"type": "array", "items": {"type": "integer"}, "minItems": 5},
        {"type": "array", "items": {"type": "integer"}, "maxItems": 0},
        {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 3, "uniqueItems": True},
        {"type": ["string", "null"], "minLength": 2},
        {"const": {"fixed": True}},
        {"type": "object", "additionalProperties": {"type": "boolean"}, "minProperties": 3},
        {"type": "object", "properties": {"a": {"type": "null"}}, "required": ["a", "b"]},
        {
            "allOf": [{"$ref": "#/definitions/A"}, {"properties": {"b": {"type": "integer"}}}],
            "definitions": {"A": {"properties": {"a": {"type": "string"}}, "required": ["a"]}},
        },
        {"anyOf": [{"type": "null"}, {"type": "string", "format": "uuid"}]},
        {"oneOf": [{"type": "integer", "minimum": 10}, {"type": "boolean"}]},
        {"items": {"type": "string"}},
        {"properties": {"anything": True, "nothing_required": False}},
        {},
    ],
)
def test_keyword_combinations_validate(schema: dict[str, Any]) -> None:
    for seed in ("1", "2", "3", "4"):
        jsonschema.validate(sample(schema, seed=seed), schema)


def test_arrays_default_to_between_one_and_three_items() -> None:
    sizes = {
        len(sample({"type": "array", "items": {"type": "integer"}}, seed=str(i))) for i in range(30)
    }
    assert sizes == {1, 2, 3}


def test_recursive_models_terminate() -> None:
    value = sample(TreeNode.model_json_schema(), seed="deep")
    TreeNode.model_validate(value)


def test_valid_default_is_used_and_invalid_default_is_not() -> None:
    value = sample(Pet.model_json_schema(), seed="d")
    assert value["language"] == "French"
    assert value["motto"] != "x"


def test_hints_fill_matching_properties_when_they_fit() -> None:
    schema = {
        "type": "object",
        "properties": {
            "original_text": {"type": "string"},
            "translated_text": {"type": "string"},
            "topic": {"type": "string", "maxLength": 3},
            "mood": {"enum": ["happy", "sad"]},
        },
    }
    hints = {"original_text": "good morning", "text": "bonjour", "topic": "too long", "mood": "sad"}
    value = sample(schema, seed="h", hints=hints)
    assert value["original_text"] == "good morning"  # exact name wins over the suffix "text"
    assert value["translated_text"] == "bonjour"  # matched by its last word
    assert value["topic"] != "too long"  # violates maxLength
    assert value["mood"] == "sad"


def test_root_hint_applies_to_a_bare_string_schema() -> None:
    assert sample({"type": "string"}, seed="r", hints={ROOT_HINT: "Paris"}) == "Paris"
    assert (
        sample({"type": "string", "pattern": "^\\d+$"}, seed="r", hints={ROOT_HINT: "Paris"})
        != "Paris"
    )


def test_hint_is_ignored_when_a_format_is_required() -> None:
    value = sample({"type": "string", "format": "date"}, seed="f", hints={ROOT_HINT: "tomorrow"})
    dt.date.fromisoformat(value)
