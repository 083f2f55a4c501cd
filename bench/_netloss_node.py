"""The two helper processes of :mod:`bench.netloss`, run inside its network namespace.

    python -m bench._netloss_node service   # fake Live service + relay app (uvicorn)
    python -m bench._netloss_node proxy     # the user-space delay proxy (TCP and UDP)

Each prints one ``READY {json}`` line on stdout once it listens. ``service`` serves the
relay's ASGI app with two measuring wrappers: the time each binary WebSocket message
reached the app (the WebSocket relay's audio chunks, in order) and the pts and time of
each decoded audio frame handed out by aiortc's remote track (the WebRTC side). ``GET
/netloss/take`` returns what was recorded since the last call and clears it.

``proxy`` reads commands on stdin, one per line, and answers one line each:

* ``tcp PORT`` -> ``ok LISTEN_PORT``: accept on LISTEN_PORT, connect to PORT, forward
  both ways, each read delivered ``--delay-ms`` later (order kept).
* ``udp HOST PORT`` -> ``ok BROWSER_SIDE_PORT RELAY_SIDE_PORT``: a datagram pair for one
  WebRTC peer whose host candidate is HOST:PORT. The browser sends to
  BROWSER_SIDE_PORT (its answer's candidate is rewritten to it); the relay sends to
  RELAY_SIDE_PORT (the offer's candidate is rewritten to it). Every datagram is
  forwarded ``--delay-ms`` later. ``target ID HOST PORT`` sets the relay's address.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

HOST = "10.77.0.1"
#: Records kept per kind between two ``take`` calls (a run streams a few thousand frames).
MAX_RECORDS = 100_000


# -- the service ------------------------------------------------------------------------


class Recorder:
    """Arrival times at the relay process, bounded, cleared on :meth:`take`."""

    def __init__(self) -> None:
        self.ws: list[float] = []
        self.rtc: list[tuple[int, float]] = []

    def ws_chunk(self) -> None:
        if len(self.ws) < MAX_RECORDS:
            self.ws.append(time.monotonic())

    def rtc_frame(self, pts: int) -> None:
        if len(self.rtc) < MAX_RECORDS:
            self.rtc.append((pts, time.monotonic()))

    def take(self) -> dict[str, Any]:
        out = {"ws": self.ws, "rtc": self.rtc}
        self.ws, self.rtc = [], []
        return out


def _patch_remote_track(recorder: Recorder) -> None:
    """Record every audio frame aiortc's remote track hands to its consumer."""
    try:
        from aiortc.rtcrtpreceiver import RemoteStreamTrack
    except ImportError:  # the WebRTC side is then reported as unavailable
        return
    original = RemoteStreamTrack.recv

    async def recv(self: Any) -> Any:
        frame = await original(self)
        if self.kind == "audio" and frame.pts is not None:
            recorder.rtc_frame(int(frame.pts))
        return frame

    RemoteStreamTrack.recv = recv  # type: ignore[method-assign]


#: (capacity, prefetch) for the audio jitter buffer of aiortc receivers made from now on;
#: None keeps aiortc's (16, 4). Set by ``GET /netloss/jitter?C,P`` (``?`` alone resets).
JITTER: list[tuple[int, int] | None] = [None]


def _patch_jitter_buffer() -> None:
    """Let a cell try another audio jitter buffer size (an experiment, not the product)."""
    try:
        from aiortc.jitterbuffer import JitterBuffer
        from aiortc.rtcrtpreceiver import RTCRtpReceiver
    except ImportError:
        return
    original = RTCRtpReceiver.__init__

    def init(self: Any, kind: str, transport: Any) -> None:
        original(self, kind, transport)
        size = JITTER[0]
        if kind == "audio" and size is not None:
            self._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=size[0], prefetch=size[1])

    RTCRtpReceiver.__init__ = init  # type: ignore[method-assign]


Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _measured(app: Asgi, recorder: Recorder) -> Asgi:
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/netloss/jitter":
            query = scope["query_string"].decode()
            JITTER[0] = (int(query.split(",")[0]), int(query.split(",")[1])) if query else None
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        if scope["type"] == "http" and scope["path"] == "/netloss/take":
            body = json.dumps(recorder.take()).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "websocket":
            await app(scope, receive, send)
            return

        async def timed() -> Any:
            message = await receive()
            if message.get("bytes") is not None:
                recorder.ws_chunk()
            return message

        await app(scope, timed, send)

    return wrapped


async def service(args: argparse.Namespace) -> None:
    import gemini_live as gl
    from gemini_live.testing import FakeLiveServer
    from gemini_live.web import Relay, RelayLimits, create_app, running

    recorder = Recorder()
    _patch_remote_track(recorder)
    _patch_jitter_buffer()
    async with FakeLiveServer() as fake:

        def config(_c: Any) -> gl.SessionConfig:
            return gl.build_config(url=fake.url)

        limits = RelayLimits(
            audio_bytes_per_second=1e9,
            audio_burst_bytes=10**9,
            messages_per_second=1e9,
            message_burst=10**9,
            turns_per_minute=None,
        )
        relay = Relay(config, authorize=Relay.ALLOW_ANYONE, limits=limits)
        # The relay's app with its WebRTC end (gemini_live.webrtc) at /live/webrtc/offer.
        app = create_app(relay, page=False, webrtc=True)
        async with running(_measured(app, recorder), host=HOST, limits=limits) as url:
            print("READY " + json.dumps({"url": url, "webrtc": "gemini_live.webrtc"}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# -- the delay proxy --------------------------------------------------------------------


class _Delayed:
    """Deliver items ``delay`` seconds after they were put, in order."""

    def __init__(self, delay: float, deliver: Callable[[Any], None]) -> None:
        self.delay = delay
        self.deliver = deliver
        self.queue: asyncio.Queue[tuple[float, Any]] = asyncio.Queue(maxsize=10_000)
        self.task = asyncio.get_running_loop().create_task(self._run())

    def put(self, item: Any) -> None:
        if self.queue.full():  # bounded: a stuck side loses data instead of growing
            return
        self.queue.put_nowait((time.monotonic() + self.delay, item))

    async def _run(self) -> None:
        while True:
            due, item = await self.queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # the delay itself, not a synchronization
            self.deliver(item)
            self.queue.task_done()


async def _tcp_proxy(target: int, delay: float) -> int:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(HOST, target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            def deliver(data: bytes) -> None:
                if data:
                    dst.write(data)
                elif dst.can_write_eof():
                    dst.write_eof()

            delayed = _Delayed(delay, deliver)
            try:
                while data := await src.read(65536):
                    delayed.put(data)
                delayed.put(b"")
                async with asyncio.timeout(10):
                    await delayed.queue.join()
            except (OSError, TimeoutError):
                pass
            finally:
                delayed.task.cancel()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        for w in (writer, up_writer):
            w.close()

    server = await asyncio.start_server(handle, HOST, 0)
    port: int = server.sockets[0].getsockname()[1]
    return port


class _UdpSide(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)


class _UdpPair:
    def __init__(self, browser: tuple[str, int], delay: float) -> None:
        self.browser = browser
        self.relay: tuple[str, int] | None = None
        self.delay = delay

    async def open(self) -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        self.b_side = _UdpSide(self._from_browser)
        self.r_side = _UdpSide(self._from_relay)
        await loop.create_datagram_endpoint(lambda: self.b_side, local_addr=(HOST, 0))
        await loop.create_datagram_endpoint(lambda: self.r_side, local_addr=(HOST, 0))
        self.to_relay = _Delayed(self.delay, self._send_relay)
        self.to_browser = _Delayed(self.delay, self._send_browser)
        assert self.b_side.transport and self.r_side.transport
        return (
            self.b_side.transport.get_extra_info("sockname")[1],
            self.r_side.transport.get_extra_info("sockname")[1],
        )

    def _from_browser(self, data: bytes, addr: tuple[str, int]) -> None:
        self.to_relay.put(data)

    def _from_relay(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.relay is None:
            self.relay = addr
        self.to_browser.put(data)

    def _send_relay(self, data: bytes) -> None:
        if self.relay is not None and self.r_side.transport is not None:
            self.r_side.transport.sendto(data, self.relay)

    def _send_browser(self, data: bytes) -> None:
        if self.b_side.transport is not None:
            self.b_side.transport.sendto(data, self.browser)


async def proxy(args: argparse.Namespace) -> None:
    delay = args.delay_ms / 1000
    pairs: dict[str, _UdpPair] = {}
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("READY {}", flush=True)
    while line := (await reader.readline()).decode().split():
        if line[0] == "tcp":
            print(f"ok {await _tcp_proxy(int(line[1]), delay)}", flush=True)
        elif line[0] == "udp":
            pair = _UdpPair((line[1], int(line[2])), delay)
            b_port, r_port = await pair.open()
            pairs[str(b_port)] = pair
            if len(pairs) > 100:  # bounded: the oldest pair is forgotten
                pairs.pop(next(iter(pairs)))
            print(f"ok {b_port} {r_port}", flush=True)
        elif line[0] == "target":
            pairs[line[1]].relay = (line[2], int(line[3]))
            print("ok", flush=True)
        else:
            print(f"error unknown command {line[0]!r}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._netloss_node")
    parser.add_argument("role", choices=("service", "proxy"))
    parser.add_argument("--delay-ms", type=float, default=40.0)
    args = parser.parse_args()
    asyncio.run(service(args) if args.role == "service" else proxy(args))


if __name__ == "__main__":
    main()
