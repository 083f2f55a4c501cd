"""JSON Schema from type hints and docstrings (``gemini_live.tools._schema``)."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Annotated, Any, Literal

import msgspec
import pytest

from gemini_live.errors import ConfigError
from gemini_live.tools import (
    ToolSpec,
)

from .conftest import (
    Booking,
    Color,
    Filters,
    Level,
    Opaque,
    Point,
    Route,
    Shape,
    TreeNode,
    fn_with,
    validate_with_genai,
    x_schema,
)

TIMEOUT = 5.0

# -- schema generation ------------------------------------------------------------------

POINT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A point on the map.",
    "properties": {
        "x": {"type": "number", "description": "East-west position."},
        "y": {"type": "number", "description": "North-south position.", "default": 0.0},
    },
    "required": ["x"],
}

SCHEMA_CASES: list[tuple[Any, dict[str, Any]]] = [
    (str, {"type": "string"}),
    (int, {"type": "integer"}),
    (float, {"type": "number"}),
    (bool, {"type": "boolean"}),
    (None, {"type": "null"}),
    (Any, {}),
    (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
    (str | int, {"anyOf": [{"type": "string"}, {"type": "integer"}]}),
    (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
    (Literal[1, 2], {"type": "integer", "enum": [1, 2]}),
    (Literal["a", 1], {"enum": [1, "a"]}),  # msgspec groups by type
    (
        Literal["a", "b"] | None,
        {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}]},
    ),
    (Color, {"type": "string", "enum": ["red", "green"]}),
    (Level, {"type": "integer", "enum": [1, 2]}),
    (list[int], {"type": "array", "items": {"type": "integer"}}),
    (list[list[str]], {"type": "array", "items": {"type": "array", "items": {"type": "string"}}}),
    (set[str], {"type": "array", "items": {"type": "string"}}),
    (frozenset[int], {"type": "array", "items": {"type": "integer"}}),
    (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
    (
        tuple[int, int],
        {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
    ),
    (
        tuple[int, str],
        {
            "type": "array",
            "items": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "minItems": 2,
            "maxItems": 2,
        },
    ),
    (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
    (dict[str, Any], {"type": "object"}),
    (
        dict[str, list[Color]],
        {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {"type": "string", "enum": ["red", "green"]},
            },
        },
    ),
    (Point, POINT_SCHEMA),
    (Point | None, {"anyOf": [POINT_SCHEMA, {"type": "null"}]}),
    (
        Route,
        {
            "type": "object",
            "properties": {
                "start": POINT_SCHEMA,
                "stops": {"type": "array", "items": POINT_SCHEMA},
            },
            "required": ["start"],
        },
    ),
    (
        Filters,
        {
            "type": "object",
            "description": "Search filters.",
            "properties": {
                "city": {"type": "string"},
                "max_price": {"type": "integer", "description": "Upper bound in EUR."},
            },
            "required": ["city"],
        },
    ),
    (
        Booking,
        {
            "type": "object",
            "description": "A booking request.",
            "properties": {
                "guestName": {"type": "string"},
                "nights": {"type": "integer", "minimum": 1, "maximum": 30},
                "vip": {"type": "boolean", "default": False},
            },
            "required": ["guestName", "nights"],
        },
    ),
    (
        Shape,
        {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["Shape"]},
                "side": {"type": "number"},
            },
            "required": ["type", "side"],
        },
    ),
    (Annotated[str, "The city."], {"type": "string", "description": "The city."}),
    (
        Annotated[int, msgspec.Meta(ge=0, lt=10, description="Count.")],
        {"type": "integer", "minimum": 0, "maximum": 9, "description": "Count."},
    ),
    (
        Annotated[str, msgspec.Meta(min_length=1, max_length=5, pattern="^[a-z]+$")],
        {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"},
    ),
    (
        Annotated[list[int], msgspec.Meta(min_length=1, max_length=3)],
        {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
    ),
    (
        Annotated[float, msgspec.Meta(ge=0.0, le=1.0)],
        {"type": "number", "minimum": 0.0, "maximum": 1.0},
    ),
    (datetime.datetime, {"type": "string", "format": "date-time"}),
    (datetime.date, {"type": "string", "format": "date"}),
    (uuid.UUID, {"type": "string", "format": "uuid"}),
]


@pytest.mark.parametrize(("annotation", "expected"), SCHEMA_CASES, ids=lambda v: repr(v)[:40])
def test_schema_for_annotation(annotation: Any, expected: dict[str, Any]) -> None:
    assert x_schema(annotation) == expected
    validate_with_genai(ToolSpec.from_function(fn_with(annotation), name="f").declaration())


def test_recursive_type_uses_defs() -> None:
    def plant(tree: TreeNode) -> None:
        pass

    schema = ToolSpec.from_function(plant).parameters_json_schema
    node = {
        "type": "object",
        "properties": {
            "value": {"type": "integer"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/TreeNode"}},
        },
        "required": ["value"],
    }
    assert schema == {
        "type": "object",
        "properties": {"tree": {"$ref": "#/$defs/TreeNode"}},
        "required": ["tree"],
        "$defs": {"TreeNode": node},
    }
    validate_with_genai(ToolSpec.from_function(plant).declaration())


class Ratio(enum.Enum):
    HALF = 0.5
    ONE = 1


class Mood(enum.StrEnum):
    """How the user feels."""

    HAPPY = "happy"
    SAD = "sad"


class Flat(msgspec.Struct, array_like=True):
    a: int


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (Mood, {"type": "string", "enum": ["happy", "sad"], "description": "How the user feels."}),
        (Literal[True], {"type": "boolean", "enum": [True]}),
        (dict[int, str], {"type": "object", "additionalProperties": {"type": "string"}}),
        (
            dict[Annotated[str, msgspec.Meta(min_length=1)], int],
            {"type": "object", "additionalProperties": {"type": "integer"}},
        ),
        (
            Annotated[dict[str, int], msgspec.Meta(min_length=1, max_length=2)],
            {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "minProperties": 1,
                "maxProperties": 2,
            },
        ),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_schema_edge_cases(annotation: Any, expected: dict[str, Any]) -> None:
    assert x_schema(annotation) == expected


@pytest.mark.parametrize(
    "annotation", [dict[tuple[int, int], str], Flat, Opaque, bytes | Opaque, Ratio]
)
def test_unsupported_annotations(annotation: Any) -> None:
    with pytest.raises(ConfigError, match="unsupported type"):
        ToolSpec.from_function(fn_with(annotation), name="f")


def test_defaults_that_are_not_json_are_left_out() -> None:
    sentinel = object()

    def f(x: Any = sentinel) -> None:
        pass

    assert ToolSpec.from_function(f).parameters_json_schema == {
        "type": "object",
        "properties": {"x": {}},
    }
