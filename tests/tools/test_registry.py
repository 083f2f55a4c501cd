"""Declaring tools and binding arguments (``gemini_live.tools._registry``)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import msgspec
import pytest
from google.genai import types as gt

from gemini_live.errors import ConfigError
from gemini_live.tools import (
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolSpec,
    code_execution,
    google_search,
    tool,
    url_context,
)
from gemini_live.types import (
    UNSET,
    Tool,
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
    get_weather,
    validate_with_genai,
)

TIMEOUT = 5.0


def test_full_declaration() -> None:
    reg = ToolRegistry()
    spec = reg.add(get_weather)
    assert spec.kind == "async"
    decl = spec.declaration()
    assert msgspec.to_builtins(decl) == {
        "name": "get_weather",
        "description": "Current weather and forecast for a city.",
        "parametersJsonSchema": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris."},
                "unit": {
                    "type": "string",
                    "enum": ["C", "F"],
                    "description": "Temperature unit.",
                    "default": "C",
                },
                "days": {
                    "type": "integer",
                    "description": "Number of days to forecast, counting today.",
                    "default": 1,
                },
                "when": {
                    "anyOf": [{"type": "string", "format": "date"}, {"type": "null"}],
                    "default": None,
                },
            },
            "required": ["city"],
        },
    }  # no behavior: the model family's default applies
    validate_with_genai(decl)


def test_no_parameters_and_no_docstring() -> None:
    def ping() -> str:
        return "pong"

    decl = ToolSpec.from_function(ping).declaration()
    assert msgspec.to_builtins(decl) == {"name": "ping"}
    validate_with_genai(decl)


def test_context_and_var_args_are_hidden() -> None:
    def act(ctx: ToolContext, n: int, *rest: int, other: ToolContext | None = None) -> None:
        pass

    schema = ToolSpec.from_function(act).parameters_json_schema
    assert schema == {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
    }


def test_explicit_schema_override_and_description() -> None:
    override = {"type": "object", "properties": {"q": {"type": "string"}}}

    def search(q: Opaque) -> None:
        pass

    with pytest.raises(ConfigError, match="unsupported type"):
        ToolSpec.from_function(search)
    spec = ToolSpec.from_function(
        search, description="Search.", parameters_json_schema=override, behavior="NON_BLOCKING"
    )
    assert msgspec.to_builtins(spec.declaration()) == {
        "name": "search",
        "description": "Search.",
        "parametersJsonSchema": override,
        "behavior": "NON_BLOCKING",
    }
    assert spec.bind({"q": "raw"}) == ([], {"q": "raw"})


def test_behavior_and_scheduling_defaults() -> None:
    def f() -> None:
        pass

    unset = ToolSpec.from_function(f)
    assert unset.behavior is None and unset.scheduling is None
    assert unset.declaration().behavior is UNSET  # the model table fills in the default
    blocking = ToolSpec.from_function(f, behavior="BLOCKING")
    assert blocking.declaration().behavior == "BLOCKING" and blocking.scheduling is None
    nb = ToolSpec.from_function(f, behavior="NON_BLOCKING")
    assert nb.scheduling == "WHEN_IDLE"
    nb2 = ToolSpec.from_function(f, behavior="NON_BLOCKING", scheduling="INTERRUPT")
    assert nb2.scheduling == "INTERRUPT"
    assert nb2.declaration().behavior == "NON_BLOCKING"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "1bad"}, "invalid tool name"),
        ({"name": "has space"}, "invalid tool name"),
        ({"name": "x" * 129}, "invalid tool name"),
        ({"behavior": "SOMETIMES"}, "behavior"),
        ({"scheduling": "LATER"}, "scheduling"),
        ({"timeout": 0}, "timeout"),
        ({"parameters_json_schema": ["not", "an", "object"]}, "parameters_json_schema"),
    ],
)
def test_invalid_options(kwargs: dict[str, Any], match: str) -> None:
    def f() -> None:
        pass

    with pytest.raises(ConfigError, match=match):
        ToolSpec.from_function(f, **kwargs)


def test_names_allow_dots_colons_dashes() -> None:
    def f() -> None:
        pass

    assert ToolSpec.from_function(f, name="ns.sub:get-x_1").name == "ns.sub:get-x_1"


def test_classes_and_unresolvable_hints_are_rejected() -> None:
    with pytest.raises(ConfigError, match="not the class"):
        ToolSpec.from_function(Point)

    def f(x: int) -> None:
        pass

    f.__annotations__ = {"x": "DoesNotExist"}
    with pytest.raises(ConfigError, match="type hints"):
        ToolSpec.from_function(f)


def test_kinds_partials_and_callable_objects() -> None:
    async def agen(n: int) -> AsyncIterator[int]:
        yield n

    def sgen(n: int) -> Iterator[int]:
        yield n

    async def coro(n: int, m: str) -> int:
        return n

    class Counter:
        """Counts things."""

        async def __call__(self, step: int) -> int:
            """Add a step."""
            return step

    assert ToolSpec.from_function(agen).kind == "async_gen"
    assert ToolSpec.from_function(sgen).kind == "sync_gen"
    part = ToolSpec.from_function(functools.partial(coro, 1), name="coro1")
    assert part.kind == "async"
    assert part.parameters_json_schema == {
        "type": "object",
        "properties": {"m": {"type": "string"}},
        "required": ["m"],
    }
    obj = ToolSpec.from_function(Counter(), name="counter")
    assert obj.kind == "async"
    assert obj.description == "Add a step."
    assert obj.parameters_json_schema == {
        "type": "object",
        "properties": {"step": {"type": "integer"}},
        "required": ["step"],
    }


def test_tool_decorator_and_registry() -> None:
    @tool(name="lookup", behavior="NON_BLOCKING", scheduling="SILENT", timeout=3)
    def find(q: str) -> str:
        """Find something."""
        return q

    @tool
    def plain(n: int) -> int:
        return n

    assert find("x") == "x"  # the decorator returns the function unchanged
    reg = ToolRegistry(find)
    spec = reg.get("lookup")
    assert spec is not None
    assert (spec.behavior, spec.scheduling, spec.timeout) == ("NON_BLOCKING", "SILENT", 3)
    # explicit add() arguments win over the decorator's
    reg2 = ToolRegistry()
    spec2 = reg2.add(find, name="find2", scheduling="INTERRUPT")
    assert (spec2.name, spec2.behavior, spec2.scheduling) == ("find2", "NON_BLOCKING", "INTERRUPT")
    reg.add(plain)
    assert reg.names == ["lookup", "plain"]
    assert "plain" in reg and len(reg) == 2
    assert [s.name for s in reg] == ["lookup", "plain"]
    with pytest.raises(ConfigError, match="already registered"):
        reg.add(plain)

    @reg.tool
    def third() -> None:
        pass

    @reg.tool(behavior="NON_BLOCKING")
    def fourth() -> None:
        pass

    assert callable(third) and callable(fourth)
    assert reg.names == ["lookup", "plain", "third", "fourth"]
    assert reg.remove("third").name == "third"
    assert "third" not in reg
    assert "ToolRegistry" in repr(reg)


def test_registry_tools_and_builtins() -> None:
    reg = ToolRegistry(get_weather)
    assert reg.as_tool() == Tool(function_declarations=reg.declarations())
    tools = reg.tools(google_search(), code_execution(), url_context())
    assert msgspec.to_builtins(tools[1:]) == [
        {"googleSearch": {}},
        {"codeExecution": {}},
        {"urlContext": {}},
    ]
    assert tools[0].function_declarations == reg.declarations()
    assert ToolRegistry().tools(google_search()) == [google_search()]
    assert ToolRegistry().tools() == []


def test_all_declarations_validate_with_genai() -> None:
    async def book(b: Booking, route: Route, filters: Filters, shape: Shape) -> None:
        pass

    def stream(n: int) -> Iterator[int]:
        yield n

    reg = ToolRegistry(get_weather, book)
    reg.add(stream, behavior="NON_BLOCKING")
    for decl in reg.declarations():
        validate_with_genai(decl)
    tool_obj = gt.Tool.model_validate_json(msgspec.json.encode(reg.as_tool()))
    assert tool_obj.function_declarations is not None
    assert len(tool_obj.function_declarations) == 3


def test_bind_keeps_python_defaults() -> None:
    def f(a: int, b: int = 5) -> None:
        pass

    assert ToolSpec.from_function(f).bind({"a": 1}) == ([], {"a": 1})
    assert ToolSpec.from_function(f).bind({"a": 1, "b": "7"}) == ([], {"a": 1, "b": 7})


# -- argument binding -------------------------------------------------------------------


def test_bind_converts_to_annotated_types() -> None:
    def plan(route: Route, color: Color, level: Level, tags: set[str], b: Booking) -> None:
        pass

    spec = ToolSpec.from_function(plan)
    pos, kw = spec.bind(
        {
            "route": {"start": {"x": 1, "y": 2}, "stops": [{"x": 3}]},
            "color": "green",
            "level": 2,
            "tags": ["a", "a", "b"],
            "b": {"guestName": "Ann", "nights": "2"},  # lax: numeric strings convert
        }
    )
    assert pos == []
    assert kw == {
        "route": Route(Point(1.0, 2.0), [Point(3.0)]),
        "color": Color.GREEN,
        "level": Level.HIGH,
        "tags": {"a", "b"},
        "b": Booking(guest_name="Ann", nights=2),
    }


def test_bind_errors_are_descriptive() -> None:
    def f(a: int, b: Annotated[int, msgspec.Meta(le=3)] = 0) -> None:
        pass

    spec = ToolSpec.from_function(f)
    with pytest.raises(ToolError) as info:
        spec.bind({"b": 9, "zzz": 1})
    msg = info.value.message
    assert "missing required argument(s): a" in msg
    assert "argument 'b'" in msg and "<= 3" in msg
    assert "unexpected argument(s): zzz (accepted: a, b)" in msg
    assert info.value.hint is not None
    assert not info.value.retryable


def test_bind_positional_only_and_kwargs() -> None:
    def f(a: int, b: int = 5, /, *, c: str = "x", **extra: Any) -> None:
        pass

    spec = ToolSpec.from_function(f)
    assert spec.bind({"a": 1, "c": "y", "free": True}) == ([1, 5], {"c": "y", "free": True})
