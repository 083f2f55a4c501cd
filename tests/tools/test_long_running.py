"""Long-running tools (budget, late results, progress, tasks) against FakeLiveServer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer
from gemini_live.tools import SchedulingLike, ToolContext, ToolRegistry, ToolTask, run_tools
from gemini_live.types import (
    UNSET,
    AudioTranscriptionConfig,
    ClientMessage,
    FunctionResponse,
    GenerationConfig,
    Setup,
)

TIMEOUT = 5.0
M38 = "models/gemini-3.8-live"  # NON_BLOCKING default, willContinue + scheduling
M25 = "models/gemini-2.5-flash-native-audio-preview-12-2025"  # BLOCKING default
M31 = "models/gemini-3.1-flash-live-preview"  # BLOCKING only, no clientContent mid-session


def _config(server: FakeLiveServer, registry: ToolRegistry, model: str) -> gl.SessionConfig:
    return gl.SessionConfig(
        setup=Setup(
            model=model,
            generation_config=GenerationConfig(response_modalities=["AUDIO"]),
            output_audio_transcription=AudioTranscriptionConfig(),
            tools=registry.tools(),
        ),
        transport=gl.TransportConfig(
            endpoint=gl.Endpoint.custom(server.url),
            backend=server.memory_backend(),
            open_timeout=5.0,
        ),
        reconnect=gl.ReconnectPolicy(base_backoff=0.01, max_backoff=0.05),
        setup_timeout=5.0,
    )


@contextlib.asynccontextmanager
async def _live(
    registry: ToolRegistry, model: str, **server_options: Any
) -> AsyncIterator[tuple[FakeLiveServer, gl.Session]]:
    async with (
        FakeLiveServer(validate_frames=True, **server_options) as server,
        await gl.connect(_config(server, registry, model)) as session,
    ):
        yield server, session


def _responses(server: FakeLiveServer, call_id: str) -> list[FunctionResponse]:
    out: list[FunctionResponse] = []
    for conn in server.received:
        for m in conn:
            if m.tool_response is not UNSET:
                out.extend(r for r in m.tool_response.function_responses if r.id == call_id)
    return out


def _texts(messages: list[ClientMessage]) -> list[tuple[str, bool | None]]:
    """User text sent in ``messages``: (text, turnComplete); realtime text has None."""
    out: list[tuple[str, bool | None]] = []
    for m in messages:
        ri = m.realtime_input
        if ri is not UNSET and isinstance(ri.text, str):
            out.append((ri.text, None))
        cc = m.client_content
        if cc is not UNSET and cc.turns is not UNSET:
            for turn in cc.turns:
                parts = [] if turn.parts is UNSET else turn.parts
                text = "".join(p.text for p in parts if isinstance(p.text, str))
                tc = cc.turn_complete if isinstance(cc.turn_complete, bool) else False
                out.append((text, tc))
    return out


def _late_turns(server: FakeLiveServer) -> list[tuple[str, bool | None]]:
    return [t for conn in server.received for t in _texts(conn) if t[0].startswith("[Result of")]


def _final(responses: list[FunctionResponse]) -> list[FunctionResponse]:
    return [r for r in responses if r.will_continue is not True]


class _Recorder:
    """Collects the session's events and the runner's task events."""

    def __init__(self, session: gl.Session) -> None:
        self.events: list[ev.Event] = []
        self.task_events: list[tuple[str, str]] = []
        self._changed = asyncio.Event()
        session.on_event(self._event)

    def _event(self, event: ev.Event) -> None:
        self.events.append(event)
        self._changed.set()

    def on_task(self, task: ToolTask, what: str) -> None:
        self.task_events.append((task.id, what))
        self._changed.set()

    async def until(self, cond: Callable[[], bool]) -> None:
        """Wait (bounded) until ``cond()`` holds; re-checked on every event."""
        async with asyncio.timeout(TIMEOUT):
            while not cond():
                self._changed.clear()
                await self._changed.wait()

    def spoken(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, ev.OutputTranscription))

    def turns(self) -> int:
        return sum(isinstance(e, ev.TurnComplete) for e in self.events)


def _booking_registry(
    release: asyncio.Event, *, scheduling: SchedulingLike | None = None, budget: float = 0.05
) -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool(long_running=True, budget=budget, scheduling=scheduling)
    async def book(room: str, ctx: ToolContext) -> dict[str, Any]:
        """Book a room (slow)."""
        ctx.progress({"step": "asked the hotel"})
        async with asyncio.timeout(TIMEOUT):
            await release.wait()
        return {"booked": room}

    return reg


# -- budget ---------------------------------------------------------------------------------


async def test_finishing_within_budget_answers_inline() -> None:
    reg = ToolRegistry()

    @reg.tool(long_running=True, budget=TIMEOUT)
    async def quick(x: int) -> int:
        return x * 2

    async with _live(reg, M25) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task) as runner:
            await server.send_tool_call([("c1", "quick", {"x": 21})])
            await server.wait_until(lambda: len(_responses(server, "c1")) == 1)
            assert runner.tasks == []
        (resp,) = _responses(server, "c1")
        assert resp.response == {"output": 42}
        assert rec.task_events == []


def test_long_running_options() -> None:
    reg = ToolRegistry()

    @reg.tool(long_running=True)
    async def a() -> None: ...

    @reg.tool(budget=2)
    async def b() -> None: ...

    @reg.tool
    async def c() -> None: ...

    specs = [reg.get(n) for n in ("a", "b", "c")]
    assert [(s.long_running, s.budget) for s in specs if s] == [
        (True, 0.3),
        (True, 2.0),
        (False, None),
    ]
    with pytest.raises(gl.ConfigError, match="budget"):
        reg.add(a, name="bad", budget=-1)


# -- each family x each scheduling ----------------------------------------------------------

FAMILIES = [
    # model, the call is NON_BLOCKING, the late result is the call's final response
    pytest.param(M38, True, True, id="3.8-non-blocking"),
    pytest.param(M25, False, False, id="2.5-blocking"),
    pytest.param(M31, False, False, id="3.1-blocking-only"),
]


@pytest.mark.parametrize("scheduling", ["INTERRUPT", "WHEN_IDLE", "SILENT"])
@pytest.mark.parametrize(("model", "non_blocking", "as_response"), FAMILIES)
async def test_late_result_in_the_form_the_family_takes(
    model: str, non_blocking: bool, as_response: bool, scheduling: SchedulingLike
) -> None:
    release = asyncio.Event()
    reg = _booking_registry(release, scheduling=scheduling)
    async with _live(reg, model) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task) as runner:
            await server.send_tool_call(
                [("c1", "book", {"room": "101"})], non_blocking=non_blocking
            )
            await rec.until(lambda: ("T1", "started") in rec.task_events)
            (task,) = runner.tasks
            assert (task.id, task.call_id, task.state) == ("T1", "c1", "running")
            (started,) = _responses(server, "c1")
            assert started.response["status"] == "started"
            assert started.response["task"] == "T1"
            # BLOCKING: "started" is the final answer; NON_BLOCKING: a willContinue partial.
            assert started.will_continue == (True if as_response else UNSET)
            turns_before = rec.turns()
            if not as_response:  # the model answered "started" (it was waiting for it)
                await rec.until(lambda: rec.turns() > turns_before)
            release.set()
            await rec.until(lambda: ("T1", "delivered") in rec.task_events)
            assert task.state == "finished"
            assert task.delivered == ("response" if as_response else "context")
            # the model hears it (or not): a later echo turn proves nothing else is coming
            await session.send_text("ping")
            await rec.until(lambda: "You said: ping" in rec.spoken())
        finals = _final(_responses(server, "c1"))
        late = _late_turns(server)
        if as_response:
            assert late == []
            assert [(r.response, r.scheduling) for r in finals] == [({"booked": "101"}, scheduling)]
        else:
            assert len(finals) == 1 and finals[0] is started
            (turn,) = late
            assert "call id c1" in turn[0] and "task T1" in turn[0] and '"booked":"101"' in turn[0]
            if model == M31:
                assert turn[1] is None  # typed text: 3.1 takes no clientContent mid-session
            else:
                assert turn[1] is (scheduling != "SILENT")
        heard = '"booked":"101"' in rec.spoken()
        assert heard is (scheduling != "SILENT" or model == M31)
        assert [w for t, w in rec.task_events if t == "T1"] == [
            "started",
            "finished",
            "delivered",
        ]
