"""bench.loadgen: the density bench's cheap clients frame, mask, count and echo as the
``websockets`` clients did, and the real relay and bridge accept them (inline and the
ASGI way)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.utils import accept_key as ws_accept_key

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import density, loadgen  # noqa: E402
from bench.common import live_url, run_loop, uvloop_available  # noqa: E402
from bench.procs import ServerProc  # noqa: E402

import gemini_live as gl  # noqa: E402
from gemini_live._bridge import ON_MESSAGE_EXTENSION  # noqa: E402

pytestmark = [pytest.mark.bench, pytest.mark.timeout(60)]


def _server_reads(data: bytes) -> list[Frame]:
    """The frames a server (websockets, which checks the masking) reads from ``data``."""
    server = ServerProtocol(state=State.OPEN, max_size=None)
    server.receive_data(data)
    frames: list[Frame] = []
    for event in server.events_received():
        assert isinstance(event, Frame)
        frames.append(event)
    return frames


def _server_sends(*calls: tuple[str, Any]) -> bytes:
    """What a server (websockets) writes for ``(method, args)`` calls."""
    server = ServerProtocol(state=State.OPEN)
    for name, args in calls:
        getattr(server, name)(*args)
    return b"".join(server.data_to_send())


# -- framing ------------------------------------------------------------------------------


def test_xor_mask_is_rfc_6455_masking_on_random_input() -> None:
    rng = random.Random(24)
    for n in [0, 1, 2, 3, 4, 5, 7, 640, 1281, *(rng.randrange(1, 5000) for _ in range(50))]:
        payload = rng.randbytes(n)
        key = rng.randbytes(4)
        expected = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        assert loadgen.xor_mask(payload, key) == expected
        assert loadgen.xor_mask(expected, key) == payload


@pytest.mark.parametrize("opcode", [loadgen.OP_BINARY, loadgen.OP_TEXT])
def test_client_frames_read_as_the_payload_by_a_server(opcode: int) -> None:
    """Every length form (7-bit, 16-bit, 64-bit), masked with a non-zero key: the
    server unmasks the very payload."""
    rng = random.Random(opcode)
    sizes = [0, 1, 125, 126, 127, 640, 1280, 65535, 65536, 70000]
    sizes += [rng.randrange(0, 3000) for _ in range(30)]
    payloads = [
        rng.randbytes(n)
        if opcode == loadgen.OP_BINARY
        else "".join(rng.choice('abc{}":,é') for _ in range(n)).encode()[:n]
        for n in sizes
    ]
    payloads = [p for p in payloads if opcode == loadgen.OP_BINARY or _utf8(p)]
    wire = [loadgen.client_frame(opcode, p) for p in payloads]
    for frame, payload in zip(wire, payloads, strict=True):
        key_at = len(frame) - len(payload) - 4
        assert frame[1] & 0x80 and frame[key_at : key_at + 4] != b"\0\0\0\0"
        if len(payload) >= 8:
            assert frame[key_at + 4 :] != payload  # sent masked, not as it is
    read = _server_reads(b"".join(wire))
    assert [f.data for f in read] == payloads
    assert all(f.fin and f.opcode == Opcode(opcode) for f in read)


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_client_frame_refuses_a_key_of_another_length() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        loadgen.client_frame(loadgen.OP_BINARY, b"x", b"abc")


def test_upgrade_request_carries_the_headers_and_the_query() -> None:
    req = loadgen.upgrade_request(
        "ws://127.0.0.1:8123/twilio?c=7", "a2V5", [("X-Twilio-Signature", "sig=")]
    )
    lines = req.decode().split("\r\n")
    assert lines[0] == "GET /twilio?c=7 HTTP/1.1"
    assert "Host: 127.0.0.1:8123" in lines and "X-Twilio-Signature: sig=" in lines
    assert "Sec-WebSocket-Key: a2V5" in lines and req.endswith(b"\r\n\r\n")
    # The accept key of RFC 6455's own example, as websockets computes it too.
    assert loadgen.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert loadgen.accept_key("a2V5") == ws_accept_key("a2V5")


# -- reading ------------------------------------------------------------------------------


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def _splits(data: bytes, rng: random.Random) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 2, 3, 7, 64, 1000, 5000])
        yield data[pos : pos + step]
        pos += step


def _answer(key: str) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {loadgen.accept_key(key)}\r\n\r\n"
    ).encode()


def _conn(cls: type[loadgen.Conn], *extra: Any) -> tuple[loadgen.Conn, _Transport]:
    loop = asyncio.get_running_loop()
    stats = loadgen.Stats(on=True)
    clock = loadgen.Clock(loop, 0.02, [b"x"], stats, slots=2)
    clock.groups = [[], []]
    conn = cls(b"GET / HTTP/1.1\r\n\r\n", "a2V5a2V5a2V5a2V5a2V5YQ==", stats, clock, *extra)
    transport = _Transport()
    conn.connection_made(transport)
    return conn, transport


@pytest.mark.parametrize("seed", range(5))
async def test_browser_counts_binary_messages_and_answers_pings_however_split(seed: int) -> None:
    rng = random.Random(seed)
    conn, transport = _conn(loadgen.Browser)
    audio = [rng.randbytes(rng.choice([0, 10, 1920, 70000])) for _ in range(20)]
    calls: list[tuple[str, Any]] = [("send_text", (b'{"type":"ready","protocol":1}',))]
    pings = []
    for i, a in enumerate(audio):
        calls.append(("send_binary", (a,)))
        if i % 4 == 0:
            pings.append(rng.randbytes(4))
            calls.append(("send_ping", (pings[-1],)))
        if i % 5 == 0:
            calls.append(("send_text", (b'{"type":"output_transcript","text":"t"}',)))
    # A fragmented message counts once, a ping between its fragments is answered.
    calls += [("send_binary", (b"ab", False)), ("send_continuation", (b"cd", True))]
    wire = _answer(conn.key) + _server_sends(*calls)
    for part in _splits(wire, rng):
        conn.data_received(part)
    assert conn.stats.errors == 0, conn.stats.first_error
    assert conn.stats.audio == len(audio) + 1
    assert conn.opened.done() and conn.slot >= 0  # joined the clock on "ready"
    assert conn.filled == 0 and len(conn.rbuf) > loadgen.READ_BUFFER  # grown for 70000
    pongs = _server_reads(b"".join(transport.written[1:]))
    assert [(f.opcode, f.data) for f in pongs] == [(Opcode.PONG, p) for p in pings]


async def test_call_counts_media_frames_as_before_and_echoes_every_mark() -> None:
    rng = random.Random(7)
    conn, transport = _conn(loadgen.Call, loadgen.client_frame(1, b"start"), density.SID)
    texts: list[str] = []
    marks: list[str] = []
    for i in range(40):
        payload = base64.b64encode(rng.randbytes(160 * rng.randint(1, 3))).decode()
        texts.append(
            json.dumps(
                {"event": "media", "streamSid": density.SID, "media": {"payload": payload}},
                separators=(",", ":"),
            )
        )
        if i % 3 == 0:
            marks.append(f"r{i}-{i * 2}")
            texts.append(
                json.dumps(
                    {"event": "mark", "streamSid": density.SID, "mark": {"name": marks[-1]}},
                    separators=(",", ":"),
                )
            )
    wire = _answer(conn.key) + _server_sends(*(("send_text", (t.encode(),)) for t in texts))
    for part in _splits(wire, rng):
        conn.data_received(part)
    # The websockets client's count of the same messages (bench.density._clients).
    before = 0
    for msg in texts:
        if '"media"' in msg[:20]:
            at = msg.find('"payload":"') + 11
            before += round((msg.find('"', at) - at) * 3 // 4 / 160)
    assert conn.stats.errors == 0, conn.stats.first_error
    assert conn.stats.audio == before > 40
    # The start message first, then one echo per mark, as Twilio sends them.
    sent = _server_reads(b"".join(transport.written[1:]))
    assert sent[0].data == b"start"
    echoes = [json.loads(bytes(f.data)) for f in sent[1:]]
    assert echoes == [
        {"event": "mark", "streamSid": density.SID, "mark": {"name": m}} for m in marks
    ]
    assert conn.stats.marks == len(marks)


async def test_a_refused_or_wrong_upgrade_is_an_error() -> None:
    conn, transport = _conn(loadgen.Browser)
    conn.data_received(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
    assert conn.stats.errors == 1 and "403" in conn.stats.first_error and transport.aborted
    with pytest.raises(loadgen.LoadError):
        conn.opened.result()
    conn, transport = _conn(loadgen.Browser)
    conn.data_received(_answer("b3RoZXIga2V5IGhlcmUhIQ=="))
    assert conn.stats.errors == 1 and "Accept" in conn.stats.first_error
    conn.opened.exception()


async def test_a_connection_that_cannot_open_is_one_error_and_ends_at_once() -> None:
    """No server on the port: counted once, and the run does not wait for it to close."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        plan = loadgen.Plan(f"ws://127.0.0.1:{port}/live", 2, [b"x"], 40, browser=True)
        async with asyncio.timeout(5):
            stats = await loadgen.run(plan, 0.05, 0.05, 0.0, asyncio.Event())
    assert stats.errors == 2 and stats.opened == 0 and "client" in stats.first_error


async def test_connections_stream_until_the_measured_window_is_over() -> None:
    """bench.density's clients: after their own window the connections go on streaming
    until the measured process says its window (which starts later) is over, and only
    then close, so no closing handshake falls into the measured window."""
    from websockets.asyncio.server import ServerConnection, serve

    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    closes: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "ready"}))  # the relay's: the page starts
        arrivals.extend([loop.time() async for _message in ws])
        closes.append(loop.time())

    ended = threading.Event()
    async with asyncio.timeout(20), serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        plan = loadgen.Plan(f"ws://127.0.0.1:{port}/live", 2, [b"x" * 64], 20, browser=True)
        # The measured window ends well after the clients' own (0.05 s + 0.05 s).
        set_at = loop.time() + 0.6
        loop.call_at(set_at, ended.set)
        stats = await loadgen.run(plan, 0.05, 0.05, 0.0, asyncio.Event(), ended)
    assert stats.errors == 0, stats.first_error
    assert len(closes) == 2 and min(closes) >= set_at
    assert max(arrivals) >= set_at - 0.1  # still streaming just before it ended


async def test_a_server_close_before_the_end_is_an_error() -> None:
    conn, transport = _conn(loadgen.Browser)
    conn.data_received(_answer(conn.key) + _server_sends(("send_close", (1011, "bye"))))
    assert conn.stats.errors == 1 and "1011" in conn.stats.first_error and transport.aborted


async def test_closing_sends_a_close_and_ends_without_an_error() -> None:
    conn, transport = _conn(loadgen.Browser)
    conn.data_received(_answer(conn.key))
    conn.close()
    (frame,) = _server_reads(transport.written[-1])
    assert frame.opcode == Opcode.CLOSE and frame.data == (1000).to_bytes(2, "big")
    conn.data_received(_server_sends(("send_close", (1000, ""))))
    conn.connection_lost(None)
    assert conn.closed.done() and conn.stats.errors == 0
    assert len(transport.written) == 2  # the request and one close: nothing after it


async def test_a_frame_over_the_message_limit_is_an_error_before_it_is_buffered() -> None:
    conn, transport = _conn(loadgen.Browser)
    head = bytes((0x82, 127)) + (loadgen.MAX_MESSAGE + 1).to_bytes(8, "big")
    conn.data_received(_answer(conn.key) + head + b"x" * 100)
    assert conn.stats.errors == 1 and "bytes" in conn.stats.first_error and transport.aborted
    assert len(conn.rbuf) == loadgen.READ_BUFFER


async def test_a_fragmented_message_over_the_limit_is_an_error() -> None:
    conn, transport = _conn(loadgen.Browser)
    part = b"x" * (loadgen.MAX_MESSAGE // 2)
    calls: list[tuple[str, Any]] = [("send_binary", (part, False))]
    calls += [("send_continuation", (part, False))] * 2
    conn.data_received(_answer(conn.key) + _server_sends(*calls))
    assert conn.stats.errors == 1 and "fragmented" in conn.stats.first_error
    assert transport.aborted and conn.stats.audio == 0


async def test_a_masked_server_frame_is_an_error() -> None:
    conn, _transport = _conn(loadgen.Browser)
    conn.data_received(_answer(conn.key) + loadgen.client_frame(2, b"audio"))
    assert conn.stats.errors == 1 and "masked" in conn.stats.first_error


# -- the clock ----------------------------------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.paused = False
        self.slot = -1

    def write(self, data: bytes) -> None:
        self.got.append(data)


async def test_clock_sends_each_slot_its_frames_in_order_and_catches_up_when_late() -> None:
    loop = asyncio.get_running_loop()
    stats = loadgen.Stats(on=True)
    frames = [b"f0", b"f1", b"f2"]
    clock = loadgen.Clock(loop, 0.02, frames, stats, slots=2)
    clock.start()
    clock.stop()  # driven by hand below
    sinks = [_Sink() for _ in range(5)]
    for s in sinks:
        clock.join(s)  # type: ignore[arg-type]
    assert [s.slot for s in sinks] == [0, 1, 0, 1, 0]
    clock._stopped = False
    # Slot 0's tick 3.5 periods late: frames 0..3 at once, three of them over a period late.
    clock._tick(0, loop.time() - 0.07, 0)
    assert [s.got for s in sinks[::2]] == [[b"f0", b"f1", b"f2", b"f0"]] * 3
    assert sinks[1].got == sinks[3].got == []
    assert stats.frames == 12 and stats.late_frames == 9
    # The next one is due within a period: a single frame, on time.
    when = clock.handles[0].when()
    clock.handles[0].cancel()
    sinks[2].paused = True  # the server stopped reading: counted, not written
    clock._tick(0, when, 4)
    assert sinks[0].got[-1] == b"f1" and len(sinks[2].got) == 4
    assert stats.frames == 14 and stats.late_frames == 9 and stats.blocked_frames == 1
    clock.leave(sinks[0])  # type: ignore[arg-type]
    assert sinks[0].slot == -1 and sinks[0] not in clock.groups[0]  # type: ignore[comparison-overlap]
    clock.stop()


# -- against the real relay and bridge ----------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Iterator[ServerProc]:
    with ServerProc() as server:
        yield server


def _recorded(app: Any, inline: bool, seen: dict[str, list[bytes | str]]) -> Any:
    """``app`` recording every inbound message it takes inline (``seen["inline"]``) or
    the ASGI way (``seen["asgi"]``); ``inline=False`` takes the server's inline receive
    out of the scope, as another server would."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await app(scope, receive, send)
            return
        extensions = scope.setdefault("extensions", {})
        setter = extensions.pop(ON_MESSAGE_EXTENSION, None)
        if inline and setter is not None:

            def wrap(handler: Any) -> None:
                if handler is None:
                    setter(None)
                    return

                def rec(data: bytes | str) -> bool:
                    handled = bool(handler(data))
                    if handled:
                        seen["inline"].append(data)
                    return handled

                setter(rec)

            extensions[ON_MESSAGE_EXTENSION] = wrap

        async def rec_receive() -> Any:
            message = await receive()
            if message["type"] == "websocket.receive":
                seen["asgi"].append(message.get("bytes") or message.get("text") or b"")
            return message

        await app(scope, rec_receive, send)

    return wrapped


@pytest.mark.parametrize(
    ("kind", "loop"),
    [
        ("relay", "asyncio"),
        ("relay-asgi", "asyncio"),
        ("bridge", "asyncio"),
        ("bridge-asgi", "asyncio"),
        ("relay", "uvloop"),
        ("bridge", "uvloop"),
    ],
)
def test_loadgen_browsers_and_calls_through_the_real_app(
    kind: str, loop: str, model: ServerProc
) -> None:
    """A few browsers or calls for about a second (on either loop): the app unmasks the
    very frames the generator built (every inbound message is one of them), model audio
    comes back, the bridge's marks are echoed and played, and nobody sees an error."""
    if loop == "uvloop" and not uvloop_available():
        pytest.skip("uvloop is not installed")
    run_loop(lambda: _through_the_app(kind, model), loop)


async def _through_the_app(kind: str, model: ServerProc) -> None:
    from gemini_live.telephony import TwilioBridge
    from gemini_live.web import running

    seen: dict[str, list[bytes | str]] = {"inline": [], "asgi": []}
    upstream = live_url(model.port, "w2")
    relay = kind.startswith("relay")
    calls: list[Any] = []
    if relay:
        app: Any = density._relay_app(upstream, density.Probe())
        payloads = density._page_frames(40)
        expected: set[bytes | str] = {*payloads}
    else:

        def on_session(_session: Any, call: Any) -> None:
            calls.append(call)

        app = TwilioBridge(
            lambda _c: gl.build_config(url=upstream),
            auth_token=density.AUTH_TOKEN,
            on_session=on_session,
            max_calls_per_address=None,
        )
        media = density._media_messages()
        payloads = [m.encode() for m in media]
        expected = {*media, *(density._call_start(i) for i in range(3))}
    async with asyncio.timeout(40), running(_recorded(app, "asgi" not in kind, seen)) as base:
        url = base.replace("http", "ws") + ("/live" if relay else "/twilio")
        plan = loadgen.Plan(
            url,
            3,
            payloads,
            40 if relay else 20,
            browser=relay,
            origin=base if relay else None,
            headers=None if relay else density._loadgen_signed,
            start=None if relay else density._call_start,
            sid=density.SID,
        )
        stats = await loadgen.run(plan, 1.0, 0.5, 0.0, asyncio.Event())
    assert stats.errors == 0, stats.first_error
    assert stats.opened == 3 and stats.frames > 0 and stats.audio > 0
    every = seen["inline"] + seen["asgi"]
    marks = [m for m in every if isinstance(m, str) and '"mark"' in m[:20]]
    assert set(every) - set(marks) <= expected
    assert len(every) - len(marks) >= stats.frames
    if "asgi" in kind:
        assert not seen["inline"]
    else:
        assert len(seen["inline"]) > len(seen["asgi"])
    if not relay:
        assert stats.marks > 0 and len(marks) == stats.marks
        assert sum(c.marks_played for c in calls) > 0
