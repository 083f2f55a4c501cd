"""A connection the library's server accepts on asyncio's own loop reads at most
``READ_BYTES`` at once (asyncio's 256 KiB read costs an mmap per read under glibc), from
the HTTP request through the WebSocket upgrade."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gemini_live._bridge import ABORT_EXTENSION
from gemini_live.transport._common import READ_BYTES, small_reads
from gemini_live.web import running
from gemini_live.web._app import CoalescingTransport


def test_small_reads_caps_asyncio_transports_only() -> None:
    class Selector:
        max_size = 256 * 1024

    class Small:
        max_size = 4096

    class Other:
        pass

    big, small, other = Selector(), Small(), Other()
    small_reads(big)
    small_reads(small)
    small_reads(other)
    assert big.max_size == READ_BYTES < 128 * 1024
    assert small.max_size == 4096
    assert not hasattr(other, "max_size")


async def test_a_served_websocket_reads_in_small_pieces() -> None:
    if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
        pytest.skip("uvloop's transports read into their own buffer")  # pragma: no cover
    seen: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        protocol = scope["extensions"][ABORT_EXTENSION].__self__
        proxy = protocol.transport
        assert isinstance(proxy, CoalescingTransport)
        seen.set_result(proxy.transport)
        message = await receive()
        await send({"type": "websocket.send", "bytes": message["bytes"]})
        await send({"type": "websocket.close", "code": 1000})

    from websockets.asyncio.client import connect

    async with (
        running(app) as base,
        asyncio.timeout(10),
        connect(base.replace("http", "ws") + "/") as ws,
    ):
        transport = await seen
        assert transport.max_size == READ_BYTES
        payload = bytes(range(256)) * 1024  # more than one read's worth
        await ws.send(payload)
        assert await ws.recv() == payload
