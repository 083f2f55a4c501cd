"""Long-running tasks that outlive their process: task records in the conversation store,
a worker killed with SIGKILL, the cap on running tasks, parts and scheduling of a late
result. The crash tests run the first owner as a real child process (killed with
SIGKILL) and the next owner here, against one FakeLiveServer and one SQLite file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.store import SqliteStore
from gemini_live.testing import FakeLiveServer
from gemini_live.tools import ToolContext, ToolRegistry, ToolResult, run_tools
from gemini_live.types import UNSET

from .test_long_running import M25, M38, TIMEOUT, _final, _late_turns, _live, _Recorder, _responses

SRC = str(Path(__file__).resolve().parents[2] / "src")

# The first owner: answers `book` (long-running) and reports on stdout once each step is
# saved in the store. `book` finishes when a line arrives on stdin.
_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    import gemini_live as gl
    from gemini_live import events as ev
    from gemini_live.store import SqliteStore
    from gemini_live.tools import ToolRegistry

    url, db, model, idempotent = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"

    async def main():
        loop = asyncio.get_running_loop()
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        registry = ToolRegistry()

        @registry.tool(long_running=True, budget=0.05, idempotent=idempotent)
        async def book(room: str) -> dict:
            "Book a room (slow)."
            await stdin.readline()
            return {"booked": room, "by": "first owner"}

        store = SqliteStore(db, lease_ttl=1.0)
        s = await gl.connect(
            url=url, model=model, output_audio_transcription=True, conversation="tasks",
            store=store, backend="websockets", tools=registry.tools(),
            reconnect=gl.ReconnectPolicy(base_backoff=0.02, max_backoff=0.1, max_attempts=None),
        )
        link = s.conversation

        def on_task(task, what):
            if what in ("started", "finished"):
                t = time.time()
                async def report():
                    async with asyncio.timeout(10):
                        await link.wait_saved(lambda: (link.saved_at or 0) >= t)
                    print(what.upper(), flush=True)
                loop.create_task(report())

        s.run_tools(registry, on_task=on_task)
        await s.send_text("hello")
        async with asyncio.timeout(10):
            async for event in s:
                if isinstance(event, ev.SessionResumptionUpdate) and event.resumable:
                    break
            await link.wait_saved(lambda: (link.saved_at or 0) >= link.handle_at)
        print("READY", s.session_id, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


@pytest.fixture
async def server() -> AsyncIterator[FakeLiveServer]:
    async with FakeLiveServer(reply_chunks=1) as srv:
        yield srv


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        return (await proc.stdout.readline()).decode().strip()


async def _first_owner(
    server: FakeLiveServer, db: Path, model: str, *, idempotent: bool
) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        server.url,
        str(db),
        model,
        "1" if idempotent else "0",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    line = await _line(proc)
    assert line.startswith("READY"), line
    await server.send_tool_call([("c1", "book", {"room": "9"})], non_blocking=model == M38)
    assert await _line(proc) == "STARTED"
    return proc


async def _kill(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    async with asyncio.timeout(10):
        await proc.wait()


def _new_owner_registry(calls: list[str], *, idempotent: bool) -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool(long_running=True, budget=0.05, idempotent=idempotent)
    async def book(room: str) -> dict[str, Any]:
        """Book a room (slow)."""
        calls.append(room)
        return {"booked": room, "by": "new owner"}

    return reg


def _outcomes(server: FakeLiveServer) -> list[str]:
    """Every delivery of call c1's outcome to the service (responses and turns)."""
    out = [
        repr(r.response)
        for r in _final(_responses(server, "c1"))
        if isinstance(r.response, dict) and r.response.get("status") != "started"
    ]
    out += [t for t, _ in _late_turns(server) if "call id c1" in t]
    return out


async def _resume(
    server: FakeLiveServer, db: Path, model: str, reg: ToolRegistry
) -> tuple[list[str], Any]:
    store = SqliteStore(db, lease_ttl=1.0)
    async with await gl.connect(
        url=server.url,
        model=model,
        output_audio_transcription=True,
        conversation="tasks",
        store=store,
        backend="websockets",
        tools=reg.tools(),
        reconnect=gl.ReconnectPolicy(base_backoff=0.02, max_backoff=0.1),
    ) as session:
        rec = _Recorder(session)
        runner = run_tools(session, reg, on_task=rec.on_task)
        await rec.until(lambda: ("T1", "delivered") in rec.task_events)
        (task,) = runner.tasks
        link = session.conversation
        assert link is not None
        async with asyncio.timeout(TIMEOUT):
            await link.wait_saved(lambda: link.record is not None)
        stats = runner.stats
        await runner.aclose()
    record = await store.load("tasks")
    await store.aclose()
    assert record is not None and [t.state for t in record.tasks] == ["delivered"]
    return _outcomes(server), (task, stats)


@pytest.mark.parametrize("model", [M38, M25])
async def test_a_running_task_of_a_killed_worker_is_reported_lost(
    server: FakeLiveServer, tmp_path: Path, model: str
) -> None:
    db = tmp_path / "conv.db"
    proc = await _first_owner(server, db, model, idempotent=False)
    await _kill(proc)
    calls: list[str] = []
    outcomes, (task, stats) = await _resume(
        server, db, model, _new_owner_registry(calls, idempotent=False)
    )
    assert calls == []  # not idempotent: never run twice
    assert task.state == "lost" and stats.lost == 1
    assert len(outcomes) == 1 and "lost" in outcomes[0], outcomes
    # 3.8 would take a final response to the call, but the stored handle predates the
    # call: the service forgot it, so the outcome goes as a turn naming it (no 1008).
    assert task.route == ("response" if model == M38 else "context")
    assert outcomes[0].startswith("[Result of your earlier call book (call id c1")
    assert all(c.close_code != 1008 for c in server.connections)


async def test_an_idempotent_task_of_a_killed_worker_is_run_again(
    server: FakeLiveServer, tmp_path: Path
) -> None:
    db = tmp_path / "conv.db"
    proc = await _first_owner(server, db, M38, idempotent=True)
    await _kill(proc)
    calls: list[str] = []
    outcomes, (task, stats) = await _resume(
        server, db, M38, _new_owner_registry(calls, idempotent=True)
    )
    assert calls == ["9"] and stats.rerun == 1
    assert task.state == "finished"
    assert len(outcomes) == 1 and "new owner" in outcomes[0], outcomes


async def test_a_result_finished_before_the_crash_is_delivered_once_after_resume(
    server: FakeLiveServer, tmp_path: Path
) -> None:
    db = tmp_path / "conv.db"
    proc = await _first_owner(server, db, M38, idempotent=False)
    # The first owner loses its connection and cannot get back in: its task finishes,
    # is saved as finished, and waits for an open session that never comes.
    server.reject_next_setups(1_000_000, (1011, "Internal error encountered."))
    await server.drop()
    await server.wait_for_connections(2, within=TIMEOUT)  # it noticed: a refused attempt
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    assert await _line(proc) == "FINISHED"
    await _kill(proc)
    server.reject_next_setups(0, (1011, ""))
    calls: list[str] = []
    outcomes, (task, _) = await _resume(
        server, db, M38, _new_owner_registry(calls, idempotent=False)
    )
    assert calls == []
    assert task.state == "finished" and task.delivered is not None
    assert len(outcomes) == 1 and "first owner" in outcomes[0], outcomes


# -- bounds and fidelity --------------------------------------------------------------------


async def test_running_tasks_are_capped() -> None:
    release = asyncio.Event()
    reg = ToolRegistry()

    @reg.tool(long_running=True, budget=0.01)
    async def slow(n: int) -> dict[str, int]:
        """Slow."""
        async with asyncio.timeout(TIMEOUT):
            await release.wait()
        return {"n": n}

    async with _live(reg, M25) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task, max_running_tasks=2) as runner:
            for i in range(2):
                await server.send_tool_call([(f"c{i}", "slow", {"n": i})])
                await rec.until(lambda i=i: (f"T{i + 1}", "started") in rec.task_events)  # type: ignore[misc]
            await server.send_tool_call([("c9", "slow", {"n": 9})])
            await server.wait_until(lambda: bool(_responses(server, "c9")), within=TIMEOUT)
            (refused,) = _responses(server, "c9")
            assert isinstance(refused.response, dict)
            assert refused.response["error"]["type"] == "TooManyTasks"
            assert runner.stats.too_many_tasks == 1
            assert len(runner.tasks) == 2
            release.set()
            await rec.until(lambda: ("T2", "delivered") in rec.task_events)
    with pytest.raises(gl.ConfigError):
        gl.tools.ToolRunner(reg, max_running_tasks=0)


IMAGE: dict[str, Any] = {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}


@pytest.mark.parametrize("model", [M38, M25])
async def test_a_late_result_keeps_its_parts_and_scheduling(model: str) -> None:
    release = asyncio.Event()
    reg = ToolRegistry()

    @reg.tool(long_running=True, budget=0.01)
    async def draw(ctx: ToolContext) -> ToolResult:
        """Draw a picture (slow)."""
        async with asyncio.timeout(TIMEOUT):
            await release.wait()
        return ToolResult({"drawn": True}, scheduling="SILENT", parts=[IMAGE])

    async with _live(reg, model) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg, on_task=rec.on_task):
            await server.send_tool_call([("c1", "draw", {})], non_blocking=model == M38)
            await rec.until(lambda: ("T1", "started") in rec.task_events)
            release.set()
            await rec.until(lambda: ("T1", "delivered") in rec.task_events)
    if model == M38:  # the call's final response
        (final,) = [r for r in _final(_responses(server, "c1")) if "drawn" in r.response]
        assert final.scheduling == "SILENT"
        assert final.parts is not UNSET and [dict(p) for p in final.parts] == [IMAGE]
    else:  # a user turn naming the call, with the image, not asking for a reply (SILENT)
        turns = [
            m.client_content
            for conn in server.received
            for m in conn
            if m.client_content is not UNSET and m.client_content.turns is not UNSET
        ]
        (cc,) = [c for c in turns if "drawn" in str(c)]
        assert cc.turn_complete is not True
        assert cc.turns is not UNSET
        (turn,) = cc.turns
        assert turn.parts is not UNSET and turn.parts[1].inline_data is not UNSET
        assert turn.parts[1].inline_data.mime_type == "image/png"


# -- the executor seam in one process -------------------------------------------------------


class _Queue:
    """An in-process Executor: jobs by id, outliving the sessions."""

    name = "q"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.jobs: dict[str, asyncio.Task[Any]] = {}
        self.cancelled: list[str] = []

    async def _run(self, room: str) -> dict[str, str]:
        async with asyncio.timeout(TIMEOUT):
            await self.release.wait()
        return {"booked": room}

    async def submit(self, call: gl.tools.ExecutorCall) -> str:
        job = f"job-{len(self.jobs) + 1}"
        self.jobs[job] = asyncio.get_running_loop().create_task(self._run(**call.args))
        return job

    async def result(self, job: str) -> Any:
        return await asyncio.shield(self.jobs[job])

    async def cancel(self, job: str) -> bool:
        self.cancelled.append(job)
        return self.jobs[job].cancel()


def _queued_registry() -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool(long_running=True, budget=0.01, executor="q")
    async def book(room: str) -> dict[str, Any]:
        """Book a room (slow)."""
        raise AssertionError("runs on the queue")

    return reg


async def test_an_executor_job_is_handed_over_at_the_end_and_cancelled_on_request() -> None:
    queue = _Queue()
    reg = _queued_registry()
    store = gl.store.MemoryStore()
    async with FakeLiveServer(reply_chunks=1) as server:
        options: dict[str, Any] = {
            "url": server.url,
            "model": M38,
            "conversation": "q1",
            "store": store,
            "tools": reg.tools(),
        }
        async with await gl.connect(**options) as session:
            rec = _Recorder(session)
            runner = run_tools(session, reg, on_task=rec.on_task, executors={"q": queue})
            await session.send_text("hello")  # a turn, so the conversation has a handle
            await rec.until(
                lambda: any(
                    isinstance(e, ev.SessionResumptionUpdate) and e.resumable for e in rec.events
                )
            )
            await server.send_tool_call([("c1", "book", {"room": "1"})], non_blocking=True)
            await rec.until(lambda: ("T1", "started") in rec.task_events)
            (t1,) = runner.tasks
            assert (t1.executor, t1.job) == ("q", "job-1")
        # The session ended with T1 running: its job goes on, the record says running.
        assert queue.cancelled == [] and not queue.jobs["job-1"].done()
        record = await store.load("q1")
        assert record is not None
        assert [(t.task, t.state, t.job) for t in record.tasks] == [("T1", "running", "job-1")]
        async with await gl.connect(**options) as session:
            rec = _Recorder(session)
            runner = run_tools(session, reg, on_task=rec.on_task, executors={"q": queue})
            assert runner.stats.resumed == 1
            queue.release.set()
            await rec.until(lambda: ("T1", "delivered") in rec.task_events)
            found = runner.get_task("T1")
            assert found is not None and found.result == {"booked": "1"}
            # task ids go on after the stored ones; a cancel asked for cancels the job
            queue.release.clear()
            await server.send_tool_call([("c2", "book", {"room": "2"})], non_blocking=True)
            await rec.until(lambda: ("T2", "started") in rec.task_events)
            t2 = runner.get_task("T2")
            assert t2 is not None and t2.cancel()
            await rec.until(lambda: ("T2", "delivered") in rec.task_events)
            assert queue.cancelled == ["job-2"] and t2.state == "cancelled"
    assert all(c.close_code != 1008 for c in server.connections)


async def test_an_executor_name_nobody_registered_is_a_config_error() -> None:
    reg = _queued_registry()
    async with _live(reg, M38) as (server, session):
        runner = run_tools(session, reg)
        await server.send_tool_call([("c1", "book", {"room": "1"})], non_blocking=True)
        await server.wait_until(lambda: bool(_responses(server, "c1")), within=TIMEOUT)
        (answer,) = _responses(server, "c1")
        assert answer.response["error"]["type"] == "ConfigError"
        assert "no executor named 'q'" in answer.response["error"]["message"]
        await runner.aclose()


# -- answers the service forgot --------------------------------------------------------------


async def test_answers_written_after_the_last_handle_are_not_resent_to_a_fresh_session() -> None:
    """A call answered (partials and final) after the latest handle, then a fresh session:
    the service never saw that call, so neither answer may be sent again (1008)."""
    reg = ToolRegistry()

    @reg.tool(behavior="NON_BLOCKING")
    async def steps(n: int) -> AsyncIterator[dict[str, int]]:
        """Report two steps."""
        yield {"step": 1}
        yield {"step": n}

    async with _live(reg, M38) as (server, session):
        rec = _Recorder(session)
        async with run_tools(session, reg):
            await session.send_text("hi")
            await rec.until(
                lambda: any(
                    isinstance(e, ev.SessionResumptionUpdate) and e.resumable for e in rec.events
                )
            )
            await server.send_tool_call([("c1", "steps", {"n": 2})], non_blocking=True)
            await server.wait_until(lambda: len(_responses(server, "c1")) == 3, within=TIMEOUT)
            server.expire_handles()
            await server.drop()
            await rec.until(lambda: any(isinstance(e, ev.Resumed) for e in rec.events))
            (resumed,) = [e for e in rec.events if isinstance(e, ev.Resumed)]
            assert resumed.state_restored is False
            turns = rec.turns()
            await session.send_text("still there?")
            await rec.until(lambda: rec.turns() > turns)
    assert len(_responses(server, "c1")) == 3  # sent once, never again
    assert all(
        c.close_code != 1008 or c.close_reason != "Requested entity was not found."
        for c in server.connections
    )
