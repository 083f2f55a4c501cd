"""The no-wait send of ``gemini_live.web.serve``/``running``: a WebSocket message written
straight to the transport (no ASGI message, no ``send`` coroutines) when the connection
can take it at once; the ASGI ``send`` otherwise, in the order of the calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import websockets

from gemini_live._bridge import SEND_NOWAIT_EXTENSION, PeerSocket
from gemini_live.web import Relay
from gemini_live.web._app import frame_header, running

from .conftest import fake_config, silence, speech

Nowait = Callable[[bytes | str], bool]

SIZES = (0, 1, 125, 126, 65535, 65536, 200_000)


def test_frame_header_lengths() -> None:
    assert frame_header(0x2, 0) == b"\x82\x00"
    assert frame_header(0x1, 125) == b"\x81\x7d"
    assert frame_header(0x2, 126) == b"\x82\x7e\x00\x7e"
    assert frame_header(0x2, 65535) == b"\x82\x7e\xff\xff"
    assert frame_header(0x2, 65536) == b"\x82\x7f" + (65536).to_bytes(8, "big")


async def test_nowait_messages_arrive_whole_and_in_order_with_asgi_sends() -> None:
    """Binary and text messages of every length class, mixed with ASGI sends: the
    browser's WebSocket client reads each one whole, in the order they were sent."""
    results: list[bool] = []
    declined: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nowait: Nowait = scope["extensions"][SEND_NOWAIT_EXTENSION]
        assert (await receive())["type"] == "websocket.connect"
        declined.append(nowait(b"too early"))  # not accepted yet: declined
        await send({"type": "websocket.accept"})
        for n in SIZES:
            results.append(nowait(bytes([n % 251]) * n))
            await send({"type": "websocket.send", "text": f"asgi {n}"})
            results.append(nowait(f"é✓ {n}"))
        assert (await receive())["text"] == "bye"
        await send({"type": "websocket.close", "code": 1000})
        declined.append(nowait(b"after the close"))

    async with running(app) as base:
        url = base.replace("http://", "ws://") + "/ws"
        async with asyncio.timeout(20):
            async with websockets.connect(url, max_size=None) as ws:
                got = [await ws.recv() for _ in range(3 * len(SIZES))]
                await ws.send("bye")
                with pytest.raises(websockets.ConnectionClosedOK):
                    await ws.recv()
    want: list[bytes | str] = []
    for n in SIZES:
        want += [bytes([n % 251]) * n, f"asgi {n}", f"é✓ {n}"]
    assert got == want
    assert results == [True] * (2 * len(SIZES))
    assert declined == [False, False]


async def test_nowait_declines_while_writes_are_paused() -> None:
    """A socket whose buffer is full (the protocol's writes paused): declined, so the
    caller waits in the ASGI ``send`` instead of piling up bytes."""
    outcome: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nowait: Nowait = scope["extensions"][SEND_NOWAIT_EXTENSION]
        protocol: Any = nowait.__self__  # type: ignore[attr-defined]
        await receive()
        await send({"type": "websocket.accept"})
        protocol.pause_writing()
        outcome.append(nowait(b"held"))
        protocol.resume_writing()
        outcome.append(nowait(b"sent"))
        await receive()

    async with running(app) as base:
        url = base.replace("http://", "ws://") + "/ws"
        async with asyncio.timeout(20):
            async with websockets.connect(url) as ws:
                assert await ws.recv() == b"sent"
    assert outcome == [False, True]


class _Peer(PeerSocket):
    pass


async def _next_iteration() -> None:
    fut = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(fut.set_result, None)
    await asyncio.wait_for(fut, 5)


async def test_send_data_keeps_the_order_behind_a_waiting_send() -> None:
    """While an ASGI send waits (the lock is held), ``send_data`` does not overtake it
    through the no-wait path; once nothing waits, it writes at once."""
    asgi: list[Any] = []
    direct: list[bytes | str] = []
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def send(message: Any) -> None:
        if message.get("bytes") == b"first":
            entered.set()
            await gate.wait()
        asgi.append(message.get("bytes", message.get("text")))

    def nowait(data: bytes | str) -> bool:
        direct.append(data)
        return True

    async def receive() -> Any:
        raise AssertionError("not read")

    scope = {"type": "websocket", "extensions": {SEND_NOWAIT_EXTENSION: nowait}}
    peer = _Peer(scope, receive, send, close_timeout=1.0)
    async with asyncio.timeout(5):
        first = asyncio.create_task(
            peer.send_message({"type": "websocket.send", "bytes": b"first"})
        )
        await entered.wait()  # the first send holds the lock, waiting
        second = asyncio.create_task(peer.send_data("second"))
        await _next_iteration()  # the second one ran up to the lock
        assert not second.done() and asgi == [] and direct == []
        gate.set()
        await asyncio.gather(first, second)
        assert asgi == [b"first", "second"] and direct == []
        await peer.send_data(b"third")
        await peer.send_data("fourth")
    assert direct == [b"third", "fourth"] and asgi == [b"first", "second"]


async def test_the_relay_sends_replies_without_the_asgi_send() -> None:
    """Under the library's server the relay's replies to the browser take the no-wait
    path: the ASGI ``send`` carries the accept and the close only."""
    from gemini_live.testing import FakeLiveServer

    asgi_sends: list[str] = []

    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=Relay.ALLOW_ANYONE)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            async def counted(message: Any) -> None:
                asgi_sends.append(message["type"])
                await send(message)

            await relay(scope, receive, counted)

        async with running(app) as base:
            url = base.replace("http://", "ws://") + "/live"
            async with asyncio.timeout(20):
                origin: Any = base  # the page's own origin
                async with websockets.connect(url, origin=origin) as ws:
                    kinds: list[str] = []
                    audio = 0
                    for chunk in (speech(400), silence(800)):
                        for i in range(0, len(chunk), 640):
                            await ws.send(chunk[i : i + 640])
                    while "turn_complete" not in kinds:
                        msg = await ws.recv()
                        if isinstance(msg, bytes):
                            audio += 1
                        else:
                            kinds.append(msg.split('"type":"', 1)[1].split('"', 1)[0])
    assert audio > 0 and "ready" in kinds and "vad" in kinds
    assert "websocket.send" not in asgi_sends
    assert asgi_sends[0] == "websocket.accept"
