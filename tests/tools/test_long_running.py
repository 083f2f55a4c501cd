"""Long-running tools (budget, late results, progress, tasks) against FakeLiveServer."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer
from gemini_live.tools import (
    SchedulingLike,
    ToolContext,
    ToolRegistry,
    ToolRunner,
    ToolTask,
    run_tools,
)
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
        #: Set to record the protocol state at each "delivered".
        self.session: gl.Session | None = None
        self.states_at_delivery: list[str] = []
        session.on_event(self._event)

    def _event(self, event: ev.Event) -> None:
        self.events.append(event)
        self._changed.set()

    def on_task(self, task: ToolTask, what: str) -> None:
        self.task_events.append((task.id, what))
        if what == "delivered" and self.session is not None:
            self.states_at_delivery.append(self.session.protocol.state.value)
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


# -- progress -------------------------------------------------------------------------------


def _progress_registry(go_on: asyncio.Event, release: asyncio.Event) -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool(budget=0)
    async def search(ctx: ToolContext) -> str:
        """Search everywhere (slow)."""
        async with asyncio.timeout(TIMEOUT):
            await go_on.wait()
            ctx.progress({"found": 3})
            await release.wait()
        return "done"

    return reg


@pytest.mark.parametrize(("model", "partials"), [(M38, True), (M31, False)])
async def test_progress(model: str, partials: bool) -> None:
    go_on, release = asyncio.Event(), asyncio.Event()
    reg = _progress_registry(go_on, release)
    async with _live(reg, model) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task) as runner:
            await server.send_tool_call([("c1", "search", {})], non_blocking=partials)
            await rec.until(lambda: ("T1", "started") in rec.task_events)
            go_on.set()
            await rec.until(lambda: ("T1", "progress") in rec.task_events)
            (task,) = runner.tasks
            assert task.progress == [{"found": 3}]
            assert task.summary() == {
                "task": "T1",
                "tool": "search",
                "state": "running",
                "progress": {"found": 3},
            }
            if partials:
                await server.wait_until(lambda: len(_responses(server, "c1")) == 2)
            release.set()
            await rec.until(lambda: ("T1", "delivered") in rec.task_events)
    sent = [(r.response, r.will_continue) for r in _responses(server, "c1")]
    started = {"status": "started", "task": "T1", "note": sent[0][0]["note"]}
    if partials:
        assert sent == [
            (started, True),
            ({"status": "running", "task": "T1", "progress": {"found": 3}}, True),
            ({"output": "done"}, False),
        ]
    else:  # kept on the task and shown to the app; the model gets the result as a turn
        assert sent == [(started, UNSET)]
        assert len(_late_turns(server)) == 1
    assert [w for _, w in rec.task_events] == ["started", "progress", "finished", "delivered"]


# -- cancel ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [M38, M25])
async def test_cancel_from_the_app(model: str) -> None:
    release = asyncio.Event()
    reg = _booking_registry(release)
    async with _live(reg, model) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task) as runner:
            await server.send_tool_call([("c1", "book", {"room": "7"})], non_blocking=model == M38)
            await rec.until(lambda: ("T1", "started") in rec.task_events)
            task = runner.get_task("T1")
            assert task is not None and task.cancel()
            await rec.until(lambda: ("T1", "delivered") in rec.task_events)
            assert task.state == "cancelled" and not task.cancel()
    told = {"status": "cancelled", "task": "T1"}
    if model == M38:
        assert _final(_responses(server, "c1"))[0].response == told
    else:
        (turn,) = _late_turns(server)
        assert '"status":"cancelled"' in turn[0]
    assert [w for _, w in rec.task_events] == ["started", "cancelled", "delivered"]


async def test_list_and_cancel_from_the_model() -> None:
    release = asyncio.Event()
    reg = _booking_registry(release)
    rec_tasks: list[tuple[str, str]] = []
    runner = ToolRunner(reg, on_task=lambda t, w: rec_tasks.append((t.id, w))).add_task_tools()
    assert {"list_tasks", "cancel_task"} <= set(reg.names)
    async with _live(reg, M38) as (server, session):
        rec = _Recorder(session)
        runner.attach(session)
        try:
            await server.send_tool_call([("c1", "book", {"room": "7"})], non_blocking=True)
            await server.wait_until(lambda: len(_responses(server, "c1")) == 1)
            await server.send_tool_call([("c2", "list_tasks", {})], non_blocking=True)
            await server.wait_until(lambda: len(_responses(server, "c2")) == 1)
            await server.send_tool_call([("c3", "cancel_task", {"task": "T1"})], non_blocking=True)
            await server.wait_until(lambda: len(_final(_responses(server, "c1"))) == 1)
            await server.send_tool_call([("c4", "cancel_task", {"task": "T9"})], non_blocking=True)
            await server.wait_until(lambda: len(_responses(server, "c4")) == 1)
            await rec.until(lambda: ("T1", "delivered") in rec_tasks)
        finally:
            await runner.aclose()
    (listed,) = _responses(server, "c2")
    assert listed.response == {"tasks": [{"task": "T1", "tool": "book", "state": "running"}]}
    (cancelled,) = _responses(server, "c3")
    assert cancelled.response["cancelled"] is True
    assert _final(_responses(server, "c1"))[0].response == {"status": "cancelled", "task": "T1"}
    (unknown,) = _responses(server, "c4")
    assert unknown.response["error"]["type"] == "ToolError"
    assert not release.is_set()


# -- exactly once across connections --------------------------------------------------------


def _deliveries(server: FakeLiveServer, call_id: str) -> list[str]:
    """How the result reached the service: one entry per delivery."""
    out = ["response" for r in _final(_responses(server, call_id)) if "booked" in r.response]
    out += ["context" for t, _ in _late_turns(server) if f"call id {call_id}" in t]
    return out


def _no_1008(server: FakeLiveServer) -> bool:
    """No session closed 1008 (a resume with an expired handle is refused before setup)."""
    return all(c.close_code != 1008 for c in server.connections if c.setup_completed)


@pytest.mark.parametrize("model", [M38, M25])
async def test_result_after_a_fresh_restart_is_a_context_turn(model: str) -> None:
    """The service forgot the call (its handles are gone): the late result goes as a turn
    naming the call on the new session, never as a response to an unknown id."""
    release = asyncio.Event()
    reg = _booking_registry(release)
    async with _live(reg, model) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task) as runner:
            await server.send_tool_call([("c1", "book", {"room": "9"})], non_blocking=model == M38)
            await rec.until(lambda: ("T1", "started") in rec.task_events)
            server.expire_handles()
            await server.drop()
            await rec.until(lambda: any(isinstance(e, ev.Resumed) for e in rec.events))
            assert [e for e in rec.events if isinstance(e, ev.Resumed)][-1].state_restored is False
            (task,) = runner.tasks
            assert task.state == "running"  # a fresh session does not cancel the task
            release.set()
            await rec.until(lambda: ("T1", "delivered") in rec.task_events)
            assert task.delivered == "context"
    assert _deliveries(server, "c1") == ["context"]
    assert _texts(server.received[-1])[-1][0].startswith("[Result of your earlier call book")
    assert _no_1008(server)


async def test_result_finishing_while_disconnected_waits_for_the_resume() -> None:
    release = asyncio.Event()
    reg = _booking_registry(release)
    async with _live(reg, M38) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task):
            await server.send_tool_call([("c1", "book", {"room": "9"})], non_blocking=True)
            await rec.until(lambda: ("T1", "started") in rec.task_events)
            rec.session = session
            await server.drop()
            await rec.until(lambda: session.status == "reconnecting")
            release.set()
            await rec.until(lambda: ("T1", "delivered") in rec.task_events)
            # finished while disconnected; delivered only once the service took the setup
            assert rec.task_events == [("T1", "started"), ("T1", "finished"), ("T1", "delivered")]
            assert rec.states_at_delivery == ["open"]
    assert len(server.connections) >= 2
    assert len(_deliveries(server, "c1")) == 1
    assert _no_1008(server)


@pytest.mark.parametrize("model", [M38, M25])
async def test_result_during_a_go_away_rotation_is_delivered_once(model: str) -> None:
    release = asyncio.Event()
    reg = _booking_registry(release)
    async with _live(reg, model) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task):
            await server.send_tool_call([("c1", "book", {"room": "9"})], non_blocking=model == M38)
            await rec.until(lambda: ("T1", "started") in rec.task_events)
            await server.send_go_away(time_left=3.0)
            await rec.until(lambda: any(isinstance(e, ev.GoAway) for e in rec.events))
            release.set()
            await rec.until(lambda: ("T1", "delivered") in rec.task_events)
            await rec.until(lambda: any(isinstance(e, ev.Resumed) for e in rec.events))
    assert len(_deliveries(server, "c1")) == 1
    assert _no_1008(server)


# -- the fake hears late results ------------------------------------------------------------


@pytest.mark.parametrize("scheduling", ["INTERRUPT", "WHEN_IDLE"])
async def test_fake_interrupts_its_turn_only_for_interrupt(scheduling: str) -> None:
    """A NON_BLOCKING result scheduled INTERRUPT cuts the model's current turn short; one
    scheduled WHEN_IDLE is spoken after it."""
    reg = ToolRegistry()
    async with _live(reg, M38, chunk_interval=0.02, reply_chunks=50) as (server, session):
        rec = _Recorder(session)
        (cid,) = await server.send_tool_call([("c1", "lookup", {})], non_blocking=True)
        await session.send_text("tell me a long story")
        await rec.until(lambda: "You said" in rec.spoken())
        await session.send_tool_response(
            FunctionResponse(id=cid, name="lookup", response={"v": 1}, scheduling=scheduling)
        )
        await rec.until(lambda: "lookup returned" in rec.spoken() and rec.turns() >= 2)
    interrupted = any(isinstance(e, ev.Interrupted) for e in rec.events)
    assert interrupted is (scheduling == "INTERRUPT")
    story = rec.spoken().split("lookup returned")[0]
    assert (story == "You said: tell me a long story") is (scheduling == "WHEN_IDLE")


async def test_server_cancellation_ends_the_task_without_an_answer() -> None:
    release = asyncio.Event()
    reg = _booking_registry(release)
    async with _live(reg, M38) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task) as runner:
            await server.send_tool_call([("c1", "book", {"room": "7"})], non_blocking=True)
            await rec.until(lambda: ("T1", "started") in rec.task_events)
            await server.send_tool_call_cancellation(["c1"])
            await rec.until(lambda: ("T1", "cancelled") in rec.task_events)
            async with asyncio.timeout(TIMEOUT):
                await runner.wait_idle()
            assert [t.state for t in runner.tasks] == ["cancelled"]
    assert [w for _, w in rec.task_events] == ["started", "cancelled"]
    assert _final(_responses(server, "c1")) == []


async def test_sync_tool_reports_progress_from_its_thread() -> None:
    go_on, release = threading.Event(), threading.Event()
    reg = ToolRegistry()

    @reg.tool(budget=0, timeout=TIMEOUT)
    def crunch(ctx: ToolContext) -> int:
        """Crunch numbers (slow, in a thread)."""
        assert go_on.wait(TIMEOUT)
        ctx.progress(50)
        assert release.wait(TIMEOUT)
        return 7

    async with _live(reg, M31) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task) as runner:
            await server.send_tool_call([("c1", "crunch", {})])
            await rec.until(lambda: ("T1", "started") in rec.task_events)
            go_on.set()
            await rec.until(lambda: ("T1", "progress") in rec.task_events)
            assert runner.tasks[0].progress == [50]
            release.set()
            await rec.until(lambda: ("T1", "delivered") in rec.task_events)
    (turn,) = _late_turns(server)
    assert '{"output":7}' in turn[0] and turn[1] is None


async def test_progress_for_a_forgotten_call_is_not_sent() -> None:
    """After a fresh session the call is gone: progress stays on the task (no response to
    an unknown id), and the result goes as a turn."""
    go_on, release = asyncio.Event(), asyncio.Event()
    reg = _progress_registry(go_on, release)
    async with _live(reg, M38) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task) as runner:
            await server.send_tool_call([("c1", "search", {})], non_blocking=True)
            await rec.until(lambda: ("T1", "started") in rec.task_events)
            server.expire_handles()
            await server.drop()
            await rec.until(lambda: any(isinstance(e, ev.Resumed) for e in rec.events))
            # the unacknowledged "started" partial is not re-sent to the fresh session
            dropped = session.protocol.stats.stale_tool_responses_dropped
            go_on.set()
            await rec.until(lambda: ("T1", "progress") in rec.task_events)
            release.set()
            await rec.until(lambda: ("T1", "delivered") in rec.task_events)
            assert runner.tasks[0].delivered == "context"
            # not even handed to the session (whose ledger would drop it, with a warning)
            assert session.protocol.stats.stale_tool_responses_dropped == dropped
    assert [r.response.get("status") for r in _responses(server, "c1")] == ["started"]
    assert len(_late_turns(server)) == 1
    assert _no_1008(server)
