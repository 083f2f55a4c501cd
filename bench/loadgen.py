"""A cheap load generator for ``bench.density``: many WebSocket clients in one process.

The density bench measures one process (the browser relay or a phone bridge) against
synthetic browsers or phone calls. On a small machine those clients share the CPU with
what they measure, so they must cost as little as possible. The ``websockets`` client
(one task per connection, an ``asyncio.sleep`` per frame, ``json`` per message) took
more than half a core at 300 browsers; this one does the same work with:

* raw :class:`asyncio.Protocol` connections, the HTTP upgrade written by hand (an
  ``Origin`` for the relay, a signature header for the Twilio bridge) and its answer
  checked (status 101, ``Sec-WebSocket-Accept``);
* client frames built once and reused: each pre-built frame is masked as RFC 6455
  requires (its own random non-zero masking key, the payload XORed once at build
  time), so the server still unmasks real audio;
* one shared clock per time slot: the connections are spread over ``slots`` slots of
  the frame period, and one ``call_at`` per slot writes the slot's frame to every
  connection in it (a late slot catches up, as a microphone's buffered audio would);
* reads into each connection's own buffer (:class:`asyncio.BufferedProtocol`: no new
  256 KiB ``bytes`` per read) and, in a process of its own, the objects alive once every
  connection is open kept out of the collector's walks (``Plan.gc_freeze``);
* a minimal incremental frame reader per connection: it counts the relay's binary
  audio messages or the 20 ms frames in the bridge's ``media`` messages, echoes each
  ``mark`` (a pre-encoded template, masked per echo), answers pings with pongs and
  closes when the server closes.

Statistics (one :class:`Stats` for all connections): ``frames`` sent and
``late_frames`` (sent more than one period after they were due) in the window,
``audio`` (binary messages, or 20 ms frames of ``media``) received in the window,
``errors`` (a connection that failed to open, or was closed or lost before the end),
``blocked_frames`` (not written because the server stopped reading: the transport's
buffer was full), ``marks`` echoed, ``pongs`` sent.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast
from urllib.parse import urlsplit

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
#: The largest message a connection accepts (and so the most it buffers).
MAX_MESSAGE: Final = 1 << 20
#: The largest HTTP answer to an upgrade a connection buffers.
MAX_HEAD: Final = 16 << 10
#: A connection's receive buffer (grown for a larger frame, up to MAX_MESSAGE).
READ_BUFFER: Final = 64 << 10


class LoadError(Exception):
    """A connection's upgrade or framing went wrong."""


def mask_key() -> bytes:
    """A random masking key that is not all zero (a zero key would leave the payload
    readable as it is, which no browser sends)."""
    while True:
        key = os.urandom(4)
        if key != b"\0\0\0\0":
            return key


def xor_mask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XORed with the 4-byte ``key`` repeated (RFC 6455 masking, which is its
    own inverse): one big-integer XOR, no per-byte loop."""
    n = len(payload)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        n, "little"
    )


def client_frame(opcode: int, payload: bytes, key: bytes | None = None) -> bytes:
    """One final client frame: header, masking key, masked payload."""
    key = mask_key() if key is None else key
    if len(key) != 4:
        raise ValueError("a masking key has 4 bytes")
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + key + xor_mask(payload, key)


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server answers ``Sec-WebSocket-Key: key`` with."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def upgrade_request(url: str, key: str, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """The HTTP/1.1 upgrade request for ``url`` (``ws://host:port/path?query``)."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(slots=True)
class Stats:
    """What every connection of one run adds up (``on``: the measurement window)."""

    on: bool = False
    frames: int = 0
    late_frames: int = 0
    blocked_frames: int = 0
    audio: int = 0
    marks: int = 0
    pongs: int = 0
    errors: int = 0
    opened: int = 0
    first_error: str = ""
    window_s: float = 0.0
    cpu_s: float = 0.0
    #: The kernel's part of ``cpu_s`` (the sockets' system calls).
    sys_s: float = 0.0

    def error(self, what: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = what


@dataclass(slots=True)
class Clock:
    """One ``call_at`` per slot of the frame period writes the slot's next frame to every
    connection in the slot (``join``). Every connection of a slot sends the same frame
    of ``frames`` (they are the same utterance, in a loop)."""

    loop: asyncio.AbstractEventLoop
    period: float
    frames: Sequence[bytes]
    stats: Stats
    slots: int = 20
    groups: list[list[Conn]] = field(default_factory=list)
    handles: list[asyncio.TimerHandle] = field(default_factory=list)
    _next: int = 0
    _stopped: bool = False

    def start(self) -> None:
        if not self.frames:
            raise ValueError("a clock needs at least one frame")
        self.groups = [[] for _ in range(self.slots)]
        t0 = self.loop.time()
        dues = [t0 + s * self.period / self.slots for s in range(self.slots)]
        self.handles = [self.loop.call_at(due, self._tick, s, due, 0) for s, due in enumerate(dues)]

    def join(self, conn: Conn) -> None:
        """From the slot's next tick on, ``conn`` gets a frame every period (slots are
        filled in turn)."""
        self.groups[self._next].append(conn)
        conn.slot = self._next
        self._next = (self._next + 1) % self.slots

    def leave(self, conn: Conn) -> None:
        if conn.slot >= 0:
            group = self.groups[conn.slot]
            if conn in group:
                group.remove(conn)
            conn.slot = -1

    def stop(self) -> None:
        self._stopped = True
        for h in self.handles:
            h.cancel()

    def _tick(self, s: int, due: float, k: int) -> None:
        """Slot ``s``'s frame ``k``, due at ``due`` (and any later ones already due)."""
        loop = self.loop
        period = self.period
        now = loop.time()
        frames = self.frames
        stats = self.stats
        group = self.groups[s]
        while True:
            frame = frames[k % len(frames)]
            sent = 0
            for conn in group:
                if conn.paused:
                    stats.blocked_frames += stats.on
                else:
                    conn.write(frame)
                    sent += 1
            if stats.on:
                stats.frames += sent
                if now - due > period:
                    stats.late_frames += sent
            k += 1
            due += period
            if due > now:
                break
        if not self._stopped:
            self.handles[s] = loop.call_at(due, self._tick, s, due, k)


class Conn(asyncio.BufferedProtocol):
    """One client connection: the upgrade, then frames counted as they arrive.

    A buffered protocol: the transport receives into this connection's own buffer
    (``recv_into``), where asyncio's plain protocols get a new 256 KiB ``bytes`` per
    read that the kernel maps and unmaps (about 15 µs a read on Linux)."""

    __slots__ = (
        "clock",
        "closed",
        "closing",
        "filled",
        "frag",
        "frag_op",
        "key",
        "opened",
        "paused",
        "rbuf",
        "request",
        "slot",
        "stats",
        "transport",
        "view",
        "write",
    )

    def __init__(self, request: bytes, key: str, stats: Stats, clock: Clock) -> None:
        loop = clock.loop
        self.request = request
        self.key = key
        self.stats = stats
        self.clock = clock
        self.transport: asyncio.Transport | None = None
        self.write: Callable[[bytes], None] = _no_write
        # Received bytes not parsed yet: rbuf[:filled] (grown for a large frame, at
        # most to MAX_MESSAGE + 14 bytes).
        self.rbuf = bytearray(READ_BUFFER)
        self.view = memoryview(self.rbuf)
        self.filled = 0
        self.frag: list[bytes] | None = None
        self.frag_op = 0
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.closing = False  # we are ending the connection: a close or loss is expected
        self.paused = False
        self.slot = -1

    # -- asyncio.BufferedProtocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        self.write = self.transport.write
        self.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.clock.leave(self)
        self.write = _no_write
        if not self.closing:
            self.fail(f"connection lost: {exc!r}" if exc else "connection closed by the server")
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def get_buffer(self, sizehint: int) -> memoryview:
        filled = self.filled
        if not filled:  # the usual: every frame read was whole
            return self.view
        if filled == len(self.rbuf):  # one frame fills the buffer: a larger one
            # (the parser has checked its length against MAX_MESSAGE already)
            rbuf = bytearray(min(2 * filled, MAX_MESSAGE + 14))
            rbuf[:filled] = self.rbuf
            self.view.release()
            self.rbuf = rbuf
            self.view = memoryview(rbuf)
        return self.view[filled:]

    def buffer_updated(self, nbytes: int) -> None:
        n = self.filled + nbytes
        data = self.rbuf
        pos = 0
        if not self.opened.done():
            pos = self._handshake(data, n)
            if pos < 0:
                self.filled = n if pos == -1 else 0
                return
        while n - pos >= 2:
            b1 = data[pos + 1]
            if b1 & 0x80:
                self.fail("the server masked a frame")
                return
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                head = pos + 4
                if head > n:
                    break
                length = int.from_bytes(data[pos + 2 : head], "big")
            elif length == 127:
                head = pos + 10
                if head > n:
                    break
                length = int.from_bytes(data[pos + 2 : head], "big")
            if length > MAX_MESSAGE:
                self.fail(f"a frame of {length} bytes")
                return
            end = head + length
            if end > n:
                break
            b0 = data[pos]
            if b0 == 0x82 and self.frag is None:  # the usual: a whole binary message
                self.on_binary(data, head, end)
            elif b0 == 0x81 and self.frag is None:  # or a whole text message
                self.on_text(data, head, end)
            else:
                self._frame(b0, data, head, end)
            pos = end
        if pos < n:  # the start of a frame: to the front, for the next read
            if pos:
                data[: n - pos] = data[pos:n]
            self.filled = n - pos
        else:
            self.filled = 0

    def data_received(self, data: bytes) -> None:
        """``data`` as a transport would have read it into the buffer (for tests)."""
        while data:
            view = self.get_buffer(len(data))
            k = min(len(view), len(data))
            view[:k] = data[:k]
            self.buffer_updated(k)
            data = data[k:]

    # -- the rest ---------------------------------------------------------------------

    def _handshake(self, data: bytearray, n: int) -> int:
        """Take the server's answer to the upgrade from ``data[:n]``; return where the
        frames after it start, -1 to wait for more, -2 after a failure."""
        end = data.find(b"\r\n\r\n", 0, n)
        if end < 0:
            if n > MAX_HEAD:
                self.fail("an upgrade answer without an end")
                return -2
            return -1
        head = data[:end].decode("latin-1").split("\r\n")
        status = head[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            self.fail(f"upgrade refused: {head[0]!r}")
            return -2
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if fields.get("sec-websocket-accept") != accept_key(self.key):
            self.fail("a wrong Sec-WebSocket-Accept")
            return -2
        self.stats.opened += 1
        self.opened.set_result(None)
        self.on_open()
        return end + 4

    def _frame(self, b0: int, data: bytearray, head: int, end: int) -> None:
        op = b0 & 0x0F
        if b0 & 0x70:
            self.fail("a frame with reserved bits set")
        elif op >= 0x8:  # control frames: never fragmented, may come between fragments
            if op == OP_PING:
                self.write(client_frame(OP_PONG, bytes(data[head:end])))
                self.stats.pongs += 1
            elif op == OP_CLOSE:
                self._peer_close(bytes(data[head:end]))
        elif op == OP_CONT:
            if self.frag is None:
                self.fail("a continuation frame without a start")
                return
            self.frag.append(bytes(data[head:end]))
            if sum(map(len, self.frag)) > MAX_MESSAGE:
                self.fail("a fragmented message over the limit")
                return
            if b0 & 0x80:
                whole = bytearray().join(self.frag)
                self.frag = None
                self._message(self.frag_op, whole, 0, len(whole))
        elif self.frag is not None:
            self.fail("a new message inside a fragmented one")
        elif b0 & 0x80:
            self._message(op, data, head, end)
        else:
            self.frag = [bytes(data[head:end])]
            self.frag_op = op

    def _message(self, op: int, data: bytearray, head: int, end: int) -> None:
        if op == OP_BINARY:
            self.on_binary(data, head, end)
        elif op == OP_TEXT:
            self.on_text(data, head, end)
        else:
            self.fail(f"opcode {op}")

    def _peer_close(self, payload: bytes) -> None:
        if not self.closing:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            reason = payload[2:].decode("utf-8", "replace")
            self.fail(f"closed by the server: {code} {reason}")
        self.clock.leave(self)
        if self.transport is not None and not self.transport.is_closing():
            self.write(client_frame(OP_CLOSE, payload[:2]))  # the closing handshake
            self.write = _no_write

    def fail(self, what: str) -> None:
        """Count an error once per connection and end it."""
        if not self.closing:
            self.closing = True
            self.stats.error(what)
        if not self.opened.done():
            self.opened.set_exception(LoadError(what))
            self.opened.exception()  # counted above: whoever waits sees it, nobody must
        self.clock.leave(self)
        if self.transport is not None:
            self.transport.abort()
        elif not self.closed.done():  # it never connected
            self.closed.set_result(None)

    def close(self) -> None:
        """End the connection (a close frame, 1000): the server's close or the loss of the
        connection completes :attr:`closed`."""
        self.closing = True
        self.clock.leave(self)
        if self.transport is None or self.transport.is_closing():
            if not self.closed.done():
                self.closed.set_result(None)
            return
        self.write(client_frame(OP_CLOSE, (1000).to_bytes(2, "big")))
        self.write = _no_write

    # -- per protocol -----------------------------------------------------------------

    def on_open(self) -> None:
        """The upgrade succeeded."""

    def on_binary(self, data: bytearray, head: int, end: int) -> None:
        """A binary message: ``data[head:end]``."""

    def on_text(self, data: bytearray, head: int, end: int) -> None:
        """A text message: ``data[head:end]`` (UTF-8)."""


def _no_write(_data: bytes) -> None:
    return None


class Browser(Conn):
    """The relay's page: joins the clock on the relay's ``ready``, counts binary audio."""

    __slots__ = ("ready",)

    def __init__(self, request: bytes, key: str, stats: Stats, clock: Clock) -> None:
        super().__init__(request, key, stats, clock)
        self.ready = False

    def on_binary(self, data: bytearray, head: int, end: int) -> None:
        stats = self.stats
        if stats.on:
            stats.audio += 1

    def on_text(self, data: bytearray, head: int, end: int) -> None:
        if not self.ready and json.loads(data[head:end]).get("type") == "ready":
            self.ready = True
            self.clock.join(self)


#: A ``mark`` echo's text up to the mark object (``MARK_ECHO % (sid, mark)``).
MARK_ECHO: Final = '{"event":"mark","streamSid":%s,"mark":%s}'


class Call(Conn):
    """A Twilio media stream: sends ``start``, then joins the clock; counts the 20 ms
    frames of every ``media`` message and echoes every ``mark``."""

    __slots__ = ("echo_sid", "start")

    def __init__(
        self, request: bytes, key: str, stats: Stats, clock: Clock, start: bytes, sid: str
    ) -> None:
        super().__init__(request, key, stats, clock)
        self.start = start
        self.echo_sid = json.dumps(sid)

    def on_open(self) -> None:
        self.write(self.start)
        self.clock.join(self)

    def on_text(self, data: bytearray, head: int, end: int) -> None:
        first = data[head : head + 20]
        if b'"media"' in first:
            stats = self.stats
            if stats.on:  # 20 ms frames of 8 kHz mu-law (a message may carry several)
                at = data.find(b'"payload":"', head, end) + 11
                stats.audio += round((data.find(b'"', at, end) - at) * 3 // 4 / 160)
        elif b'"mark"' in first:
            mark = json.loads(data[head:end])["mark"]
            echo = MARK_ECHO % (self.echo_sid, json.dumps(mark, separators=(",", ":")))
            self.write(client_frame(OP_TEXT, echo.encode()))
            self.stats.marks += 1

    def on_binary(self, data: bytearray, head: int, end: int) -> None:
        self.fail("a binary message from the bridge")


# -- a run --------------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    """What to run: ``n`` connections to ``url`` (``?c=<i>`` added), ``browser`` (the relay's
    page) or a Twilio call, ``payloads`` sent one per ``period_ms`` (binary PCM for a
    browser, ``media`` JSON texts for a call)."""

    url: str
    n: int
    payloads: Sequence[bytes]
    period_ms: int
    browser: bool
    origin: str | None = None
    #: ``(url with its query) -> headers`` for each connection's upgrade (a signature).
    headers: Callable[[str], Sequence[tuple[str, str]]] | None = None
    #: ``i -> the call's start message`` (a call).
    start: Callable[[int], str] | None = None
    sid: str = ""
    slots: int = 20
    open_timeout: float = 30.0
    #: Once every connection is open, move every object the collector tracks out of
    #: its reach (``gc.freeze``): a collection then walks only what came after (a
    #: process of its own; the collections of a big heap were a sixth of its CPU).
    gc_freeze: bool = False


#: The longest the connections go on streaming after their window for the measured
#: process's window to end (``run``'s ``ended``).
HOLD_S: Final = 30.0


async def run(
    plan: Plan, seconds: float, warmup: float, settle: float, window: Any, ended: Any = None
) -> Stats:
    """Open every connection, stream for ``warmup`` s, call ``window.set()``, wait
    ``settle`` s, count for ``seconds`` (the window), go on streaming until
    ``ended.wait()`` returns (a ``multiprocessing.Event`` the measured process sets when
    its own window, which starts later, is over: at most :data:`HOLD_S`), then close
    every connection. Without ``ended`` the connections close at once: the closing
    handshakes of every connection would then fall into the end of the measured
    process's window."""
    loop = asyncio.get_running_loop()
    stats = Stats()
    opcode = OP_BINARY if plan.browser else OP_TEXT
    frames = [client_frame(opcode, p) for p in plan.payloads]  # built (and masked) once
    clock = Clock(loop, plan.period_ms / 1000, frames, stats, slots=plan.slots)
    clock.start()
    parts = urlsplit(plan.url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    conns: list[Conn] = []

    async def open_one(i: int) -> None:
        url = f"{plan.url}?c={i}"
        key = base64.b64encode(os.urandom(16)).decode()
        headers: list[tuple[str, str]] = []
        if plan.origin is not None:
            headers.append(("Origin", plan.origin))
        if plan.headers is not None:
            headers.extend(plan.headers(url))
        request = upgrade_request(url, key, headers)
        conn: Conn
        if plan.browser:
            conn = Browser(request, key, stats, clock)
        else:
            assert plan.start is not None
            start = client_frame(OP_TEXT, plan.start(i).encode())
            conn = Call(request, key, stats, clock, start, plan.sid)
        conns.append(conn)
        try:
            async with asyncio.timeout(plan.open_timeout):
                await loop.create_connection(lambda: conn, host, port)
                await conn.opened
        except Exception as exc:
            conn.fail(f"client {i}: {exc!r}")

    opening = [loop.create_task(open_one(i)) for i in range(plan.n)]
    try:
        await asyncio.sleep(warmup)  # every connection open and talking
        if plan.gc_freeze:
            gc.collect()
            gc.freeze()
        window.set()  # the measured process starts its window too, after its settle
        await asyncio.sleep(settle)
        stats.on = True
        t0, cpu0, sys0 = time.monotonic(), time.process_time(), os.times().system
        await asyncio.sleep(seconds)
        stats.on = False
        stats.window_s = time.monotonic() - t0
        stats.cpu_s = time.process_time() - cpu0
        stats.sys_s = os.times().system - sys0
        if ended is not None:
            await asyncio.to_thread(ended.wait, HOLD_S)
    finally:
        if plan.gc_freeze:
            gc.unfreeze()
        clock.stop()
        async with asyncio.timeout(plan.open_timeout):
            await asyncio.gather(*opening)
        for conn in conns:
            conn.close()
        try:
            async with asyncio.timeout(10):
                await asyncio.gather(*(c.closed for c in conns))
        except TimeoutError:
            for conn in conns:
                if conn.transport is not None:
                    conn.transport.abort()
    if stats.first_error:
        print(stats.first_error, file=sys.stderr, flush=True)
    return stats


def report(stats: Stats) -> dict[str, float]:
    """The statistics ``bench.density`` reads, as floats."""
    return {
        "frames": float(stats.frames),
        "late_frames": float(stats.late_frames),
        "blocked_frames": float(stats.blocked_frames),
        "audio": float(stats.audio),
        "marks": float(stats.marks),
        "pongs": float(stats.pongs),
        "errors": float(stats.errors),
        "opened": float(stats.opened),
        "window_s": stats.window_s,
        "cpu_s": stats.cpu_s,
        "sys_s": stats.sys_s,
    }
