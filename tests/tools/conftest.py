"""Shared types and helpers of the tool tests (annotations resolve at module level)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Callable
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import msgspec
from google.genai import types as gt

from gemini_live.tools import (
    ToolSpec,
)
from gemini_live.types import (
    FunctionDeclaration,
)

# -- types used in annotations (module level so that type hints resolve) -----------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    """A point on the map.

    Attributes:
        x: East-west position.
    """

    x: float
    y: Annotated[float, "North-south position."] = 0.0


@dataclasses.dataclass
class Route:
    start: Point
    stops: list[Point] = dataclasses.field(default_factory=list)


class Filters(TypedDict):
    """Search filters."""

    city: str
    max_price: NotRequired[Annotated[int, "Upper bound in EUR."]]


class Booking(msgspec.Struct, rename="camel"):
    """A booking request."""

    guest_name: str
    nights: Annotated[int, msgspec.Meta(ge=1, le=30)]
    vip: bool = False


class Shape(msgspec.Struct, tag=True):
    side: float


class Opaque:
    """Not describable as JSON Schema."""


@dataclasses.dataclass
class TreeNode:
    value: int
    children: list[TreeNode] = dataclasses.field(default_factory=list)


def fn_with(annotation: Any) -> Callable[..., Any]:
    def f(x: Any) -> None:
        pass

    f.__annotations__ = {"x": annotation, "return": None}
    return f


def x_schema(annotation: Any) -> Any:
    spec = ToolSpec.from_function(fn_with(annotation), name="f")
    assert spec.parameters_json_schema is not None
    assert spec.parameters_json_schema["required"] == ["x"]
    return spec.parameters_json_schema["properties"]["x"]


def validate_with_genai(decl: FunctionDeclaration) -> None:
    """The declaration is a valid google-genai FunctionDeclaration, schema included."""
    parsed = gt.FunctionDeclaration.model_validate_json(msgspec.json.encode(decl))
    assert parsed.name == decl.name
    if isinstance(decl.behavior, str):
        assert parsed.behavior is not None and parsed.behavior.value == decl.behavior
    else:  # unset: the model family's default applies
        assert parsed.behavior is None
    if parsed.parameters_json_schema is not None:
        schema = gt.JSONSchema.model_validate(parsed.parameters_json_schema)
        gt.Schema.from_json_schema(
            json_schema=schema, api_option="GEMINI_API", raise_error_on_unsupported_field=True
        )


async def get_weather(
    city: Annotated[str, "City name, e.g. Paris."],
    unit: Literal["C", "F"] = "C",
    days: int = 1,
    when: datetime.date | None = None,
) -> dict[str, float]:
    """Current weather and forecast for a city.

    Uses the public weather service; this paragraph is not part of the description.

    Args:
        city: Ignored, the Annotated description wins.
        unit: Temperature unit.
        days (int): Number of days to forecast,
            counting today.

    Returns:
        Temperatures.
    """
    return {"temp": 18.0}
