"""Both transport backends against small servers on 127.0.0.1.

Two peers are defined here (no shared fixture): a scripted websockets server for the normal
protocol, and a raw TCP peer that speaks just enough WebSocket to misbehave on purpose
(never answer the upgrade, never pong, stop reading). Every wait is bounded, and nothing
synchronises by sleeping: tests wait for events the peers set.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import logging
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gemini_live.errors import ConfigError, ConnectError
from gemini_live.transport import (
    DEFAULT_BACKEND,
    WRITE_HIGH_WATER,
    Backend,
    CloseInfo,
    ConnectOptions,
    DirectWriter,
    Transport,
    TransportClosed,
    available_backends,
    get_backend,
)
from gemini_live.transport._picows import PicowsTransport
from gemini_live.transport._websockets import WebsocketsTransport
from gemini_live.transport.base import DirectSend

BACKENDS = ("picows", "websockets")
#: Bound for every single wait in this module.
WAIT = 10.0
#: A credential as a header value; it must never show up in an error or a log line.
SECRET = "sk-live-TOPSECRET-5f0c9e2a"
SERVER_LOGGER = logging.getLogger("tests.transport.server")

Handler = Callable[[ServerConnection], Awaitable[None]]
ProcessRequest = Callable[[ServerConnection, Request], Response | None]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    name: str = request.param
    return get_backend(name)


class Recorder:
    """A FrameHandler that records what arrives and lets a test wait for it."""

    def __init__(self, *, fail_on_frame: bool = False) -> None:
        self.frames: list[bytes] = []
        self.closes: list[CloseInfo] = []
        self.violations: list[str] = []
        self.fail_on_frame = fail_on_frame
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()

    def on_frame(self, data: bytes) -> None:
        if type(data) is not bytes:
            self.violations.append(f"frame of type {type(data).__name__}")
        if self.closes:
            self.violations.append("frame after on_close")
        self.frames.append(data)
        self._changed.set()
        if self.fail_on_frame:
            raise RuntimeError("decoder exploded")

    def on_close(self, info: CloseInfo) -> None:
        self.closes.append(info)
        self._closed.set()
        self._changed.set()

    async def wait_frames(self, n: int) -> list[bytes]:
        async with asyncio.timeout(WAIT):
            while len(self.frames) < n:
                assert not self.closes, f"closed after {len(self.frames)} frames: {self.closes}"
                self._changed.clear()
                await self._changed.wait()
        assert not self.violations
        return self.frames

    async def wait_close(self) -> CloseInfo:
        async with asyncio.timeout(WAIT):
            await self._closed.wait()
        assert not self.violations
        assert len(self.closes) == 1
        return self.closes[0]


async def connect(
    backend: Backend, url: str, handler: Recorder, **options: Any
) -> PicowsTransport | WebsocketsTransport:
    """Connect; the built-in transports also report ``close_info`` and ``write_buffer_size``."""
    async with asyncio.timeout(WAIT):
        t = await backend.connect(url, handler, ConnectOptions(**options))
    assert isinstance(t, Transport)
    assert isinstance(t, PicowsTransport | WebsocketsTransport)
    return t


async def drain(ws: ServerConnection) -> None:
    """Server side: read until the connection ends, whatever way it ends."""
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


@contextlib.asynccontextmanager
async def ws_server(
    handler: Handler,
    *,
    process_request: ProcessRequest | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[str]:
    """A websockets server running ``handler`` per connection; yields its URL."""
    async with serve(
        handler,
        "127.0.0.1",
        0,
        compression=None,
        max_size=None,
        ping_interval=None,
        close_timeout=2,
        process_request=process_request,
        ssl=ssl_context,
        logger=SERVER_LOGGER,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        scheme = "wss" if ssl_context is not None else "ws"
        yield f"{scheme}://127.0.0.1:{port}/live"


async def echo(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            await ws.send(message)


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawPeer:
    """A bare TCP peer that speaks just enough WebSocket to misbehave.

    ``upgrade=False``: accepts TCP, never answers the HTTP upgrade.
    ``upgrade=True``: answers 101, then reads client frames (only while ``reading`` is
    set), records their opcodes, never answers a ping, and hangs up on a CLOSE frame.
    """

    def __init__(self, *, upgrade: bool, rcvbuf: int | None = None) -> None:
        self.upgrade = upgrade
        self.rcvbuf = rcvbuf
        self.url = ""
        self.accepted = asyncio.Event()
        self.reading = asyncio.Event()
        self.reading.set()
        self.ping_seen = asyncio.Event()
        self.opcodes: list[int] = []
        self.payload_bytes = 0
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawPeer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf is not None:
            # Set before listen() so the accepted socket inherits it: a small window.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        self._server = await asyncio.start_server(self._on_client, sock=sock, limit=1 << 20)
        self.url = f"ws://127.0.0.1:{sock.getsockname()[1]}/live"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        # End every connection by closing it (not by cancelling): handlers see EOF and return.
        self.reading.set()
        for writer in self._writers:
            writer.close()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def wait_payload(self, n: int) -> None:
        async with asyncio.timeout(WAIT):
            while self.payload_bytes < n:
                self._changed.clear()
                await self._changed.wait()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        self.accepted.set()
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.upgrade:
            await reader.read()  # until the client gives up and hangs up
            return
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        await self.reading.wait()
        while True:
            head = await reader.readexactly(2)
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await reader.readexactly(8), "big")
            await reader.readexactly(4 + length)  # mask + payload
            self.opcodes.append(opcode)
            self.payload_bytes += length
            self._changed.set()
            if opcode == 0x9:
                self.ping_seen.set()
            elif opcode == 0x8:
                return


# --- the registry ------------------------------------------------------------------------


def test_registry() -> None:
    assert DEFAULT_BACKEND == "picows"
    assert set(available_backends()) == set(BACKENDS)
    for name in BACKENDS:
        assert get_backend(name).name == name
    with pytest.raises(ConfigError, match="unknown transport backend"):
        get_backend("aiohttp")


def test_import_is_cheap() -> None:
    code = (
        "import sys, gemini_live.transport; "
        "print(sorted(m for m in ('picows', 'websockets') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "[]"


# --- delivery ------------------------------------------------------------------------------


async def test_text_and_binary_arrive_as_bytes_in_order(backend: Backend) -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.send("hello")
        await ws.send(b"\x00\x01\xff")
        await ws.send("ünïcödé ✓")
        await ws.send(["frag", "mented ", "text"])  # one message in three frames
        await ws.send([b"\x01", b"\x02", b"\x03"])
        await ws.send(b"")
        await drain(ws)

    rec = Recorder()
    async with ws_server(script) as url:
        t = await connect(backend, url, rec)
        assert isinstance(t, Transport)
        frames = await rec.wait_frames(6)
        assert frames == [
            b"hello",
            b"\x00\x01\xff",
            "ünïcödé ✓".encode(),
            b"fragmented text",
            b"\x01\x02\x03",
            b"",
        ]
        await t.close()


async def test_large_messages_both_ways(backend: Backend) -> None:
    big = b"x" * (1 << 20)

    async def script(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                assert isinstance(message, str)  # the client sends text frames
                await ws.send(message.encode())  # echo 1 MiB back as binary
                await ws.send([b"a" * 65536] * 16)  # and 1 MiB in 16 fragments

    rec = Recorder()
    async with ws_server(script) as url:
        t = await connect(backend, url, rec)
        await t.send(big)
        frames = await rec.wait_frames(2)
        assert frames[0] == big
        assert frames[1] == b"a" * (1 << 20)
        await t.close()
        assert rec.closes == [CloseInfo(1000, "", local=True)]


async def test_headers_path_and_user_agent_reach_the_server(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(1)  # everything, so a library tracing the request would be caught
    seen: asyncio.Future[tuple[str, Headers]] = asyncio.get_running_loop().create_future()

    async def script(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen.set_result((ws.request.path, ws.request.headers))
        await drain(ws)

    rec = Recorder()
    async with ws_server(script) as url:
        t = await connect(
            backend,
            url + "?alt=json",
            rec,
            headers=(("x-goog-api-key", SECRET), ("X-Extra", "one")),
            user_agent="gemini-live-tests/1.0",
        )
        async with asyncio.timeout(WAIT):
            path, headers = await seen
        await t.close()
    assert path == "/live?alt=json"
    assert headers["x-goog-api-key"] == SECRET
    assert headers["X-Extra"] == "one"
    assert headers.get_all("User-Agent") == ["gemini-live-tests/1.0"]
    client_logs = [r for r in caplog.records if not r.name.startswith("tests.")]
    assert all(SECRET not in r.getMessage() for r in client_logs)


# --- closing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1007, "Request contains an invalid argument."), (1011, ""), (4003, "custom ✓")],
)
async def test_server_close_is_reported_once(backend: Backend, code: int, reason: str) -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.send("last words")
        await ws.close(code, reason)

    rec = Recorder()
    async with ws_server(script) as url:
        t = await connect(backend, url, rec)
        info = await rec.wait_close()
        assert info == CloseInfo(code, reason, local=False)
        assert rec.frames == [b"last words"]  # delivered before on_close
        assert t.closed
        assert t.close_info == info
        with pytest.raises(TransportClosed) as caught:
            await t.send(b"{}")
        assert caught.value.info == info
        async with asyncio.timeout(WAIT):
            await t.close()  # nothing left to do
        t.abort()
    assert rec.closes == [info]


@pytest.mark.parametrize(("code", "reason"), [(1000, "bye"), (4000, "rotating")])
async def test_client_close_is_local_and_idempotent(
    backend: Backend, code: int, reason: str
) -> None:
    loop = asyncio.get_running_loop()
    server_saw: asyncio.Future[tuple[int | None, str | None]] = loop.create_future()

    async def script(ws: ServerConnection) -> None:
        await drain(ws)
        server_saw.set_result((ws.close_code, ws.close_reason))

    rec = Recorder()
    async with ws_server(script) as url:
        t = await connect(backend, url, rec)
        assert (t.closed, t.close_info) == (False, None)
        async with asyncio.timeout(WAIT):
            await t.close(code, reason)
            # close() returns once on_close has run.
            assert rec.closes == [CloseInfo(code, reason, local=True)]
            await t.close()
            await asyncio.gather(t.close(1001, "again"), t.close())
            assert (await server_saw) == (code, reason)
        t.abort()
    assert t.closed
    assert t.close_info == CloseInfo(code, reason, local=True)
    assert rec.closes == [CloseInfo(code, reason, local=True)]
    with pytest.raises(TransportClosed) as caught:
        await t.send(b"{}")
    assert caught.value.info == CloseInfo(code, reason, local=True)


async def test_close_checks_code_and_fits_the_reason(backend: Backend) -> None:
    loop = asyncio.get_running_loop()
    server_saw: asyncio.Future[str | None] = loop.create_future()

    async def script(ws: ServerConnection) -> None:
        await drain(ws)
        server_saw.set_result(ws.close_reason)

    rec = Recorder()
    async with ws_server(script) as url:
        t = await connect(backend, url, rec)
        with pytest.raises(ConfigError):
            await t.close(1006)
        assert not rec.closes
        await t.close(1000, "é" * 100)  # 200 bytes: more than a close frame holds
        async with asyncio.timeout(WAIT):
            reason = await server_saw
    assert reason == "é" * 61
    assert rec.closes == [CloseInfo(1000, "é" * 61, local=True)]


async def test_abort_drops_the_connection(backend: Backend) -> None:
    loop = asyncio.get_running_loop()
    server_saw: asyncio.Future[int | None] = loop.create_future()

    async def script(ws: ServerConnection) -> None:
        await drain(ws)
        server_saw.set_result(ws.close_code)

    rec = Recorder()
    async with ws_server(script) as url:
        t = await connect(backend, url, rec)
        t.abort()
        assert t.closed
        info = await rec.wait_close()
        assert info == CloseInfo(1006, "", local=True)
        async with asyncio.timeout(WAIT):
            assert (await server_saw) == 1006  # no close frame: abnormal closure
        t.abort()
        await t.close()
    assert rec.closes == [info]


async def test_server_tcp_drop_is_1006(backend: Backend) -> None:
    async def script(ws: ServerConnection) -> None:
        ws.transport.abort()

    rec = Recorder()
    async with ws_server(script) as url:
        t = await connect(backend, url, rec)
        info = await rec.wait_close()
        assert info == CloseInfo(1006, "", local=False)
        with pytest.raises(TransportClosed):
            await t.send(b"{}")


async def test_message_too_big_closes_with_1009(backend: Backend) -> None:
    async def script(ws: ServerConnection) -> None:
        request = await ws.recv()
        if request == "single":
            await ws.send(b"x" * 2000)
        else:
            await ws.send([b"x" * 600, b"y" * 600])  # each frame fits, the message does not
        await drain(ws)

    async with ws_server(script) as url:
        for shape in ("single", "fragmented"):
            rec = Recorder()
            t = await connect(backend, url, rec, max_message_size=1000)
            await t.send(shape.encode())
            info = await rec.wait_close()
            assert (info.code, info.local) == (1009, True), shape
            assert rec.frames == []


async def test_handler_error_closes_with_1011(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    server_saw: asyncio.Future[int | None] = loop.create_future()

    async def script(ws: ServerConnection) -> None:
        await ws.send("one")
        await ws.send("two")
        await drain(ws)
        server_saw.set_result(ws.close_code)

    rec = Recorder(fail_on_frame=True)
    async with ws_server(script) as url:
        await connect(backend, url, rec)
        info = await rec.wait_close()
        assert info == CloseInfo(1011, "frame handler error", local=True)
        assert rec.frames == [b"one"]  # nothing is delivered after the failure
        async with asyncio.timeout(WAIT):
            assert (await server_saw) == 1011
    assert "decoder exploded" in caplog.text


# --- connect failures ----------------------------------------------------------------------


async def test_connect_refused(backend: Backend) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the client tries it
    rec = Recorder()
    with pytest.raises(ConnectError) as caught:
        await connect(backend, f"ws://127.0.0.1:{port}/", rec)
    assert caught.value.status is None
    assert caught.value.retryable
    assert rec.closes == []


async def test_http_403_is_a_connect_error_without_the_secret(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(1)

    def refuse(conn: ServerConnection, request: Request) -> Response:
        # A careless server echoing the credential back must not leak it through us.
        return conn.respond(HTTPStatus.FORBIDDEN, f"bad key {request.headers['x-goog-api-key']}")

    rec = Recorder()
    async with ws_server(drain, process_request=refuse) as url:
        with pytest.raises(ConnectError) as caught:
            await connect(backend, url, rec, headers=(("x-goog-api-key", SECRET),))
    exc = caught.value
    assert exc.status == 403
    assert not exc.retryable
    assert "403" in str(exc)
    assert SECRET not in str(exc)
    assert SECRET not in repr(exc.args)
    assert exc.__cause__ is None
    assert rec.closes == []
    client_logs = [r for r in caplog.records if not r.name.startswith("tests.")]
    assert all(SECRET not in r.getMessage() for r in client_logs)


async def test_redirect_is_not_followed(backend: Backend) -> None:
    requests: list[str] = []

    def redirect(conn: ServerConnection, request: Request) -> Response | None:
        requests.append(request.path)
        if request.path.startswith("/live"):
            response = conn.respond(HTTPStatus.FOUND, "moved\n")
            response.headers["Location"] = "/elsewhere"
            return response
        return None

    rec = Recorder()
    async with ws_server(drain, process_request=redirect) as url:
        with pytest.raises(ConnectError) as caught:
            await connect(backend, url, rec, headers=(("x-goog-api-key", SECRET),))
    assert caught.value.status == 302
    assert requests == ["/live"]  # the credential was not replayed to /elsewhere


async def test_open_timeout_when_upgrade_is_never_answered(backend: Backend) -> None:
    async with RawPeer(upgrade=False) as peer:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ConnectError, match="timed out") as caught:
            await connect(backend, peer.url, Recorder(), open_timeout=0.3)
        elapsed = loop.time() - start
    assert peer.accepted.is_set()
    assert 0.25 <= elapsed < 2.0
    assert caught.value.retryable


class ConnectProxy:
    """A minimal HTTP CONNECT proxy that records the targets it was asked for."""

    def __init__(self) -> None:
        self.url = ""
        self.targets: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ")[1].decode()
            self.targets.append(target)
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            self._writers.append(up_writer)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def test_connect_through_http_proxy(backend: Backend) -> None:
    rec = Recorder()
    async with ws_server(echo) as url, ConnectProxy() as proxy:
        t = await connect(backend, url, rec, proxy=proxy.url)
        await t.send(b'{"via": "proxy"}')
        assert await rec.wait_frames(1) == [b'{"via": "proxy"}']
        await t.close()
    assert proxy.targets == [url.split("/")[2]]
    assert rec.closes == [CloseInfo(1000, "", local=True)]


async def test_unreachable_proxy_error_hides_its_credentials(backend: Backend) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proxy = f"http://user:{SECRET}@127.0.0.1:{port}"
    with pytest.raises(ConnectError) as caught:
        await connect(backend, "ws://127.0.0.1:9/live", Recorder(), proxy=proxy)
    assert SECRET not in str(caught.value)


async def test_no_proxy_means_direct_whatever_the_environment(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    rec = Recorder()
    async with ws_server(echo) as url:
        t = await connect(backend, url, rec, proxy=None)
        await t.send(b"{}")
        assert await rec.wait_frames(1) == [b"{}"]
        await t.close()


# --- sending -------------------------------------------------------------------------------


async def test_concurrent_senders_do_not_interleave(backend: Backend) -> None:
    tasks, per_task = 5, 40

    def message(task: int, seq: int) -> bytes:
        pad = "x" * ((task * 7919 + seq * 104729) % 90000)  # up to ~90 KB: partial writes
        return json.dumps({"task": task, "seq": seq, "pad": pad}).encode()

    rec = Recorder()
    async with ws_server(echo) as url:
        t = await connect(backend, url, rec)

        async def sender(task: int) -> None:
            for seq in range(per_task):
                await t.send(message(task, seq))

        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(sender(i) for i in range(tasks)))
        frames = await rec.wait_frames(tasks * per_task)
        await t.close()

    assert sorted(frames) == sorted(message(i, j) for i in range(tasks) for j in range(per_task))
    decoded = [json.loads(f) for f in frames]
    for task in range(tasks):
        assert [d["seq"] for d in decoded if d["task"] == task] == list(range(per_task))


async def test_send_waits_while_the_peer_does_not_read(backend: Backend) -> None:
    chunk = b"x" * (256 * 1024)
    count = 128  # 32 MiB: far more than the kernel buffers hold for a peer that won't read
    after_send: list[int] = []
    async with RawPeer(upgrade=True, rcvbuf=64 * 1024) as peer:
        peer.reading.clear()
        t = await connect(backend, peer.url, Recorder())

        async def sender() -> None:
            for _ in range(count):
                await t.send(chunk)
                after_send.append(t.write_buffer_size())

        task = asyncio.create_task(sender())
        # Observe for a bounded time: the sender must be held back, not buffer 32 MiB.
        done, _ = await asyncio.wait({task}, timeout=1.0)
        assert not done
        assert 0 < len(after_send) < count
        assert t.write_buffer_size() > 0
        peer.reading.set()
        async with asyncio.timeout(WAIT * 3):
            await task
        await peer.wait_payload(count * len(chunk))
        await t.close()
    assert max(after_send) <= WRITE_HIGH_WATER


async def test_direct_writer_is_withdrawn_under_backpressure_and_on_close(
    backend: Backend,
) -> None:
    # A DirectWriter's writer has no check per write: the transport withdraws it (and
    # says so through writes_changed) the moment backpressure starts or closing begins.
    chunk = b"x" * (256 * 1024)
    async with RawPeer(upgrade=True, rcvbuf=64 * 1024) as peer:
        peer.reading.clear()
        t = await connect(backend, peer.url, Recorder())
        if not isinstance(t, DirectWriter):
            # Only picows offers one; the session keeps try_send on the others.
            assert backend.name != "picows"
            await t.close()
            return
        assert isinstance(t, DirectSend) == (backend.name == "picows")
        seen: list[object] = []
        sends: list[object] = []
        changed = asyncio.Event()

        def on_change() -> None:
            seen.append(t.direct_writer())
            # DirectSend (the backend's own call) is withdrawn and offered in step.
            sends.append(t.direct_send() if isinstance(t, DirectSend) else seen[-1])
            changed.set()

        t.writes_changed = on_change
        write = t.direct_writer()
        assert write is not None
        written = 0
        while not seen:  # the first write above the high-water mark pauses writing
            assert written < 256, "no backpressure"
            write(chunk)
            written += 1
        assert seen == [None] and sends == [None]
        assert t.try_send(b"late") is False
        changed.clear()
        peer.reading.set()
        async with asyncio.timeout(WAIT * 3):
            await changed.wait()  # resumed: a writer again
        assert seen[1] is not None and sends[1] is not None
        if isinstance(t, DirectSend):
            # The same frame through the backend's own call as through the writer.
            offered = t.direct_send()
            assert offered is not None
            send, kind = offered
            send(kind, chunk)
            written += 1
        await peer.wait_payload(written * len(chunk))
        await t.close()
        assert seen[-1] is None and sends[-1] is None
        assert t.direct_writer() is None
        assert not isinstance(t, DirectSend) or t.direct_send() is None


# --- keepalive -----------------------------------------------------------------------------


async def test_keepalive_is_off_by_default(backend: Backend) -> None:
    assert ConnectOptions().ping_interval is None
    async with RawPeer(upgrade=True) as peer:
        t = await connect(backend, peer.url, Recorder())
        await t.send(b'{"hello": 1}')
        await peer.wait_payload(1)
        # Bounded observation window: no ping may show up. (The next test proves the
        # same window sees pings when keepalive is on.)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await peer.ping_seen.wait()
        assert peer.opcodes == [0x1]
        await t.close()


async def test_keepalive_without_pong_closes_locally(backend: Backend) -> None:
    async with RawPeer(upgrade=True) as peer:
        rec = Recorder()
        await connect(backend, peer.url, rec, ping_interval=0.1, ping_timeout=0.1)
        async with asyncio.timeout(WAIT):
            await peer.ping_seen.wait()
        info = await rec.wait_close()
    assert info == CloseInfo(1011, "keepalive ping timeout", local=True)


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a self-signed 127.0.0.1 cert."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_wss_verifies_the_server(
    backend: Backend, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ctx, client_ctx = tls
    async with ws_server(echo, ssl_context=server_ctx) as url:
        # The default context (None) verifies certificates: a self-signed one is refused.
        with pytest.raises(ConnectError):
            await connect(backend, url, Recorder())
        rec = Recorder()
        t = await connect(backend, url, rec, ssl_context=client_ctx)
        await t.send(b'{"over": "tls"}')
        assert await rec.wait_frames(1) == [b'{"over": "tls"}']
        await t.close()
    assert rec.closes == [CloseInfo(1000, "", local=True)]


# --- what has not left this host -----------------------------------------------------------


@contextlib.asynccontextmanager
async def stalled_server(
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A server that reads nothing after the upgrade until the event is set; its receive
    buffer is the smallest the kernel allows, so unread data stays on the client's side."""
    resume = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        ws.transport.pause_reading()
        async with asyncio.timeout(WAIT):
            await resume.wait()
        ws.transport.resume_reading()
        await drain(ws)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    async with serve(handler, sock=sock, max_queue=None, ssl=ssl_context):
        scheme = "wss" if ssl_context is not None else "ws"
        yield f"{scheme}://127.0.0.1:{sock.getsockname()[1]}/live", resume


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIOCOUTQ is Linux's")
@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_unsent_bytes_counts_the_write_buffer_and_the_kernel_queue(
    backend: Backend, secure: bool, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ctx, client_ctx = tls
    payload = b"x" * (64 * 1024)
    count = 8  # 512 KiB: below the write buffer's high-water mark, so no send waits
    async with stalled_server(server_ctx if secure else None) as (url, resume):
        options: dict[str, Any] = {"ssl_context": client_ctx} if secure else {}
        t = await connect(backend, url, Recorder(), **options)
        assert t.unsent_bytes() is not None
        for _ in range(count):
            await t.send(payload)
        unsent = t.unsent_bytes()
        assert unsent is not None
        # The peer's kernel acknowledged at most a few KB: nearly everything is still here,
        # most of it in the kernel's send queue (not in the write buffer alone).
        assert unsent >= count * len(payload) - 64 * 1024
        assert unsent > t.write_buffer_size()
        resume.set()
        await t.close()
    assert t.unsent_bytes() is None  # closed: it cannot tell


async def test_websockets_backend_reads_in_small_pieces() -> None:
    # asyncio's 256 KiB recv costs an mmap and munmap per read under glibc.
    from gemini_live.transport._common import READ_BYTES

    on_uvloop = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    big = b"y" * (3 * READ_BYTES + 17)

    async def script(ws: ServerConnection) -> None:
        await ws.send(big)
        await drain(ws)

    rec = Recorder()
    async with ws_server(script) as url:
        t = await connect(get_backend("websockets"), url, rec)
        assert isinstance(t, WebsocketsTransport)
        # uvloop's transports read into their own buffer: nothing to cap there.
        size = getattr(t._ws.transport, "max_size", None)
        assert size == (None if on_uvloop else READ_BYTES)
        assert (await rec.wait_frames(1)) == [big]
        await t.close()
