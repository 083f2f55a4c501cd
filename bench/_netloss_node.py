"""The two helper processes of :mod:`bench.netloss`.

    python -m bench._netloss_node service   # in the relay's namespace
    python -m bench._netloss_node wire --relay-ns NAME   # started in the browser's

``service`` runs the fake Live service and the relay's ASGI app (uvicorn, WebRTC enabled)
on 10.77.0.2, with two measuring wrappers: the time each binary WebSocket message reached
the app (the WebSocket relay's audio chunks, in order) and the pts and time of each
decoded microphone chunk the WebRTC end hands to the relay (``_RtcLink._on_inbound_audio``,
filled gaps left out). ``GET /netloss/take`` returns what was recorded since the last call
and clears it; ``GET /netloss/jitter?aiortc`` makes later peers use aiortc's own audio
jitter buffer instead of the play-out buffer (a comparison; ``?`` alone resets).

``wire`` is the link: a TUN device in each namespace (the kernel has no netem) and every
IP packet copied from one to the other ``--delay-ms`` later, in order. TCP and UDP see a
real round trip; iptables rules on the two devices drop packets.

Each prints one ``READY {json}`` line on stdout once it is up and stops when its stdin
closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import json
import os
import struct
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

#: The browser's and the relay's address, each end of the point-to-point TUN link.
BROWSER_HOST = "10.77.0.1"
HOST = "10.77.0.2"
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


def _patch_inbound_audio(recorder: Recorder) -> None:
    """Record every microphone chunk the WebRTC end hands to the relay (the seam
    ``_RtcLink._on_inbound_audio``), by its pts in 48 kHz samples; silence filling a
    gap is not the microphone's audio and is not recorded."""
    try:
        from gemini_live.webrtc._peer import _RtcLink
    except ImportError:  # the WebRTC side is then reported as unavailable
        return
    original = _RtcLink._on_inbound_audio

    def on_inbound_audio(self: Any, pcm16k: bytes, capture_pts: float) -> None:
        if not self.inbound_filled:
            recorder.rtc_frame(round(capture_pts * 48000))
        original(self, pcm16k, capture_pts)

    _RtcLink._on_inbound_audio = on_inbound_audio  # type: ignore[method-assign]


#: True: later peers keep aiortc's own audio jitter buffer (16 packets, 4 frames
#: prefetch), the path before the play-out buffer, for comparison. Set by ``GET
#: /netloss/jitter?aiortc`` (``?`` alone resets).
AIORTC_JB: list[bool] = [False]


def _patch_feed() -> None:
    """Let a cell run without the play-out buffer (a comparison, not the product)."""
    try:
        from gemini_live.webrtc._peer import _RtcLink
    except ImportError:
        return
    original = _RtcLink._install_feed

    def install(self: Any, track: Any) -> Any:
        return None if AIORTC_JB[0] else original(self, track)

    _RtcLink._install_feed = install  # type: ignore[method-assign]


Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _measured(app: Asgi, recorder: Recorder) -> Asgi:
    from gemini_live._bridge import ON_MESSAGE_EXTENSION

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/netloss/jitter":
            AIORTC_JB[0] = scope["query_string"].decode() == "aiortc"
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

        # A frame the relay takes in the server's read callback (ADR 61) never passes
        # receive(): time it when the handler took it (a declined one is timed above).
        extensions = scope.get("extensions") or {}
        set_handler = extensions.get(ON_MESSAGE_EXTENSION)
        if callable(set_handler):

            def timed_set(handler: Callable[[bytes | str], bool] | None) -> None:
                if handler is None:
                    set_handler(None)
                    return

                def timed_handler(data: bytes | str) -> bool:
                    handled = handler(data)
                    if handled and isinstance(data, bytes):
                        recorder.ws_chunk()
                    return handled

                set_handler(timed_handler)

            scope = {**scope, "extensions": {**extensions, ON_MESSAGE_EXTENSION: timed_set}}
        await app(scope, timed, send)

    return wrapped


async def service(args: argparse.Namespace) -> None:
    import gemini_live as gl
    from gemini_live.testing import FakeLiveServer
    from gemini_live.web import Relay, RelayLimits, create_app, running

    recorder = Recorder()
    _patch_inbound_audio(recorder)
    _patch_feed()
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


# -- the wire ---------------------------------------------------------------------------

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000


def _open_tun(name: str) -> int:
    """A TUN device named ``name`` in this process's current network namespace."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _enter_namespace(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


class _Direction:
    """Packets read from one TUN device, written to the other ``delay`` seconds later."""

    def __init__(self, loop: asyncio.AbstractEventLoop, src: int, dst: int, delay: float) -> None:
        self.loop, self.src, self.dst, self.delay = loop, src, dst, delay
        self.queue: deque[tuple[float, bytes]] = deque(maxlen=10_000)
        self.timer: asyncio.TimerHandle | None = None
        self.overflow = 0
        loop.add_reader(src, self.read)

    def read(self) -> None:
        while True:
            try:
                packet = os.read(self.src, 65536)
            except BlockingIOError:
                return
            if len(self.queue) == self.queue.maxlen:
                self.overflow += 1  # bounded; reported on exit, never seen at these rates
            self.queue.append((self.loop.time() + self.delay, packet))
            if self.timer is None:
                self.timer = self.loop.call_at(self.queue[0][0], self.flush)

    def flush(self) -> None:
        self.timer = None
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now:
            with contextlib.suppress(BlockingIOError):
                os.write(self.dst, self.queue.popleft()[1])
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)


async def wire(args: argparse.Namespace) -> None:
    """Join the two namespaces with two TUN devices and a delay each way."""
    browser_side = _open_tun(args.browser_dev)
    _enter_namespace(args.relay_ns)
    relay_side = _open_tun(args.relay_dev)
    loop = asyncio.get_running_loop()
    delay = args.delay_ms / 1000
    ways = [
        _Direction(loop, browser_side, relay_side, delay),
        _Direction(loop, relay_side, browser_side, delay),
    ]
    print("READY {}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the run closes our stdin
    lost = sum(w.overflow for w in ways)
    if lost:
        print(f"wire: {lost} packets over the queue bound", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._netloss_node")
    parser.add_argument("role", choices=("service", "wire"))
    parser.add_argument("--delay-ms", type=float, default=40.0)
    parser.add_argument("--relay-ns", help="wire: the relay's namespace")
    parser.add_argument("--browser-dev", default="nlbrowser")
    parser.add_argument("--relay-dev", default="nlrelay")
    args = parser.parse_args()
    asyncio.run(service(args) if args.role == "service" else wire(args))


if __name__ == "__main__":
    main()
