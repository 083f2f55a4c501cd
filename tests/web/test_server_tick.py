"""The library's uvicorn server ticks once a second (uvicorn's own: ten times) and sees a
stop at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gemini_live.web import running
from gemini_live.web._app import SERVER_TICK, _server_class, _uvicorn_server


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


async def test_an_idle_server_wakes_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks: list[int] = []
    on_tick = _server_class().on_tick

    async def counted(self: Any, counter: int) -> bool:
        ticks.append(counter)
        return bool(await on_tick(self, counter))

    monkeypatch.setattr(_server_class(), "on_tick", counted)
    async with running(_hello) as url:
        host, port = url.removeprefix("http://").split(":")
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = (await reader.read()).split(b"\r\n\r\n")[0].lower()
            writer.close()
        assert head.startswith(b"http/1.1 200") and b"\r\ndate: " in head
        # uvicorn's own loop ticks 4 times in this time (every 0.1 s); this one once
        # (at the start) unless the machine stalls for a second.
        await asyncio.sleep(0.35)
    assert SERVER_TICK == 1.0
    assert 1 <= len(ticks) <= 2
    assert all(c % 10 == 0 for c in ticks)  # each tick refreshes the date header


async def test_a_stop_wakes_the_main_loop_at_once() -> None:
    server = _uvicorn_server(_hello, "127.0.0.1", 0, "warning")
    ticks = 0

    async def on_tick(counter: int) -> bool:
        nonlocal ticks
        ticks += 1
        return bool(server.should_exit)

    server.on_tick = on_tick
    task = asyncio.create_task(server.main_loop())
    await asyncio.sleep(0)  # the task runs to its wait (on_tick does not suspend)
    assert server._gl_wait is not None
    server.should_exit = True
    # Well under the 1 s tick: the stop itself woke the loop.
    await asyncio.wait_for(task, SERVER_TICK / 2)
    assert ticks == 2
    assert server._gl_wait is None


async def test_a_stop_set_before_the_wait_is_not_missed() -> None:
    server = _uvicorn_server(_hello, "127.0.0.1", 0, "warning")
    calls = 0

    async def on_tick(counter: int) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            server.should_exit = True  # set while no wait is pending
            return False  # the loop goes round once more: no tick's sleep first
        return True

    server.on_tick = on_tick
    await asyncio.wait_for(server.main_loop(), SERVER_TICK / 2)
    assert calls == 2
