"""Tool declarations (JSON Schema from type hints) and the ToolRunner dispatcher."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import functools
import math
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import msgspec
import pytest
from google.genai import types as gt

from gemini_live import events as ev
from gemini_live.codec import encode_client
from gemini_live.errors import ConfigError
from gemini_live.tools import (
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolResult,
    ToolRunner,
    ToolSpec,
    clear_tools,
    code_execution,
    google_search,
    run_tools,
    set_system_instruction,
    tool,
    update_tools,
    url_context,
)
from gemini_live.types import (
    UNSET,
    ClientMessage,
    Content,
    ContextUpdate,
    FunctionCall,
    FunctionDeclaration,
    FunctionResponse,
    Tool,
    ToolsUpdate,
)

TIMEOUT = 5.0


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


def _fn_with(annotation: Any) -> Callable[..., Any]:
    def f(x: Any) -> None:
        pass

    f.__annotations__ = {"x": annotation, "return": None}
    return f


def _x_schema(annotation: Any) -> Any:
    spec = ToolSpec.from_function(_fn_with(annotation), name="f")
    assert spec.parameters_json_schema is not None
    assert spec.parameters_json_schema["required"] == ["x"]
    return spec.parameters_json_schema["properties"]["x"]


def _validate_with_genai(decl: FunctionDeclaration) -> None:
    """The declaration is a valid google-genai FunctionDeclaration, schema included."""
    parsed = gt.FunctionDeclaration.model_validate_json(msgspec.json.encode(decl))
    assert parsed.name == decl.name
    assert parsed.behavior is not None and parsed.behavior.value == decl.behavior
    if parsed.parameters_json_schema is not None:
        schema = gt.JSONSchema.model_validate(parsed.parameters_json_schema)
        gt.Schema.from_json_schema(
            json_schema=schema, api_option="GEMINI_API", raise_error_on_unsupported_field=True
        )


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
    assert _x_schema(annotation) == expected
    _validate_with_genai(ToolSpec.from_function(_fn_with(annotation), name="f").declaration())


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
    _validate_with_genai(ToolSpec.from_function(plant).declaration())


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
        "behavior": "BLOCKING",
    }
    _validate_with_genai(decl)


def test_no_parameters_and_no_docstring() -> None:
    def ping() -> str:
        return "pong"

    decl = ToolSpec.from_function(ping).declaration()
    assert msgspec.to_builtins(decl) == {"name": "ping", "behavior": "BLOCKING"}
    _validate_with_genai(decl)


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

    blocking = ToolSpec.from_function(f)
    assert blocking.behavior == "BLOCKING"
    assert blocking.scheduling is None
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
        _validate_with_genai(decl)
    tool_obj = gt.Tool.model_validate_json(msgspec.json.encode(reg.as_tool()))
    assert tool_obj.function_declarations is not None
    assert len(tool_obj.function_declarations) == 3


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
    assert _x_schema(annotation) == expected


@pytest.mark.parametrize(
    "annotation", [dict[tuple[int, int], str], Flat, Opaque, bytes | Opaque, Ratio]
)
def test_unsupported_annotations(annotation: Any) -> None:
    with pytest.raises(ConfigError, match="unsupported type"):
        ToolSpec.from_function(_fn_with(annotation), name="f")


def test_defaults_that_are_not_json_are_left_out() -> None:
    sentinel = object()

    def f(x: Any = sentinel) -> None:
        pass

    assert ToolSpec.from_function(f).parameters_json_schema == {
        "type": "object",
        "properties": {"x": {}},
    }


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


# -- the dispatcher -----------------------------------------------------------------------


class FakeSession:
    """Just enough of a Session: an event stream fed by a queue, recorded tool responses."""

    def __init__(self, *, fail_sends: int = 0) -> None:
        self.queue: asyncio.Queue[ev.Event | None] = asyncio.Queue()
        self.sent: list[FunctionResponse] = []
        self.context_updates: list[dict[str, Any]] = []
        self.fail_sends = fail_sends
        self.subscribers = 0
        self._changed = asyncio.Condition()

    def events(self) -> AsyncIterator[ev.Event]:
        self.subscribers += 1
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ev.Event]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    async def send_tool_response(
        self, responses: FunctionResponse | Iterable[FunctionResponse]
    ) -> None:
        if self.fail_sends:
            self.fail_sends -= 1
            raise RuntimeError("socket is gone")
        items = [responses] if isinstance(responses, FunctionResponse) else list(responses)
        async with self._changed:
            self.sent.extend(items)
            self._changed.notify_all()

    async def send_context_update(
        self,
        *,
        system_instruction: Content | str | None = None,
        tools: Sequence[Tool] | None = None,
    ) -> None:
        self.context_updates.append({"system_instruction": system_instruction, "tools": tools})

    def push(self, event: ev.Event) -> None:
        self.queue.put_nowait(event)

    def call(self, *calls: FunctionCall) -> None:
        self.push(ev.ToolCall(tuple(calls)))

    def end(self) -> None:
        self.queue.put_nowait(None)

    async def wait_sent(self, n: int) -> list[FunctionResponse]:
        async with asyncio.timeout(TIMEOUT):
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.sent) >= n)
        return self.sent

    def by_id(self, call_id: str) -> list[FunctionResponse]:
        return [r for r in self.sent if r.id == call_id]


def fc(call_id: str, name: str, **args: Any) -> FunctionCall:
    return FunctionCall(id=call_id, name=name, args=args)


def body(resp: FunctionResponse) -> Any:
    return msgspec.to_builtins(resp)


async def bounded(aw: Awaitable[Any]) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return await aw


async def drain(runner: ToolRunner) -> None:
    """Wait until no call is in flight."""
    await bounded(runner.wait_idle())
    assert runner.pending == 0


def is_running(runner: ToolRunner) -> bool:
    return runner.running  # a call, so that mypy does not narrow the property


async def test_fifty_parallel_calls_each_answered_once() -> None:
    reg = ToolRegistry()
    gate = asyncio.Event()
    running = 0
    all_running = asyncio.Event()

    @reg.tool
    async def echo(i: int) -> int:
        nonlocal running
        running += 1
        if running == 50:
            all_running.set()
        await gate.wait()
        return i * 2

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(*(fc(f"id{i}", "echo", i=i) for i in range(50)))
        await bounded(all_running.wait())  # all 50 in flight at once
        gate.set()
        sent = await session.wait_sent(50)
        await drain(runner)
    assert sorted(r.id for r in sent) == sorted(f"id{i}" for i in range(50))  # type: ignore[type-var]
    assert len({r.id for r in sent}) == 50
    for r in sent:
        assert isinstance(r.id, str)
        assert r.name == "echo"
        assert r.response == {"output": int(r.id[2:]) * 2}
        assert body(r) == {"name": "echo", "response": r.response, "id": r.id}
    assert runner.stats.started == 50
    assert runner.stats.answered == 50
    assert runner.stats.failed == 0
    assert len(session.sent) == 50
    assert not runner.running


async def test_blocking_answer_not_held_behind_slow_sibling() -> None:
    reg = ToolRegistry()
    release = asyncio.Event()

    @reg.tool
    async def slow() -> str:
        await release.wait()
        return "slow"

    @reg.tool
    def fast() -> str:
        return "fast"

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("s", "slow"), fc("f", "fast"))
        sent = await session.wait_sent(1)
        assert [r.id for r in sent] == ["f"]
        assert runner.pending >= 1
        release.set()
        sent = await session.wait_sent(2)
        assert [r.id for r in sent] == ["f", "s"]


async def test_cancellation_cancels_task_and_sends_nothing() -> None:
    reg = ToolRegistry()
    started = asyncio.Event()
    saw_cancel = asyncio.Event()

    @reg.tool
    async def long_job() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.set()
            raise
        return "never"

    @reg.tool
    def quick() -> str:
        return "ok"

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("c1", "long_job"))
        await bounded(started.wait())
        session.push(ev.ToolCallCancellation(("c1", "not-running")))
        await bounded(saw_cancel.wait())
        session.call(fc("c2", "quick"))
        await session.wait_sent(1)
        await drain(runner)
    assert [r.id for r in session.sent] == ["c2"]
    assert session.by_id("c1") == []
    assert runner.stats.cancelled == 1
    assert runner.stats.answered == 1


async def test_cancelled_sync_tool_result_is_discarded() -> None:
    reg = ToolRegistry()
    entered = threading.Event()
    release = threading.Event()
    finished = threading.Event()
    seen_flag: list[bool] = []

    @reg.tool
    def blocking_io(ctx: ToolContext) -> str:
        entered.set()
        release.wait(TIMEOUT)
        seen_flag.append(ctx.cancelled.is_set())
        finished.set()
        return "late"

    @reg.tool
    def quick() -> str:
        return "ok"

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("t1", "blocking_io"))
        await bounded(asyncio.to_thread(entered.wait, TIMEOUT))
        session.push(ev.ToolCallCancellation(("t1",)))
        await drain(runner)  # the job ends at once; the thread keeps running
        release.set()
        await bounded(asyncio.to_thread(finished.wait, TIMEOUT))
        session.call(fc("t2", "quick"))
        await session.wait_sent(1)
        await drain(runner)
    assert [r.id for r in session.sent] == ["t2"]
    assert seen_flag == [True]  # the tool could see it was cancelled
    assert runner.stats.cancelled == 1


async def test_timeout_becomes_error_response() -> None:
    reg = ToolRegistry()
    saw_cancel = asyncio.Event()

    @reg.tool(timeout=0.05)
    async def hang() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("h", "hang"))
        (resp,) = await session.wait_sent(1)
        assert saw_cancel.is_set()
    assert resp.response == {
        "error": {
            "message": "hang did not finish within 0.05 s",
            "type": "TimeoutError",
            "retryable": True,
        }
    }
    assert runner.stats.timed_out == 1
    assert runner.stats.failed == 1
    assert runner.stats.answered == 1


async def test_runner_default_timeout_and_infinite_timeout() -> None:
    reg = ToolRegistry()
    release = asyncio.Event()

    @reg.tool
    async def short() -> None:
        await asyncio.sleep(3600)

    @reg.tool(timeout=math.inf)
    async def unlimited() -> str:
        await release.wait()
        return "done"

    session = FakeSession()
    async with run_tools(session, reg, default_timeout=0.05) as runner:
        session.call(fc("a", "short"), fc("b", "unlimited"))
        (first,) = await session.wait_sent(1)
        assert first.id == "a"
        assert first.response["error"]["type"] == "TimeoutError"
        assert runner.pending >= 1  # "unlimited" outlives the default timeout
        release.set()
        sent = await session.wait_sent(2)
    assert sent[1].response == {"output": "done"}


async def test_exceptions_become_error_envelopes() -> None:
    reg = ToolRegistry()

    @reg.tool
    async def broken(city: str) -> None:
        raise ValueError(f"no such city: {city}")

    @reg.tool
    def flaky() -> None:
        raise ConnectionResetError("peer reset")

    @reg.tool
    def empty_message() -> None:
        raise KeyError

    @reg.tool
    def leaky() -> None:
        raise RuntimeError("GET https://x/?key=AIzaSyA1234567890abcdefghijkl failed")

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(
            fc("1", "broken", city="Atlantis"),
            fc("2", "flaky"),
            fc("3", "empty_message"),
            fc("4", "leaky"),
        )
        await session.wait_sent(4)
    errors = {r.id: r.response["error"] for r in session.sent}
    assert errors["1"] == {
        "message": "no such city: Atlantis",
        "type": "ValueError",
        "retryable": False,
    }
    assert errors["2"] == {
        "message": "peer reset",
        "type": "ConnectionResetError",
        "retryable": True,
    }
    assert errors["3"] == {"message": "KeyError", "type": "KeyError", "retryable": False}
    assert "AIza" not in errors["4"]["message"]
    assert runner.stats.failed == 4


async def test_own_timeout_error_is_not_a_runner_timeout() -> None:
    reg = ToolRegistry()

    @reg.tool
    async def fetch() -> None:
        raise TimeoutError("upstream took too long")

    @reg.tool
    def lazy() -> Awaitable[int]:
        return asyncio.sleep(0, result=5)  # a sync function returning an awaitable

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("f", "fetch"), fc("l", "lazy"))
        await session.wait_sent(2)
    r = {x.id: x.response for x in session.sent}
    assert r["f"] == {
        "error": {"message": "upstream took too long", "type": "TimeoutError", "retryable": True}
    }
    assert r["l"] == {"output": 5}
    assert runner.stats.timed_out == 0


async def test_tool_error_controls_envelope() -> None:
    reg = ToolRegistry()

    class QuotaError(ToolError):
        pass

    @reg.tool
    async def book() -> None:
        raise ToolError("room taken", retryable=True, hint="offer another date")

    @reg.tool
    async def spend() -> None:
        raise QuotaError("budget exhausted")

    session = FakeSession()
    async with run_tools(session, reg):
        session.call(fc("b", "book"), fc("s", "spend"))
        await session.wait_sent(2)
    errors = {r.id: r.response for r in session.sent}
    assert errors["b"] == {
        "error": {
            "message": "room taken",
            "type": "ToolError",
            "retryable": True,
            "hint": "offer another date",
        }
    }
    assert errors["s"] == {
        "error": {"message": "budget exhausted", "type": "QuotaError", "retryable": False}
    }


async def test_unknown_tool_and_invalid_arguments() -> None:
    reg = ToolRegistry()

    @reg.tool
    def add(a: int, b: int) -> int:
        return a + b

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("u", "nope"), fc("v", "add", a="x", b=1), fc("w", "add", a=1, b=2))
        await session.wait_sent(3)
        assert runner.running  # nothing crashed
    resp = {r.id: r for r in session.sent}
    assert resp["u"].name == "nope"
    assert resp["u"].response == {
        "error": {
            "message": "unknown function 'nope'",
            "type": "UnknownFunction",
            "retryable": False,
            "hint": "available functions: add",
        }
    }
    err = resp["v"].response["error"]
    assert err["type"] == "ToolArgumentError"
    assert "argument 'a'" in err["message"]
    assert err["retryable"] is False
    assert "hint" in err
    assert resp["w"].response == {"output": 3}
    assert (runner.stats.unknown, runner.stats.invalid_args, runner.stats.failed) == (1, 1, 2)


async def test_sync_tools_run_in_worker_threads() -> None:
    reg = ToolRegistry()
    threads: list[threading.Thread] = []

    @reg.tool
    def where() -> str:
        threads.append(threading.current_thread())
        return "here"

    session = FakeSession()
    async with run_tools(session, reg, max_workers=2):
        session.call(fc("1", "where"), fc("2", "where"))
        await session.wait_sent(2)
    assert len(threads) == 2
    assert all(t is not threading.main_thread() for t in threads)
    assert all(t.name.startswith("gemini-live-tool") for t in threads)


async def test_results_are_converted() -> None:
    reg = ToolRegistry()

    @reg.tool
    def point() -> Point:
        return Point(1.0, 2.0)

    @reg.tool
    def verbatim() -> dict[str, Any]:
        return {"tempC": 18, "tags": {"b"}}

    @reg.tool
    def misc() -> tuple[Color, Level, int]:
        return (Color.RED, Level.HIGH, 3)

    @reg.tool
    def struct() -> Booking:
        return Booking(guest_name="Ann", nights=2)

    @reg.tool
    def nothing() -> None:
        return None

    @reg.tool
    def opaque() -> object:
        return object()

    @reg.tool(behavior="NON_BLOCKING")
    def urgent() -> ToolResult:
        return ToolResult("now!", scheduling="INTERRUPT", parts=[{"text": "x"}])

    session = FakeSession()
    names = ["point", "verbatim", "misc", "struct", "nothing", "opaque", "urgent"]
    async with run_tools(session, reg):
        session.call(*(fc(n, n) for n in names))
        await session.wait_sent(len(names))
    r = {x.id: x for x in session.sent}
    assert r["point"].response == {"output": {"x": 1.0, "y": 2.0}}
    assert r["verbatim"].response == {"tempC": 18, "tags": ["b"]}
    assert r["misc"].response == {"output": ("red", 2, 3)}
    assert r["struct"].response == {"output": {"guestName": "Ann", "nights": 2, "vip": False}}
    assert r["nothing"].response == {"output": None}
    assert r["opaque"].response["error"]["type"] == "TypeError"
    assert "not JSON-serialisable" in r["opaque"].response["error"]["message"]
    assert body(r["urgent"]) == {
        "name": "urgent",
        "response": {"output": "now!"},
        "id": "urgent",
        "scheduling": "INTERRUPT",
        "parts": [{"text": "x"}],
    }
    # every response encodes as a valid client frame
    for resp in session.sent:
        encode_client(ClientMessage(tool_response=gt_tool_response(resp)))


def gt_tool_response(resp: FunctionResponse) -> Any:
    from gemini_live.types import ToolResponse

    return ToolResponse(function_responses=[resp])


async def test_scheduling_is_explicit_for_non_blocking_only() -> None:
    reg = ToolRegistry()

    @reg.tool(behavior="NON_BLOCKING")
    async def background() -> str:
        return "a"

    @reg.tool(behavior="NON_BLOCKING", scheduling="INTERRUPT")
    async def alarm() -> str:
        raise ValueError("fire")

    @reg.tool
    async def blocking() -> str:
        return "c"

    session = FakeSession()
    async with run_tools(session, reg):
        session.call(fc("1", "background"), fc("2", "alarm"), fc("3", "blocking"))
        await session.wait_sent(3)
    r = {x.id: x for x in session.sent}
    assert r["1"].scheduling == "WHEN_IDLE"
    assert r["2"].scheduling == "INTERRUPT"
    assert "error" in r["2"].response
    assert "scheduling" not in body(r["3"])
    assert all("willContinue" not in body(x) for x in session.sent)


async def test_non_blocking_async_generator_streams_partials() -> None:
    reg = ToolRegistry()

    @reg.tool(behavior="NON_BLOCKING")
    async def progress(n: int) -> AsyncIterator[dict[str, int]]:
        for i in range(n):
            yield {"step": i}

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("g", "progress", n=3))
        sent = await session.wait_sent(4)
        await drain(runner)
    assert [body(r) for r in sent] == [
        *(
            {
                "name": "progress",
                "response": {"step": i},
                "id": "g",
                "scheduling": "WHEN_IDLE",
                "willContinue": True,
            }
            for i in range(3)
        ),
        {
            "name": "progress",
            "response": {},
            "id": "g",
            "scheduling": "SILENT",
            "willContinue": False,
        },
    ]
    assert runner.stats.partials == 3
    assert runner.stats.answered == 1


async def test_non_blocking_sync_generator_and_empty_generator() -> None:
    reg = ToolRegistry()
    threads: list[threading.Thread] = []

    @reg.tool(behavior="NON_BLOCKING", scheduling="INTERRUPT")
    def count() -> Iterator[int]:
        threads.append(threading.current_thread())
        yield 1
        yield 2

    @reg.tool(behavior="NON_BLOCKING")
    async def empty() -> AsyncIterator[int]:
        for item in list[int]():
            yield item

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("e", "empty"))
        await session.wait_sent(1)
        session.call(fc("c", "count"))
        await session.wait_sent(4)
        await drain(runner)
    assert body(session.sent[0]) == {
        "name": "empty",
        "response": {},
        "id": "e",
        "scheduling": "WHEN_IDLE",
        "willContinue": False,
    }
    c = [(x.response, x.scheduling, x.will_continue) for x in session.sent[1:]]
    assert c == [
        ({"output": 1}, "INTERRUPT", True),
        ({"output": 2}, "INTERRUPT", True),
        ({}, "SILENT", False),
    ]
    assert threads and threads[0] is not threading.main_thread()


async def test_blocking_generator_sends_only_last_value() -> None:
    reg = ToolRegistry()

    @reg.tool
    async def search() -> AsyncIterator[str]:
        yield "partial"
        yield "final"

    @reg.tool
    async def nothing() -> AsyncIterator[str]:
        for item in list[str]():
            yield item

    session = FakeSession()
    async with run_tools(session, reg):
        session.call(fc("s", "search"), fc("n", "nothing"))
        await session.wait_sent(2)
    r = {x.id: body(x) for x in session.sent}
    assert r["s"] == {"name": "search", "response": {"output": "final"}, "id": "s"}
    assert r["n"] == {"name": "nothing", "response": {}, "id": "n"}


async def test_vertex_generators_send_no_partials() -> None:
    reg = ToolRegistry()

    @reg.tool(behavior="NON_BLOCKING")
    async def steps() -> AsyncIterator[int]:
        yield 1
        yield 2

    session = FakeSession()
    async with run_tools(session, reg, partial_responses=False):
        session.call(fc("v", "steps"))
        (resp,) = await session.wait_sent(1)
    assert body(resp) == {
        "name": "steps",
        "response": {"output": 2},
        "id": "v",
        "scheduling": "WHEN_IDLE",
    }


async def test_generator_failure_after_partials_ends_the_stream() -> None:
    reg = ToolRegistry()

    @reg.tool(behavior="NON_BLOCKING")
    async def stream() -> AsyncIterator[int]:
        yield 1
        raise ToolError("sensor offline", retryable=True)

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("x", "stream"))
        sent = await session.wait_sent(2)
    assert sent[0].will_continue is True
    assert sent[1].will_continue is False
    assert sent[1].response == {
        "error": {"message": "sensor offline", "type": "ToolError", "retryable": True}
    }
    assert runner.stats.failed == 1


async def test_generator_cancelled_mid_stream() -> None:
    reg = ToolRegistry()
    saw_cancel = asyncio.Event()
    closed = asyncio.Event()

    @reg.tool(behavior="NON_BLOCKING")
    async def ticker() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.Event().wait()
            yield 2  # pragma: no cover
        except asyncio.CancelledError:
            saw_cancel.set()
            raise
        finally:
            closed.set()

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("t", "ticker"))
        await session.wait_sent(1)
        session.push(ev.ToolCallCancellation(("t",)))
        await bounded(saw_cancel.wait())
        await bounded(closed.wait())
        await drain(runner)
    assert len(session.sent) == 1
    assert session.sent[0].will_continue is True
    assert runner.stats.cancelled == 1


class GatedSession(FakeSession):
    """Sends block until ``gate`` is set (a slow socket)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.sending = asyncio.Event()

    async def send_tool_response(
        self, responses: FunctionResponse | Iterable[FunctionResponse]
    ) -> None:
        self.sending.set()
        await self.gate.wait()
        await super().send_tool_response(responses)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_cancellation_while_a_partial_is_being_sent(kind: str) -> None:
    reg = ToolRegistry()

    async def agen() -> AsyncIterator[int]:
        yield 1
        yield 2

    def sgen() -> Iterator[int]:
        yield 1
        yield 2

    @reg.tool
    def marker() -> None:
        pass

    reg.add(agen if kind == "async" else sgen, name="stream", behavior="NON_BLOCKING")
    marker_seen = asyncio.Event()

    def on_call(call: FunctionCall) -> None:
        if call.name == "marker":
            marker_seen.set()

    session = GatedSession()
    async with run_tools(session, reg, on_call=on_call) as runner:
        session.call(fc("s", "stream"))
        await bounded(session.sending.wait())  # the first partial is being written
        session.push(ev.ToolCallCancellation(("s",)))
        session.call(fc("m", "marker"))
        await bounded(marker_seen.wait())  # events are handled in order: cancel is done
        session.gate.set()
        await drain(runner)
    # the partial already on its way is not interrupted; nothing follows it
    stream = [(r.response, r.will_continue) for r in session.by_id("s")]
    assert stream == [({"output": 1}, True)]
    assert runner.stats.partials == 1
    assert runner.stats.cancelled == 1


async def test_hooks_are_called_and_failures_contained() -> None:
    reg = ToolRegistry()

    @reg.tool
    async def f(x: int) -> int:
        return x

    calls: list[FunctionCall] = []
    results: list[tuple[FunctionCall, FunctionResponse, float]] = []

    def on_call(call: FunctionCall) -> None:
        calls.append(call)
        if call.id == "boom":
            raise RuntimeError("hook bug")

    async def on_result(call: FunctionCall, resp: FunctionResponse, elapsed: float) -> None:
        results.append((call, resp, elapsed))

    session = FakeSession()
    async with run_tools(session, reg, on_call=on_call, on_result=on_result) as runner:
        session.call(fc("a", "f", x=1), fc("boom", "f", x=2))
        await session.wait_sent(2)
        await drain(runner)
    assert [c.id for c in calls] == ["a", "boom"]
    assert sorted(r.id for _, r, _ in results) == ["a", "boom"]  # type: ignore[type-var]
    for call, resp, elapsed in results:
        assert call.id == resp.id
        assert elapsed >= 0
    assert runner.stats.hook_errors == 1
    assert runner.stats.answered == 2


async def test_send_failure_is_contained() -> None:
    reg = ToolRegistry()

    @reg.tool
    async def f() -> str:
        return "x"

    session = FakeSession(fail_sends=1)
    async with run_tools(session, reg) as runner:
        session.call(fc("1", "f"))
        await drain(runner)
        session.call(fc("2", "f"))
        await session.wait_sent(1)
    assert [r.id for r in session.sent] == ["2"]
    assert runner.stats.send_errors == 1
    assert runner.stats.answered == 1


async def test_session_end_cancels_outstanding_work() -> None:
    reg = ToolRegistry()
    started = asyncio.Event()
    saw_cancel = asyncio.Event()

    @reg.tool
    async def pending() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    session = FakeSession()
    runner = run_tools(session, reg)
    session.call(fc("p", "pending"))
    await bounded(started.wait())
    session.end()
    await bounded(runner.wait())
    assert saw_cancel.is_set()
    assert not runner.running
    assert session.sent == []
    assert runner.stats.cancelled == 1
    await runner.aclose()  # idempotent after the session ended


async def test_aclose_answers_abandoned_calls() -> None:
    reg = ToolRegistry()
    started = asyncio.Event()
    saw_cancel = asyncio.Event()

    @reg.tool
    async def lengthy() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("l", "lengthy"))
        await bounded(started.wait())
    # leaving the block while the session is open: the call must not wedge the model
    assert saw_cancel.is_set()
    assert [body(r) for r in session.sent] == [
        {
            "name": "lengthy",
            "response": {
                "error": {
                    "message": "the client stopped handling tool calls before this call finished",
                    "type": "Cancelled",
                    "retryable": True,
                }
            },
            "id": "l",
        }
    ]
    assert (runner.stats.answered, runner.stats.failed, runner.stats.cancelled) == (1, 1, 0)


async def test_aclose_without_answering() -> None:
    reg = ToolRegistry()
    started = asyncio.Event()

    @reg.tool
    async def lengthy() -> None:
        started.set()
        await asyncio.Event().wait()

    session = FakeSession()
    runner = run_tools(session, reg)
    session.call(fc("l", "lengthy"))
    await bounded(started.wait())
    await bounded(runner.aclose(answer_pending=False))
    assert session.sent == []
    assert runner.stats.cancelled == 1


async def test_fresh_session_cancels_pending_calls() -> None:
    reg = ToolRegistry()
    started = asyncio.Event()
    saw_cancel = asyncio.Event()

    @reg.tool
    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("w", "work"))
        await bounded(started.wait())
        session.push(ev.Resumed(state_restored=True))  # resumed: keep going
        session.push(ev.Lagged(3))
        session.push(ev.Resumed(state_restored=False))  # fresh session: the call is void
        await bounded(saw_cancel.wait())
        await drain(runner)
    assert session.sent == []
    assert runner.stats.cancelled == 1


async def test_tool_raising_cancelled_error_itself_is_still_answered() -> None:
    reg = ToolRegistry()

    @reg.tool
    async def weird() -> None:
        raise asyncio.CancelledError

    session = FakeSession()
    async with run_tools(session, reg):
        session.call(fc("w", "weird"))
        (resp,) = await session.wait_sent(1)
    assert resp.response["error"]["type"] == "CancelledError"


async def test_duplicate_call_id_runs_once() -> None:
    reg = ToolRegistry()
    release = asyncio.Event()
    runs = 0

    @reg.tool
    async def once() -> int:
        nonlocal runs
        runs += 1
        await release.wait()
        return runs

    session = FakeSession()
    last_started = asyncio.Event()

    def on_call(call: FunctionCall) -> None:
        if call.id is UNSET:
            last_started.set()

    async with run_tools(session, reg, on_call=on_call) as runner:
        session.call(fc("d", "once"))
        session.call(fc("d", "once"))
        session.call(FunctionCall(name="once"))  # no id (Vertex): still answered
        await bounded(last_started.wait())  # events are handled in order
        assert runner.stats.started == 2
        release.set()
        await session.wait_sent(2)
        await drain(runner)
    assert runs == 2
    assert sorted(str(r.id) for r in session.sent) == ["UNSET", "d"]
    assert runner.stats.started == 2


async def test_context_injection_and_blocking_pending() -> None:
    reg = ToolRegistry()
    seen: list[ToolContext] = []
    release = asyncio.Event()
    bg_started = asyncio.Event()
    ctx_started = asyncio.Event()

    @reg.tool
    async def inspect_ctx(ctx: ToolContext, n: int) -> int:
        seen.append(ctx)
        ctx_started.set()
        await release.wait()
        return n

    @reg.tool(behavior="NON_BLOCKING")
    async def bg(ctx: ToolContext | None = None) -> None:
        bg_started.set()
        await release.wait()

    def blocking_pending(runner: ToolRunner) -> bool:
        return runner.blocking_pending

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        assert not blocking_pending(runner)
        session.call(fc("b", "bg"))
        await bounded(bg_started.wait())
        assert not blocking_pending(runner)
        session.call(fc("i", "inspect_ctx", n=4))
        await bounded(ctx_started.wait())
        assert blocking_pending(runner)
        release.set()
        await session.wait_sent(2)
    assert seen[0].id == "i" and seen[0].name == "inspect_ctx" and seen[0].args == {"n": 4}
    assert not seen[0].cancelled.is_set()
    assert "ToolRunner" in repr(runner)


async def test_lifecycle() -> None:
    reg = ToolRegistry()
    session = FakeSession()
    runner = ToolRunner(session, reg)
    assert not is_running(runner)
    await bounded(runner.wait_idle())
    assert runner.start() is runner
    assert runner.start() is runner  # idempotent: one subscription
    assert session.subscribers == 1
    assert is_running(runner)
    await bounded(runner.aclose())
    await bounded(runner.aclose())
    assert not is_running(runner)
    with pytest.raises(ConfigError):
        runner.start()
    with pytest.raises(ConfigError):
        ToolRunner(session, reg, max_workers=0)
    with pytest.raises(ConfigError):
        ToolRunner(session, reg, default_timeout=0)


def test_partial_responses_default_follows_api() -> None:
    class VertexSession(FakeSession):
        class protocol:  # mimics Session.protocol.api
            api = "vertex"

    reg = ToolRegistry()
    assert ToolRunner(FakeSession(), reg).partial_responses is True
    assert ToolRunner(VertexSession(), reg).partial_responses is False


# -- context updates ------------------------------------------------------------------------


async def test_context_update_helpers() -> None:
    reg = ToolRegistry(get_weather)
    session = FakeSession()
    await update_tools(session, reg)
    await update_tools(session, [google_search()])
    await clear_tools(session)
    await set_system_instruction(session, "Be brief.")
    assert session.context_updates == [
        {"system_instruction": None, "tools": [reg.as_tool()]},
        {"system_instruction": None, "tools": [google_search()]},
        {"system_instruction": None, "tools": []},
        {"system_instruction": "Be brief.", "tools": None},
    ]


def test_clear_tools_wire_shape() -> None:
    frame = encode_client(ClientMessage(context_update=ContextUpdate(tools=ToolsUpdate(tools=[]))))
    assert msgspec.json.decode(frame) == {"contextUpdate": {"tools": {"tools": []}}}
