"""The arq executor end to end: a real ``redis-server``, a real arq worker process, the
owner of the conversation killed with SIGKILL while the job runs, and a new owner that
collects the result from Redis and delivers it once."""

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
from gemini_live.store import SqliteStore
from gemini_live.testing import FakeLiveServer
from gemini_live.tools import (
    ArqExecutor,
    ExecutorCall,
    RemoteToolError,
    ToolRegistry,
    arq_worker_settings,
    run_tools,
)
from store.conftest import redis_url  # noqa: F401  (the fixture)

from .test_durable_tasks import SRC, _kill, _line, _outcomes
from .test_long_running import M38, TIMEOUT, _Recorder

redis = pytest.importorskip("redis.asyncio")

# The worker's tools: `render` waits for a go signal pushed on a Redis list.
_WORKER_MODULE = textwrap.dedent(
    """
    import os
    import redis.asyncio
    from gemini_live.tools import ToolError, ToolRegistry, arq_worker_settings

    registry = ToolRegistry()

    @registry.tool(long_running=True, budget=1.0)
    async def render(scene: str) -> dict:
        "Render a scene (slow)."
        client = redis.asyncio.from_url(os.environ["GL_REDIS"])
        try:
            await client.blpop(["go:" + scene], timeout=30)
        finally:
            await client.aclose()
        if scene == "broken":
            raise ToolError("the renderer is out of ink", hint="try another scene")
        return {"rendered": scene, "pid": os.getpid()}

    WorkerSettings = arq_worker_settings(registry, os.environ["GL_REDIS"])
    """
)

# The first owner of the conversation: declares `render` on the arq executor.
_OWNER = textwrap.dedent(
    """
    import asyncio, sys, time
    import gemini_live as gl
    from gemini_live import events as ev
    from gemini_live.store import SqliteStore
    from gemini_live.tools import ArqExecutor, ToolRegistry

    url, db, redis_url = sys.argv[1], sys.argv[2], sys.argv[3]

    async def main():
        loop = asyncio.get_running_loop()
        registry = ToolRegistry()

        @registry.tool(long_running=True, budget=1.0, executor=ArqExecutor(redis_url))
        async def render(scene: str) -> dict:
            "Render a scene (slow)."
            raise AssertionError("runs on the arq worker, not here")

        store = SqliteStore(db, lease_ttl=1.0)
        s = await gl.connect(
            url=url, model="models/gemini-3.8-live", output_audio_transcription=True,
            conversation="arq", store=store, backend="websockets", tools=registry.tools(),
        )
        link = s.conversation

        def on_task(task, what):
            if what == "started":
                t = time.time()
                async def report():
                    async with asyncio.timeout(10):
                        await link.wait_saved(lambda: (link.saved_at or 0) >= t)
                    print("STARTED", task.job, flush=True)
                loop.create_task(report())

        s.run_tools(registry, on_task=on_task)
        await s.send_text("hello")
        async with asyncio.timeout(10):
            async for event in s:
                if isinstance(event, ev.SessionResumptionUpdate) and event.resumable:
                    break
            await link.wait_saved(lambda: (link.saved_at or 0) >= link.handle_at)
        print("READY", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


@pytest.fixture
async def server() -> AsyncIterator[FakeLiveServer]:
    async with FakeLiveServer(reply_chunks=1) as srv:
        yield srv


@pytest.fixture
async def worker(redis_url: str, tmp_path: Path) -> AsyncIterator[str]:  # noqa: F811
    """A real arq worker process (``python -m arq``) running the worker module."""
    (tmp_path / "gl_arq_tools.py").write_text(_WORKER_MODULE)
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{tmp_path}", "GL_REDIS": redis_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "arq",
        "gl_arq_tools.WorkerSettings",
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield redis_url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _go(redis_url: str, scene: str) -> None:  # noqa: F811
    client = redis.from_url(redis_url)
    try:
        await client.rpush(f"go:{scene}", "1")
    finally:
        await client.aclose()


def _owner_registry(executor: ArqExecutor) -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool(long_running=True, budget=1.0, executor="arq")
    async def render(scene: str) -> dict[str, Any]:
        """Render a scene (slow)."""
        raise AssertionError("runs on the arq worker, not here")

    return reg


async def test_owner_killed_while_the_arq_job_runs_new_owner_delivers_once(
    server: FakeLiveServer,
    worker: str,
    tmp_path: Path,
) -> None:
    redis_url = worker  # noqa: F811
    db = tmp_path / "conv.db"
    owner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _OWNER,
        server.url,
        str(db),
        redis_url,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    try:
        assert await _line(owner) == "READY"
        await server.send_tool_call([("c1", "render", {"scene": "city"})], non_blocking=True)
        started = await _line(owner)
        assert started.startswith("STARTED ") and started != "STARTED None", started
        job_id = started.split()[1]
    finally:
        await _kill(owner)

    executor = ArqExecutor(redis_url)
    reg = _owner_registry(executor)
    store = SqliteStore(db, lease_ttl=1.0)
    async with await gl.connect(
        url=server.url,
        model=M38,
        output_audio_transcription=True,
        conversation="arq",
        store=store,
        backend="websockets",
        tools=reg.tools(),
    ) as session:
        rec = _Recorder(session)
        runner = run_tools(session, reg, on_task=rec.on_task, executors={"arq": executor})
        (task,) = runner.tasks
        assert task.state == "running" and task.job == job_id and task.executor == "arq"
        assert runner.stats.resumed == 1
        await _go(redis_url, "city")  # the worker's job ends now, the owner is gone
        await rec.until(lambda: ("T1", "delivered") in rec.task_events)
        assert task.state == "finished"
        assert task.result is not None and task.result["rendered"] == "city"
        assert task.result["pid"] not in (os.getpid(), owner.pid)
        await runner.aclose()
    await executor.aclose()
    await store.aclose()
    outcomes = _outcomes(server)
    assert len(outcomes) == 1 and "city" in outcomes[0], outcomes


async def test_arq_executor_errors_and_cancel(worker: str) -> None:
    redis_url = worker  # noqa: F811
    executor = ArqExecutor(redis_url)
    try:
        assert "arq" in repr(executor)
        job = await executor.submit(ExecutorCall("render", {"scene": "broken"}, "c1", "T1"))
        await _go(redis_url, "broken")
        with pytest.raises(RemoteToolError) as info:
            async with asyncio.timeout(TIMEOUT * 2):
                await executor.result(job)
        assert info.value.body["message"] == "the renderer is out of ink"
        assert info.value.body["hint"] == "try another scene"
        bad = await executor.submit(ExecutorCall("render", {"nope": 1}, "c2", "T2"))
        with pytest.raises(RemoteToolError, match="invalid arguments"):
            async with asyncio.timeout(TIMEOUT * 2):
                await executor.result(bad)
        slow = await executor.submit(ExecutorCall("render", {"scene": "never"}, "c3", "T3"))
        assert await executor.cancel(slow) is True
        with pytest.raises(asyncio.CancelledError):  # arq stores the abort as a cancellation
            async with asyncio.timeout(TIMEOUT * 2):
                await executor.result(slow)
    finally:
        await executor.aclose()


def test_arq_configuration_errors() -> None:
    with pytest.raises(gl.ConfigError):
        ArqExecutor("http://not-redis")
    with pytest.raises(gl.ConfigError):
        ArqExecutor("redis://127.0.0.1:1/0", name="inline")
    secret = ArqExecutor("redis://:hunter2secret@127.0.0.1:1/0")
    assert "hunter2secret" not in repr(secret)
    settings = arq_worker_settings(ToolRegistry(), "redis://127.0.0.1:1/0")
    assert settings.allow_abort_jobs is True  # type: ignore[attr-defined]
    reg = ToolRegistry()
    with pytest.raises(gl.ConfigError, match="executor"):
        reg.add(lambda: None, name="x", executor=object())  # type: ignore[arg-type]
