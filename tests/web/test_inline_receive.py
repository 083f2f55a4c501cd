"""The inbound counterpart of the no-wait send: ``gemini_live.web.serve``/``running`` hand a
complete message to the app's synchronous handler inside ``data_received`` (no ASGI
message, no queue, no task wake-up) while the app waits in ``receive()`` with nothing
queued; everything else takes the ASGI way, in order."""

from __future__ import annotations

import asyncio
import json
import random
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
import websockets
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode

from gemini_live._bridge import ON_MESSAGE_EXTENSION, PeerClose, PeerSocket
from gemini_live.testing import FakeLiveServer
from gemini_live.web import Relay, RelayLimits
from gemini_live.web._app import _protocols, running

from .conftest import fake_config

Handler = Callable[[bytes | str], bool]
SetHandler = Callable[[Handler | None], None]

_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class _Transport:
    """Enough of an asyncio transport for uvicorn's sansio WebSocket protocol."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closing = False
        self.paused = 0

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 80)}.get(name)


def _frame(data: bytes | str) -> bytes:
    if isinstance(data, str):
        return Frame(Opcode.TEXT, data.encode()).serialize(mask=True)
    return Frame(Opcode.BINARY, data).serialize(mask=True)


@asynccontextmanager
async def _protocol(
    app: Any, box: list[Any] | None = None, max_size: int = 1 << 20
) -> AsyncIterator[tuple[Any, _Transport]]:
    """The library's WebSocket protocol on a fake transport, upgraded, running ``app``
    (``box`` gets the protocol before the upgrade)."""
    config = uvicorn.Config(
        app, ws_per_message_deflate=False, lifespan="off", log_level="error", ws_max_size=max_size
    )
    config.load()
    state = ServerState()
    ws_class: Any = _protocols(10.0)[1]
    protocol = ws_class(config=config, server_state=state, app_state={})
    if box is not None:
        box.append(protocol)
    transport = _Transport()
    protocol.connection_made(transport)
    protocol.data_received(_UPGRADE)
    try:
        yield protocol, transport
    finally:
        protocol.connection_lost(None)
        async with asyncio.timeout(5):
            await asyncio.gather(*state.tasks, return_exceptions=True)


async def test_a_queued_message_keeps_the_order_and_the_queue_drains_first() -> None:
    """Handled inline while the app waits on an empty queue; a message the handler
    declines is queued, and the ones after it queue behind it (the app is busy with it)
    until the app waits on an empty queue again: the app sees every message, in order."""
    seen: list[tuple[str, bytes | str]] = []
    waiting = asyncio.Event()
    busy = asyncio.Event()
    gate = asyncio.Event()

    def handler(data: bytes | str) -> bool:
        if data in (b"q2", "q6"):
            return False  # e.g. a control message that needs awaiting
        seen.append(("inline", data))
        return True

    async def app(scope: Any, receive: Any, send: Any) -> None:
        set_handler: SetHandler = scope["extensions"][ON_MESSAGE_EXTENSION]
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        set_handler(handler)
        while True:
            waiting.set()
            msg = await receive()
            waiting.clear()
            if msg["type"] != "websocket.receive":
                return
            data = msg.get("bytes", msg.get("text"))
            seen.append(("asgi", data))
            if data == b"q2":
                busy.set()
                await gate.wait()  # busy with it: what arrives meanwhile queues

    async with asyncio.timeout(10), _protocol(app) as (protocol, _transport):
        await waiting.wait()
        protocol.data_received(_frame(b"a1"))
        assert seen == [("inline", b"a1")]
        protocol.data_received(_frame(b"q2"))
        await busy.wait()
        # The app holds q2: nothing is handled inline behind it.
        protocol.data_received(_frame(b"a3") + _frame("a4"))
        assert seen == [("inline", b"a1"), ("asgi", b"q2")]
        assert protocol.queue.qsize() == 2
        gate.set()
        await waiting.wait()
        while protocol.queue.qsize():  # the app takes a3 and a4 (bounded by the timeout)
            waiting.clear()
            await waiting.wait()
        protocol.data_received(_frame("a5") + _frame("q6") + _frame(b"a7") + _frame(b"a8"))
        assert seen[-2:] == [("asgi", "a4"), ("inline", "a5")]
        while len(seen) < 8:
            waiting.clear()
            await waiting.wait()
        protocol.data_received(_frame(b"a9"))
    assert seen == [
        ("inline", b"a1"),
        ("asgi", b"q2"),
        ("asgi", b"a3"),
        ("asgi", "a4"),
        ("inline", "a5"),
        ("asgi", "q6"),
        ("asgi", b"a7"),
        ("asgi", b"a8"),
        ("inline", b"a9"),
    ]


async def test_frames_split_anywhere_mixed_with_control_frames_and_fragments() -> None:
    """The protocol finds frame boundaries itself to hand whole frames to the handler:
    data cut at random places, pings, fragmented messages, texts and messages the handler
    declines all reach the app (inline or through the queue) whole, once and in order,
    and every ping is answered."""
    rng = random.Random(24)
    seen: list[bytes | str] = []
    inline: list[bytes] = []
    idle = asyncio.Event()

    def handler(data: bytes | str) -> bool:
        if isinstance(data, str) or data[:1] == b"d":
            return False  # declined: the app takes it through the queue
        seen.append(data)
        inline.append(data)
        return True

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        scope["extensions"][ON_MESSAGE_EXTENSION](handler)
        queue = protocol_box[0].queue
        while True:
            if not queue.qsize():
                idle.set()
            msg = await receive()
            idle.clear()
            if msg["type"] != "websocket.receive":
                return
            seen.append(msg.get("bytes", msg.get("text")))

    protocol_box: list[Any] = []
    want: list[bytes | str] = []
    wire = bytearray()
    pings = 0
    for i in range(400):
        roll = rng.random()
        size = rng.choice((0, 1, 7, 125, 126, 640, 1000, 65535 // 8, 70_000))
        body = bytes([i % 251]) * size
        if roll < 0.55:
            data = (b"d" if rng.random() < 0.2 else b"b") + body
            wire += _frame(data)
            want.append(data)
        elif roll < 0.7:
            text = f"t{i} é✓"
            wire += _frame(text)
            want.append(text)
        elif roll < 0.85:
            wire += Frame(Opcode.PING, b"p%d" % i).serialize(mask=True)
            pings += 1
        else:
            wire += Frame(Opcode.BINARY, b"f" + body[:300], fin=False).serialize(mask=True)
            wire += Frame(Opcode.CONT, b"-", fin=False).serialize(mask=True)
            wire += Frame(Opcode.PING, b"q").serialize(mask=True)  # between fragments
            pings += 1
            wire += Frame(Opcode.CONT, b"end", fin=True).serialize(mask=True)
            want.append(b"f" + body[:300] + b"-end")
    async with asyncio.timeout(30), _protocol(app, protocol_box) as (protocol, transport):
        await idle.wait()
        pos = 0
        while pos < len(wire):
            cut = pos + rng.choice((1, 2, 3, 5, 8, 13, 100, 700, 5000, 100_000))
            protocol.data_received(bytes(wire[pos:cut]))
            pos = cut
            if protocol.queue.qsize():
                idle.clear()
                await idle.wait()  # the app took what was queued
        assert seen == want
        assert len(inline) > 30  # many binary messages were handled inline
        assert protocol._gl_track  # the boundaries were tracked throughout
        assert bytes(transport.written).count(b"\x8a") >= pings  # pongs (a rough count)


async def test_a_handler_that_raises_ends_in_the_apps_receive() -> None:
    """The protocol survives a raising handler: the exception comes out of the app's
    next ``receive()`` in place of the message, and the handler is no longer used."""
    outcome: list[Any] = []
    waiting = asyncio.Event()
    calls: list[bytes | str] = []

    def handler(data: bytes | str) -> bool:
        calls.append(data)
        if data == b"bad":
            raise PeerClose(4429, "rate limit: too many messages")
        return True

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["extensions"][ON_MESSAGE_EXTENSION](handler)
        await receive()
        await send({"type": "websocket.accept"})
        try:
            waiting.set()
            await receive()
        except PeerClose as exc:
            outcome.append((exc.code, exc.reason))
        waiting.set()
        msg = await receive()
        outcome.append(msg.get("bytes"))
        finished.set()

    finished = asyncio.Event()
    async with asyncio.timeout(10), _protocol(app) as (protocol, _transport):
        await waiting.wait()
        waiting.clear()
        protocol.data_received(_frame(b"good") + _frame(b"bad"))
        await waiting.wait()
        protocol.data_received(_frame(b"after"))
        await finished.wait()  # "after" came through the queue
    assert calls == [b"good", b"bad"]
    assert outcome == [(4429, "rate limit: too many messages"), b"after"]


def _watched(relay: Relay, log: list[str], mode: str) -> Any:
    """``relay`` as an ASGI app whose inline handler is watched (``log``): ``mode``
    "inline" as served, "mixed" declining every third audio message before the relay
    sees it (it takes the ASGI way), "absent" without the extension (another server)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        extensions = scope.setdefault("extensions", {})
        set_handler: SetHandler | None = extensions.get(ON_MESSAGE_EXTENSION)
        if mode == "absent":
            extensions.pop(ON_MESSAGE_EXTENSION, None)
        elif set_handler is not None:
            count = 0

            def wrap(handler: Handler | None) -> None:
                if handler is None:
                    set_handler(None)
                    return

                def watched(data: bytes | str) -> bool:
                    nonlocal count
                    if mode == "mixed" and isinstance(data, bytes):
                        count += 1
                        if count % 3 == 0:
                            log.append("declined")
                            return False
                    try:
                        handled = handler(data)
                    except Exception:
                        log.append("raised")
                        raise
                    log.append("inline" if handled else "queued")
                    return handled

                set_handler(watched)

            extensions[ON_MESSAGE_EXTENSION] = wrap
        await relay(scope, receive, send)

    return app


async def _until(ws: Any, kind: str) -> None:
    while True:
        msg = await ws.recv()
        if isinstance(msg, str) and json.loads(msg)["type"] == kind:
            return


def _numbered(i: int) -> bytes:
    """20 ms of PCM whose samples all carry ``i`` (so order and loss show)."""
    return struct.pack("<320h", *([i * 97 - 15000] * 320))


@pytest.mark.parametrize("mode", ["inline", "mixed", "absent"])
@pytest.mark.parametrize("turn_detection", ["server", "manual"])
async def test_the_relay_forwards_every_frame_in_order(mode: str, turn_detection: str) -> None:
    """Audio after the session opened reaches the service whole and in order whether
    the relay handles it inline, partly through the ASGI queue, or (another server)
    only through it."""
    log: list[str] = []
    sent = [_numbered(i) for i in range(300)]
    async with FakeLiveServer() as server:
        fast = RelayLimits(audio_bytes_per_second=1e9, audio_burst_bytes=10**9)
        relay = Relay(
            fake_config(server),
            authorize=Relay.ALLOW_ANYONE,
            turn_detection=turn_detection,  # type: ignore[arg-type]
            limits=fast,
        )
        async with running(_watched(relay, log, mode)) as base:
            url = base.replace("http://", "ws://") + "/live"
            async with asyncio.timeout(30):
                origin: Any = base
                async with websockets.connect(url, origin=origin) as ws:
                    await _until(ws, "ready")
                    if turn_detection == "manual":
                        await ws.send(json.dumps({"type": "activity_start"}))
                    else:
                        await ws.send(sent[0])  # opens the session (the ASGI way)
                    await _until(ws, "state")
                    for frame in sent[turn_detection == "server" :]:
                        await ws.send(frame)
                    await ws.send(json.dumps({"type": "ping", "id": 1}))
                    await _until(ws, "pong")
                    want = b"".join(sent)
                    await server.wait_until(lambda: server.connections[0].audio_bytes >= len(want))
                    assert bytes(server.connections[0].audio) == want
                    info = relay.connections[1]
                    assert info.audio_in_bytes == len(want)
    if mode == "absent":
        assert log == []
    else:
        assert log.count("inline") > 0
        assert set(log) <= {"inline", "queued", "declined"}
    if mode == "mixed":  # inline again after a message took the queue
        assert "inline" in log[log.index("declined") :]


@pytest.mark.parametrize("mode", ["inline", "absent"])
async def test_a_limit_hit_inline_closes_as_before(mode: str) -> None:
    """The message rate limit hit inside the read callback closes the connection with
    the code and reason the relay's task used (and uses without the extension)."""
    log: list[str] = []
    limits = RelayLimits(messages_per_second=0.01, message_burst=40)
    async with FakeLiveServer() as server:
        relay = Relay(
            fake_config(server),
            authorize=Relay.ALLOW_ANYONE,
            turn_detection="server",
            limits=limits,
        )
        async with running(_watched(relay, log, mode)) as base:
            url = base.replace("http://", "ws://") + "/live"
            async with asyncio.timeout(30):
                origin: Any = base
                async with websockets.connect(url, origin=origin) as ws:
                    await _until(ws, "ready")
                    await ws.send(_numbered(0))
                    await _until(ws, "state")
                    with pytest.raises(websockets.ConnectionClosed):
                        for i in range(1, 200):
                            await ws.send(_numbered(i))
                        while True:
                            await ws.recv()
                    assert ws.close_code == 4429
                    assert ws.close_reason == "rate limit: too many messages"
            await relay.wait_until(lambda: relay.stats.active == 0)
    assert relay.finished[-1].close == (4429, "rate limit: too many messages")
    if mode == "inline":
        assert "raised" in log


class _Peer(PeerSocket):
    def __init__(self, scope: Any, receive: Any, send: Any) -> None:
        super().__init__(scope, receive, send, close_timeout=1.0)
        self.log: list[str] = []

    def inline(self, data: bytes | str) -> bool:
        if data == b"later":
            self.log.append("began")
            self.finish_later(self._rest_of_it)
            return False
        self.log.append(f"inline {data!r}")
        return True

    async def _rest_of_it(self) -> None:
        await asyncio.sleep(0)  # it may wait (a write under backpressure)
        self.log.append("finished")


async def test_a_peer_finishes_a_message_it_began_before_the_next() -> None:
    """``finish_later``: the message arrives through ``receive`` (queued first), which
    awaits the rest of its work and returns the message after it."""
    handler: list[Handler | None] = []
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive() -> dict[str, Any]:
        return await queue.get()

    async def send(_message: Any) -> None:
        pass

    scope = {"type": "websocket", "extensions": {ON_MESSAGE_EXTENSION: handler.append}}
    peer = _Peer(scope, receive, send)
    assert peer.receive_inline()
    entry = handler[0]
    assert entry is not None
    assert entry(b"a") is True
    assert entry(b"later") is False  # the server queues it
    queue.put_nowait({"type": "websocket.receive", "bytes": b"later"})
    queue.put_nowait({"type": "websocket.receive", "bytes": b"b"})
    async with asyncio.timeout(5):
        msg = await peer.receive()
    assert msg == {"type": "websocket.receive", "bytes": b"b"}
    assert peer.log == ["inline b'a'", "began", "finished"]
    peer._stop_inline()
    assert handler[-1] is None
    assert not _Peer({"type": "websocket"}, receive, send).receive_inline()


async def test_a_frame_over_the_size_limit_still_closes_1009() -> None:
    """A header announcing more than ``ws_max_size``: the frame goes to websockets, which
    closes the connection 1009 as ever (nothing is held for it); the handler never sees it."""
    calls: list[bytes | str] = []
    closed = asyncio.Event()
    waiting = asyncio.Event()

    def handler(data: bytes | str) -> bool:
        calls.append(data)
        return True

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        scope["extensions"][ON_MESSAGE_EXTENSION](handler)
        waiting.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass
        closed.set()

    async with asyncio.timeout(10), _protocol(app, max_size=1000) as (protocol, transport):
        await waiting.wait()
        protocol.data_received(_frame(b"small"))
        frame = _frame(b"x" * 2000)
        protocol.data_received(frame[:10])  # the header says too big
        await closed.wait()
        assert not protocol._gl_track and protocol._gl_tail == b""
        assert b"\x88" in bytes(transport.written)  # a close frame
        assert (1009).to_bytes(2, "big") in bytes(transport.written)
    assert calls == [b"small"]


class _NowaitSession:
    """What the relay's inline path uses of a session (turn detection by the service)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_audio_nowait(self, pcm: bytes, *, sample_rate: int | None = None) -> bool:
        self.sent.append(pcm)
        return True


async def test_the_relay_registers_inline_itself_with_the_entry_checks() -> None:
    """The server calls the relay's ``inline`` with no wrapper in between; it declines
    (changing nothing) once the connection is closed or a message it began waits in
    ``receive``, as the wrapper made it."""
    from gemini_live.web._relay import _Connection

    handler: list[Handler | None] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("not called")

    async def send(_message: Any) -> None:
        pass

    relay = Relay(fake_config_none, authorize=Relay.ALLOW_ANYONE, turn_detection="server")
    scope = {"type": "websocket", "path": "/live", "headers": [], "extensions": {}}
    scope["extensions"] = {ON_MESSAGE_EXTENSION: handler.append}
    conn = _Connection(relay, scope, receive, send)
    session = _NowaitSession()
    conn.session = session  # type: ignore[assignment]
    assert conn.receive_inline()
    assert handler == [conn.inline]
    entry = handler[0]
    assert entry is not None
    chunk = _numbered(1)
    assert entry(chunk) is True
    conn._rest = conn._drain  # a message it began waits in receive()
    assert entry(chunk) is False
    conn._rest = None
    conn.closed = True
    assert entry(chunk) is False
    assert session.sent == [chunk]
    assert conn.info.audio_in_bytes == len(chunk)


def fake_config_none(_conn: Any) -> Any:
    raise AssertionError("no session is opened here")
