"""The ToolRunner dispatcher (``gemini_live.tools._runner``)."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

import msgspec
import pytest

from gemini_live import events as ev
from gemini_live.codec import encode_client
from gemini_live.errors import ConfigError
from gemini_live.tools import (
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolResult,
    ToolRunner,
    run_tools,
)
from gemini_live.types import (
    UNSET,
    ClientMessage,
    FunctionCall,
    FunctionResponse,
    Setup,
)

from .conftest import (
    Booking,
    Color,
    Level,
    Point,
)

TIMEOUT = 5.0

# -- the dispatcher -----------------------------------------------------------------------


class FakeSession:
    """Just enough of a Session: ``on_event`` listeners fed synchronously, recorded responses."""

    def __init__(self, *, fail_sends: int = 0) -> None:
        self.sent: list[FunctionResponse] = []
        self.fail_sends = fail_sends
        self.listeners: list[Callable[[ev.Event], object]] = []
        self.subscriptions = 0
        self.closed = False
        #: What a Session exposes as ``protocol.setup`` (after the model table); None: unknown.
        self.setup: Setup | None = None
        self._changed = asyncio.Condition()

    def on_event(self, callback: Callable[[ev.Event], object]) -> Callable[[], None]:
        self.subscriptions += 1
        self.listeners.append(callback)

        def remove() -> None:
            if callback in self.listeners:
                self.listeners.remove(callback)

        return remove

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

    def push(self, event: ev.Event) -> None:
        for callback in list(self.listeners):
            callback(event)

    def call(self, *calls: FunctionCall) -> None:
        self.push(ev.ToolCall(tuple(calls)))

    def end(self) -> None:
        self.closed = True
        self.push(ev.Closed(1000, ""))

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


async def test_context_injection() -> None:
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

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        session.call(fc("b", "bg"))
        await bounded(bg_started.wait())
        session.call(fc("i", "inspect_ctx", n=4))
        await bounded(ctx_started.wait())
        assert runner.pending == 2
        release.set()
        await session.wait_sent(2)
    assert seen[0].id == "i" and seen[0].name == "inspect_ctx" and seen[0].args == {"n": 4}
    assert not seen[0].cancelled.is_set()
    assert "ToolRunner" in repr(runner)


async def test_lifecycle() -> None:
    reg = ToolRegistry()
    session = FakeSession()
    runner = ToolRunner(reg)
    assert not is_running(runner)
    await bounded(runner.wait())  # never attached: nothing to wait for
    await bounded(runner.wait_idle())
    with pytest.raises(ConfigError, match="attach"):
        runner.start()
    assert runner.attach(session) is runner
    assert runner.attach(session) is runner  # idempotent: one subscription
    assert runner.start() is runner
    assert session.subscriptions == 1
    assert is_running(runner)
    with pytest.raises(ConfigError, match="another session"):
        runner.attach(FakeSession())
    await bounded(runner.aclose())
    await bounded(runner.aclose())
    await bounded(runner.wait())
    assert not is_running(runner)
    assert session.listeners == []  # the callback was removed
    with pytest.raises(ConfigError):
        runner.start()
    with pytest.raises(ConfigError):
        runner.attach(session)
    with pytest.raises(ConfigError):
        ToolRunner(reg, max_workers=0)
    with pytest.raises(ConfigError):
        ToolRunner(reg, default_timeout=0)
    with pytest.raises(ConfigError, match="ToolRegistry first"):
        ToolRunner(session)  # type: ignore[arg-type]


async def test_attach_to_a_closed_session_stops_at_once() -> None:
    session = FakeSession()
    session.closed = True
    runner = ToolRunner(ToolRegistry()).attach(session)
    await bounded(runner.wait())
    assert not is_running(runner)
    assert session.listeners == []


async def test_call_in_the_first_event_after_attach_is_answered() -> None:
    """Attached before any frame: the very first event already carries a call."""
    reg = ToolRegistry()

    @reg.tool
    def ping() -> str:
        return "pong"

    session = FakeSession()
    runner = ToolRunner(reg).attach(session)  # synchronous: no await between attach and call
    session.call(fc("first", "ping"))
    (resp,) = await session.wait_sent(1)
    assert resp.response == {"output": "pong"}
    await bounded(runner.aclose())


async def test_calls_arriving_while_busy_are_never_dropped() -> None:
    """A burst of single-call events (more than any subscriber queue) while tools run."""
    reg = ToolRegistry()
    gate = asyncio.Event()

    @reg.tool
    async def slow(i: int) -> int:
        await gate.wait()
        return i

    session = FakeSession()
    async with run_tools(session, reg) as runner:
        for i in range(1000):
            session.call(fc(f"c{i}", "slow", i=i))
        gate.set()
        await session.wait_sent(1000)
        await drain(runner)
    assert sorted(str(r.id) for r in session.sent) == sorted(f"c{i}" for i in range(1000))
    assert runner.stats.answered == 1000


def test_partial_responses_default_is_on_and_no_endpoint_sniffing() -> None:
    class VertexLike(FakeSession):
        class protocol:  # the runner must not look at this
            api = "vertex"

    reg = ToolRegistry()
    assert ToolRunner(reg).partial_responses is True
    assert run_tools(VertexLike(), reg).partial_responses is True
    assert ToolRunner(reg, partial_responses=False).partial_responses is False


def test_the_runner_reads_only_the_sessions_public_setup() -> None:
    """No reach into ``session.protocol``: a session-like object that keeps its setup
    only there is one whose behaviours are unknown (BLOCKING, no partials)."""
    from gemini_live.models import adapt_setup

    reg = ToolRegistry()

    @reg.tool
    async def stream() -> AsyncIterator[int]:
        yield 1

    spec = reg.get("stream")
    assert spec is not None
    setup = adapt_setup(Setup(model="models/gemini-3.8-live", tools=reg.tools()), vertex=False)

    class Hidden(FakeSession):
        class protocol:
            pass

    hidden = Hidden()
    hidden.protocol.setup = setup  # type: ignore[attr-defined]
    runner = ToolRunner(reg)
    runner.attach(hidden)
    assert runner.behavior(spec) is None
    public = FakeSession()
    public.setup = setup
    runner2 = ToolRunner(reg)
    runner2.attach(public)
    assert runner2.behavior(spec) == "NON_BLOCKING"


async def test_unset_behaviour_is_read_from_the_session_setup() -> None:
    """A tool without ``behavior=`` streams partials only when the session's (adapted) setup
    declares it NON_BLOCKING; unknown counts as BLOCKING (one final answer)."""
    from gemini_live.models import adapt_setup

    reg = ToolRegistry()

    @reg.tool
    async def stream() -> AsyncIterator[int]:
        yield 1
        yield 2

    spec = reg.get("stream")
    assert spec is not None and spec.behavior is None

    def adapted(model: str) -> Setup:
        return adapt_setup(Setup(model=model, tools=reg.tools()), vertex=False)

    # 3.8 Live: NON_BLOCKING by default -> willContinue partials, WHEN_IDLE like a declared one
    # (the end marker is SILENT).
    runner = ToolRunner(reg)
    s38 = FakeSession()
    s38.setup = adapted("models/gemini-3.8-live")
    runner.attach(s38)
    assert runner.behavior(spec) == "NON_BLOCKING"
    s38.call(fc("s", "stream"))
    await s38.wait_sent(3)
    await runner.aclose()
    assert [(r.response, r.will_continue, r.scheduling) for r in s38.by_id("s")] == [
        ({"output": 1}, True, "WHEN_IDLE"),
        ({"output": 2}, True, "WHEN_IDLE"),
        ({}, False, "SILENT"),
    ]
    # 2.5: BLOCKING by default, and a session that does not say: one final answer.
    for setup in (adapted("models/gemini-2.5-flash-native-audio-preview-12-2025"), None):
        runner = ToolRunner(reg)
        session = FakeSession()
        if setup is not None:
            session.setup = setup
        runner.attach(session)
        assert runner.behavior(spec) == ("BLOCKING" if setup is not None else None)
        session.call(fc("s", "stream"))
        await session.wait_sent(1)
        await drain(runner)
        await runner.aclose()
        assert [(r.response, r.will_continue, r.scheduling) for r in session.by_id("s")] == [
            ({"output": 2}, UNSET, UNSET)
        ]
    # Declared without a behaviour (a contextUpdate is not adapted): the family default.
    for model, expected in (
        ("models/gemini-3.8-live", "NON_BLOCKING"),
        ("models/gemini-2.5-flash-native-audio-preview-12-2025", "BLOCKING"),
        ("models/some-future-model", None),
    ):
        runner = ToolRunner(reg)
        session = FakeSession()
        session.setup = Setup(model=model, tools=reg.tools())
        runner.attach(session)
        assert runner.behavior(spec) == expected, model
        await runner.aclose()
    # An explicit behaviour wins over the setup.
    explicit = ToolRegistry()
    explicit.add(stream, name="stream", behavior="BLOCKING")
    espec = explicit.get("stream")
    assert espec is not None
    runner = ToolRunner(explicit)
    session = FakeSession()
    session.setup = adapted("models/gemini-3.8-live")
    runner.attach(session)
    assert runner.behavior(espec) == "BLOCKING"
    await runner.aclose()
