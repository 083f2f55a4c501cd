"""What an idle session holds (issue 24, W3): its runner task and nothing that waits
beside it, and no empty deque in its meters or history (each one is ~0.7 KiB, and a
process may hold hundreds of idle sessions)."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest

import gemini_live as gl
from gemini_live.history import History
from gemini_live.metrics import LatencyTracker, TurnUsage, UsageMeter
from gemini_live.testing import FakeLiveServer

from .conftest import config_for

#: Tasks of the test's servers (the fake's memory peer, the websockets server's handler).
_SERVER_CODE = ("gemini_live/testing/", "websockets/asyncio/server.py")


def _client_tasks(before: set[asyncio.Task[object]]) -> list[str]:
    names = []
    for task in asyncio.all_tasks() - before:
        coro = task.get_coro()
        code = getattr(coro, "cr_code", None)
        where = code.co_filename if code is not None else ""
        if not any(part in where for part in _SERVER_CODE):
            names.append(getattr(coro, "__qualname__", repr(coro)))
    return sorted(names)


async def test_an_idle_session_runs_its_runner_and_no_wake_task(
    server: FakeLiveServer, backend_name: str
) -> None:
    before = asyncio.all_tasks()
    async with gl.connect(config_for(server, backend_name)) as session:
        async with asyncio.timeout(5):
            first = await session.next_event()
        assert isinstance(first, gl.events.SetupComplete)
        # The runner is waiting now (the connection is served): for a poke, the socket's
        # close or a timer, with no task of its own for that wait.
        await asyncio.sleep(0)
        reader = ["WebsocketsTransport._read"] if backend_name == "websockets" else []
        assert _client_tasks(before) == sorted(["Connector._run", *reader])
        # Still woken by what it waits for: a planned close ends it at once.
    assert session.status == "closed"


async def test_a_poke_wakes_the_idle_runner(server: FakeLiveServer) -> None:
    async with gl.connect(config_for(server, "memory")) as session:
        await asyncio.sleep(0)
        connector = session._connector
        wake = connector._wake
        assert wake is not None and not wake.done()
        armed = asyncio.Event()
        arm = connector._arm

        def arm_and_tell() -> asyncio.Future[None]:
            armed.set()
            return arm()

        connector._arm = arm_and_tell  # type: ignore[method-assign]
        connector.poke()
        assert wake.done()
        connector.poke()  # nothing waits now: nothing happens
        async with asyncio.timeout(5):
            await armed.wait()  # the runner woke and took up its next wait
        assert connector._wake is not None and connector._wake is not wake
        assert not connector._wake.done()


def test_unused_meters_and_history_hold_no_deque() -> None:
    for holder in (UsageMeter(), LatencyTracker()):
        assert not any(isinstance(v, deque) for v in vars(holder).values())
        turns = holder.turns  # made at the first use, with the bound asked for
        assert isinstance(turns, deque) and turns.maxlen == 1000 and not turns
        assert holder.turns is turns
    replaced: deque[TurnUsage] = deque(maxlen=2)
    meter = UsageMeter()
    meter.turns = replaced  # still assignable
    assert meter.turns is replaced
    assert UsageMeter(max_turns=None).turns.maxlen is None
    assert LatencyTracker(max_turns=3).turns.maxlen == 3
    with pytest.raises(ValueError):
        UsageMeter(max_turns=-1)  # still refused at once
    with pytest.raises(TypeError):
        LatencyTracker(max_turns="3")  # type: ignore[arg-type]
    pending = History()._pending
    assert not any(isinstance(t.parts, deque) for t in (pending.user, pending.model))
