"""End to end: a real Session + ToolRunner against FakeLiveServer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest

import gemini_live as gl
from gemini_live import errors
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer, ToolScript
from gemini_live.tools import BehaviorLike, ToolRegistry, ToolRunner, run_tools
from gemini_live.transport.base import Backend
from gemini_live.types import (
    UNSET,
    AudioTranscriptionConfig,
    ClientMessage,
    FunctionResponse,
    GenerationConfig,
    Setup,
)

MODEL = "models/gemini-3.8-live"
TIMEOUT = 5.0


def _socket_backends() -> list[str]:
    """The real-socket backend, once the transport package provides it."""
    try:
        from gemini_live.transport import get_backend

        get_backend("websockets")
    except (ImportError, gl.ConfigError):
        return []
    return ["websockets"]


@pytest.fixture(params=["memory", *_socket_backends()])
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def _config(
    server: FakeLiveServer, backend: str, registry: ToolRegistry, *, model: str = MODEL
) -> gl.SessionConfig:
    chosen: str | Backend = server.memory_backend() if backend == "memory" else backend
    return gl.SessionConfig(
        setup=Setup(
            model=model,
            generation_config=GenerationConfig(response_modalities=["AUDIO"]),
            output_audio_transcription=AudioTranscriptionConfig(),
            tools=registry.tools(),
        ),
        transport=gl.TransportConfig(
            endpoint=gl.Endpoint.custom(server.url), backend=chosen, open_timeout=5.0
        ),
        reconnect=gl.ReconnectPolicy(base_backoff=0.01, max_backoff=0.05),
        setup_timeout=5.0,
    )


@contextlib.asynccontextmanager
async def _live(
    backend_name: str, registry: ToolRegistry, **server_options: Any
) -> AsyncIterator[tuple[FakeLiveServer, gl.Session]]:
    """A FakeLiveServer and a Session connected to it (both closed on exit)."""
    async with (
        FakeLiveServer(**server_options) as server,
        await gl.connect(_config(server, backend_name, registry)) as session,
    ):
        yield server, session


async def _collect(
    events: AsyncIterator[ev.Event], stop: Callable[[ev.Event], bool]
) -> list[ev.Event]:
    out: list[ev.Event] = []
    async with asyncio.timeout(TIMEOUT):
        async for event in events:
            out.append(event)
            if stop(event):
                return out
    raise AssertionError(f"event stream ended before the expected event: {out}")


def _transcript(events: list[ev.Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, ev.OutputTranscription))


def _tool_responses(messages: list[ClientMessage]) -> list[FunctionResponse]:
    out: list[FunctionResponse] = []
    for m in messages:
        if m.tool_response is not UNSET:
            out.extend(m.tool_response.function_responses)
    return out


def _weather_registry(behavior: BehaviorLike | None = None) -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool(behavior=behavior)
    async def get_weather(city: str) -> dict[str, Any]:
        """Current weather for a city."""
        return {"city": city, "tempC": 18}

    return reg


async def test_blocking_round_trip(backend_name: str) -> None:
    reg = _weather_registry("BLOCKING")  # explicit: wins over 3.8's NON_BLOCKING default
    script = ToolScript(name="get_weather", args={"city": "Paris"})
    async with _live(
        backend_name, reg, validate_frames=True, tool_triggers={"weather": script}
    ) as (server, session):
        events = session.events()
        async with run_tools(session, reg) as runner:
            await session.send_text("what is the weather?")
            got = await _collect(
                events, lambda e: isinstance(e, ev.TurnComplete) and runner.stats.answered > 0
            )
        assert runner.stats.answered == 1
        setup = server.connections[0].setup
        assert setup is not None and setup.tools is not UNSET
        assert msgspec.to_builtins(setup.tools) == [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Current weather for a city.",
                        "parametersJsonSchema": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                        "behavior": "BLOCKING",
                    }
                ]
            }
        ]
    calls = [e for e in got if isinstance(e, ev.ToolCall)]
    assert len(calls) == 1
    (resp,) = _tool_responses(server.received[0])
    assert resp.id == calls[0].calls[0].id
    assert resp.response == {"city": "Paris", "tempC": 18}  # a dict result is the response
    assert _transcript(got) == 'get_weather returned {"city":"Paris","tempC":18}'


async def test_parallel_calls_answered_once_each(backend_name: str) -> None:
    reg = _weather_registry()
    script = ToolScript(name="get_weather", args={"city": "Oslo"}, parallel=5)
    async with _live(
        backend_name, reg, validate_frames=True, tool_triggers={"weather": script}
    ) as (server, session):
        events = session.events()
        async with run_tools(session, reg) as runner:
            await session.send_text("weather please")
            got = await _collect(
                events, lambda e: isinstance(e, ev.TurnComplete) and runner.stats.answered == 5
            )
    (call,) = [e for e in got if isinstance(e, ev.ToolCall)]
    responses = _tool_responses(server.received[0])
    assert sorted(str(r.id) for r in responses) == sorted(str(c.id) for c in call.calls)
    assert len(responses) == 5
    assert _transcript(got).count("get_weather returned") == 5


async def test_cancelled_call_is_not_answered(backend_name: str) -> None:
    reg = ToolRegistry()
    started = asyncio.Event()
    saw_cancel = asyncio.Event()

    @reg.tool
    async def slow_lookup() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.set()
            raise
        return "never"

    script = ToolScript(name="slow_lookup", cancel_after=True)
    async with _live(backend_name, reg, validate_frames=True, tool_triggers={"lookup": script}) as (
        server,
        session,
    ):
        events = session.events()
        async with run_tools(session, reg) as runner:
            await session.send_text("lookup something")
            got = await _collect(events, lambda e: isinstance(e, ev.TurnComplete))
            assert any(isinstance(e, ev.ToolCallCancellation) for e in got)
            async with asyncio.timeout(TIMEOUT):
                await runner.wait_idle()
            # The cancellation may arrive before the task first runs: then the tool
            # never starts. If it did start, it saw the cancellation.
            assert saw_cancel.is_set() or not started.is_set()
            # the session still works afterwards
            await session.send_text("hello")
            got = await _collect(events, lambda e: isinstance(e, ev.TurnComplete))
            assert _transcript(got) == "You said: hello"
        assert runner.stats.cancelled == 1
    assert _tool_responses(server.received[0]) == []


async def test_non_blocking_generator_streams(backend_name: str) -> None:
    reg = ToolRegistry()

    @reg.tool(behavior="NON_BLOCKING")
    async def watch(n: int) -> AsyncIterator[dict[str, int]]:
        for i in range(n):
            yield {"tick": i}

    script = ToolScript(name="watch", args={"n": 3}, non_blocking=True)
    async with _live(backend_name, reg, validate_frames=True, tool_triggers={"watch": script}) as (
        server,
        session,
    ):
        async with run_tools(session, reg) as runner:
            await session.send_text("watch it")
            await server.wait_until(lambda: len(_tool_responses(server.received[0])) == 4)
            await asyncio.wait_for(runner.wait_idle(), TIMEOUT)
        assert (runner.stats.partials, runner.stats.answered) == (3, 1)
    flags = [
        (r.response, r.will_continue, r.scheduling) for r in _tool_responses(server.received[0])
    ]
    assert flags == [
        ({"tick": 0}, True, "WHEN_IDLE"),
        ({"tick": 1}, True, "WHEN_IDLE"),
        ({"tick": 2}, True, "WHEN_IDLE"),
        ({}, False, "SILENT"),
    ]
    setup = server.connections[0].setup
    assert setup is not None and setup.tools is not UNSET
    decls = setup.tools[0].function_declarations
    assert decls is not UNSET and decls[0].behavior == "NON_BLOCKING"


class _LogEvent(logging.Handler):
    """Sets an asyncio.Event when a log message containing ``text`` is emitted."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


async def _go_away_during_blocking_call(backend_name: str, *, wait_for_session: bool) -> None:
    reg = ToolRegistry()
    started = asyncio.Event()
    release = asyncio.Event()

    @reg.tool(behavior="BLOCKING")  # explicit: 3.8 Live would default to NON_BLOCKING
    async def book(room: str) -> str:
        started.set()
        await release.wait()
        return f"booked {room}"

    waiting = _LogEvent("goAway with a pending blocking tool call")
    session_logger = logging.getLogger("gemini_live.session")
    session_logger.addHandler(waiting)
    old_level = session_logger.level
    session_logger.setLevel(logging.INFO)
    script = ToolScript(name="book", args={"room": "101"})
    try:
        async with _live(
            backend_name, reg, validate_frames=True, tool_triggers={"book": script}
        ) as (server, session):
            events = session.events()
            async with run_tools(session, reg) as runner:
                await session.send_text("book a room")
                async with asyncio.timeout(TIMEOUT):
                    await started.wait()
                await server.send_go_away(time_left=3.0)
                await _collect(events, lambda e: isinstance(e, ev.GoAway))
                if wait_for_session:
                    async with asyncio.timeout(TIMEOUT):
                        await waiting.event.wait()
                release.set()
                got = await _collect(events, lambda e: isinstance(e, ev.Resumed))
                assert got[-1] == ev.Resumed(state_restored=True)
                # the model's reply to the tool result came before the rotation
                assert "book returned" in _transcript(got)
                assert runner.stats.answered == 1
                assert runner.running
                # the runner keeps serving on the new connection
                await session.send_text("book another")
                await server.wait_until(
                    lambda: (
                        len(server.connections) == 2
                        and len(_tool_responses(server.received[1])) == 1
                    )
                )
            assert runner.stats.answered == 2
    finally:
        session_logger.removeHandler(waiting)
        session_logger.setLevel(old_level)
    (first,) = _tool_responses(server.received[0])
    assert first.response == {"output": "booked 101"}
    assert server.connections[1].resumed_from is not None


async def test_go_away_during_blocking_call_then_resume(backend_name: str) -> None:
    """§6.2: the answer goes out on the old connection; rotate after a fresh handle."""
    await _go_away_during_blocking_call(backend_name, wait_for_session=True)


async def test_go_away_then_immediate_tool_answer(backend_name: str) -> None:
    """Same as above, but the tool answers as soon as the client has seen goAway."""
    await _go_away_during_blocking_call(backend_name, wait_for_session=False)


async def test_registry_tools_sent_as_context_update_mid_session(backend_name: str) -> None:
    reg = _weather_registry()
    async with _live(backend_name, reg, validate_frames=True) as (server, session):

        @reg.tool
        def get_time() -> str:
            return "noon"

        await session.send_context_update(tools=reg.tools())
        await server.wait_for_messages(2)
    update = server.received[0][1].context_update
    assert update is not UNSET and update.tools is not UNSET
    decls = update.tools.tools[0].function_declarations
    assert decls is not UNSET
    assert [d.name for d in decls] == ["get_weather", "get_time"]
    # Not declared: the service applies the model's default (a context update is not
    # adapted by the model table; see test_behavior_default_comes_from_the_model_table).
    assert all(d.behavior is UNSET for d in decls)


async def test_runner_stops_when_session_closes(backend_name: str) -> None:
    reg = _weather_registry()
    async with FakeLiveServer(validate_frames=True) as server:
        session = await gl.connect(_config(server, backend_name, reg))
        runner = ToolRunner(reg).attach(session)
        await session.close()
        async with asyncio.timeout(TIMEOUT):
            await runner.wait()
        assert not runner.running
        await runner.aclose()


@pytest.mark.parametrize(
    ("model", "default"),
    [
        ("models/gemini-3.8-live", "NON_BLOCKING"),
        ("models/gemini-2.5-flash-native-audio-preview-12-2025", "BLOCKING"),
    ],
)
async def test_behavior_default_comes_from_the_model_table(model: str, default: str) -> None:
    """A tool without ``behavior=`` gets its family's default, and everything agrees on it:
    the setup on the wire, the runner (scheduling), the protocol (rotation blocker)."""
    reg = ToolRegistry()
    release = asyncio.Event()
    started = asyncio.Event()

    @reg.tool
    async def get_weather(city: str) -> dict[str, Any]:
        """Current weather for a city."""
        started.set()
        async with asyncio.timeout(TIMEOUT):
            await release.wait()
        return {"city": city, "tempC": 18}

    script = ToolScript(name="get_weather", args={"city": "Paris"})
    async with (
        FakeLiveServer(validate_frames=True, tool_triggers={"weather": script}) as server,
        await gl.connect(_config(server, "memory", reg, model=model)) as session,
    ):
        sent = server.connections[0].setup
        assert sent is not None and sent.tools is not UNSET
        decls = sent.tools[0].function_declarations
        assert decls is not UNSET and decls[0].behavior == default
        async with run_tools(session, reg) as runner:
            spec = reg.get("get_weather")
            assert spec is not None and runner.behavior(spec) == default
            await session.send_text("what is the weather?")
            async with asyncio.timeout(TIMEOUT):
                await started.wait()
            # Unknown behaviour counts as blocking; a NON_BLOCKING default is seen as such.
            assert session.protocol.has_pending_blocking_call is (default == "BLOCKING")
            release.set()
            await server.wait_for_messages(3)
        (response,) = _tool_responses(server.received[0])
        assert response.name == "get_weather"
        # A NON_BLOCKING call is answered WHEN_IDLE (as if declared); a BLOCKING one has
        # no scheduling.
        assert response.scheduling == ("WHEN_IDLE" if default == "NON_BLOCKING" else UNSET)


@pytest.mark.parametrize(
    ("model", "blocking"),
    [
        ("models/gemini-3.8-live", False),
        ("models/gemini-2.5-flash-native-audio-preview-12-2025", True),
        ("models/some-future-model", True),  # unknown family: unknown counts as blocking
    ],
)
async def test_tools_added_by_context_update_use_the_family_default(
    model: str, blocking: bool
) -> None:
    """A contextUpdate sends the tools as they are (behaviour unset); the service applies
    the family's default, and so does the protocol's idea of a pending blocking call."""
    reg = ToolRegistry()
    release = asyncio.Event()
    started = asyncio.Event()

    @reg.tool(behavior="NON_BLOCKING")
    def noop() -> None:
        pass

    async with (
        FakeLiveServer(
            validate_frames=True,
            tool_triggers={"time": ToolScript(name="get_time", args={})},
        ) as server,
        await gl.connect(_config(server, "memory", reg, model=model)) as session,
    ):

        @reg.tool
        async def get_time() -> str:
            started.set()
            async with asyncio.timeout(TIMEOUT):
                await release.wait()
            return "noon"

        if "2.5" in model:
            # 2.5 takes no contextUpdate: refused before the wire, the session goes on.
            with pytest.raises(errors.ConfigError, match="contextUpdate"):
                await session.send_context_update(tools=reg.tools())
            return
        await session.send_context_update(tools=reg.tools())
        async with run_tools(session, reg):
            await session.send_text("what time is it?")
            async with asyncio.timeout(TIMEOUT):
                await started.wait()
            assert session.protocol.has_pending_blocking_call is blocking
            release.set()
            await server.wait_until(lambda: len(_tool_responses(server.received[0])) == 1)
    update = server.received[0][1].context_update
    assert update is not UNSET and update.tools is not UNSET
    decls = update.tools.tools[0].function_declarations
    assert decls is not UNSET and decls[1].behavior is UNSET
