"""A handle covers only what has left the client (issue 20, "coverage never inferred from a
clock alone").

A test-local service on 127.0.0.1 whose view lags the client's writes, as behind a
congested uplink: right after the setup (and a handle for that point) it stops reading its
socket (``pause_reading``; its receive buffer is made smaller than one chunk), so the
chunks the client writes stay in the client's write buffer and kernel send queue. When
the client has written them all, the service issues a handle for what it consumed
(nothing past the setup); ``lag`` seconds later (the fault, a timed hold) another one,
and the connection drops. The client resumes from the last handle; the service records
what it consumes on the new connection. Every chunk must arrive there, or each loss be
counted in ``frames_at_risk``.

Before the fix the client took every chunk written more than ``handle_guard`` (0.2 s)
before a handle as covered by it: at lags 0.6 s and 1.5 s all of them were lost,
uncounted. A client that took a chunk as gone once written (or ignored the kernel's send
queue) would take every chunk as covered by the second handle, since the first one came
after the last write.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.types import Setup

from .conftest import MODEL

#: 4 s of audio in 100 ms chunks (within the 5 s re-send window; each frame, ~4.3 KB,
#: is larger than the service's receive buffer).
CHUNKS = 40
MID_HANDLE = "handle-after-writes"
LAG_HANDLE = "handle-after-lag"
STEP = 10.0  # bound on each wait


def chunk(seq: int) -> bytes:
    """100 ms of 16 kHz PCM16 whose first 4 bytes carry the sequence number."""
    return struct.pack("<I", seq) + bytes(3196)


def handle_update(handle: str) -> str:
    return json.dumps({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})


class LaggingService:
    """The service side: the first connection lags and drops, later ones consume all."""

    def __init__(self, lag: float) -> None:
        self.lag = lag
        #: Set by the test: the client applied the setup point's handle / wrote every
        #: chunk / applied the handle issued after the lag.
        self.first_handle_seen = asyncio.Event()
        self.written = asyncio.Event()
        self.handle_seen = asyncio.Event()
        #: Per connection: the setup's resumption handle, and the audio chunks consumed.
        self.resumed_from: list[str | None] = []
        self.consumed: list[list[int]] = []
        self.ended = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        number = len(self.consumed)
        seqs: list[int] = []
        self.consumed.append(seqs)
        async with asyncio.timeout(3 * STEP):
            setup = json.loads(await ws.recv())["setup"]
            self.resumed_from.append(setup.get("sessionResumption", {}).get("handle"))
            await ws.send(json.dumps({"setupComplete": {"sessionId": "s"}}))
            if number == 0:
                ws.transport.pause_reading()  # the congested uplink, from now on
            await ws.send(handle_update(f"handle-{number}"))
            if number == 0:
                await self._lag_then_drop(ws)
                return
            # A healthy link from now on (a tiny window would make the transfer crawl).
            ws.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20
            )
            try:
                while True:
                    msg = json.loads(await ws.recv())
                    ri = msg.get("realtimeInput", {})
                    if "audio" in ri:
                        data = base64.b64decode(ri["audio"]["data"])
                        seqs.append(struct.unpack_from("<I", data)[0])
                    elif ri.get("text") == "end":
                        self.ended.set()
            except ConnectionClosed:
                pass

    async def _lag_then_drop(self, ws: ServerConnection) -> None:
        async with asyncio.timeout(STEP):
            await self.written.wait()
        # A handle for what the service consumed: nothing past the setup ...
        await ws.send(handle_update(MID_HANDLE))
        # ... still nothing `lag` seconds later (the fault) ...
        await asyncio.sleep(self.lag)
        await ws.send(handle_update(LAG_HANDLE))
        async with asyncio.timeout(STEP):
            await self.handle_seen.wait()
        # ... and the connection drops.
        ws.transport.abort()


@asynccontextmanager
async def lagging_service(lag: float) -> AsyncIterator[tuple[LaggingService, str]]:
    service = LaggingService(lag)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # The smallest receive buffer (inherited by accepted sockets), below one chunk's
    # frame: what the service's kernel acknowledges while the service does not read has
    # left the client, yet never reached the service.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    # max_queue=None: the library never resumes reading on its own (no flow control).
    async with serve(service.handler, sock=sock, max_queue=None, compression=None):
        yield service, f"ws://127.0.0.1:{port}/ws"


@pytest.mark.parametrize("lag", [0.1, 0.6, 1.5])
@pytest.mark.parametrize("backend_name", ["picows", "websockets"])
async def test_a_lagging_service_loses_nothing_uncounted(backend_name: str, lag: float) -> None:
    async with lagging_service(lag) as (service, url):
        cfg = gl.SessionConfig(
            setup=Setup(model=MODEL),
            transport=gl.TransportConfig(
                endpoint=gl.Endpoint.custom(url),
                auth=gl.Auth.none(),
                backend=backend_name,
                open_timeout=5.0,
            ),
            reconnect=gl.ReconnectPolicy(base_backoff=0.01, max_backoff=0.05),
            setup_timeout=5.0,
            metrics=False,
        )
        async with asyncio.timeout(6 * STEP):
            session = await gl.connect(cfg)

            def on_event(e: ev.Event) -> None:
                if isinstance(e, ev.SessionResumptionUpdate):
                    if e.handle == "handle-0":
                        service.first_handle_seen.set()
                    elif e.handle == LAG_HANDLE:
                        service.handle_seen.set()

            session.on_event(on_event)
            # The handle of the setup point first: the chunks are written after it.
            if session.resume_handle != "handle-0":
                async with asyncio.timeout(STEP):
                    await service.first_handle_seen.wait()
            for seq in range(CHUNKS):
                await session.send_audio(chunk(seq))
            service.written.set()
            async with asyncio.timeout(STEP + lag):
                await service.handle_seen.wait()
            await session.send_text("end")  # after the re-sent window, on the next connection
            async with asyncio.timeout(STEP):
                await service.ended.wait()
            stats = session.stats
            await session.close()

    assert service.resumed_from[1] == LAG_HANDLE
    lost = set(range(CHUNKS)) - set(service.consumed[1])
    assert len(lost) <= stats.frames_at_risk, (
        f"lost {len(lost)} of {CHUNKS} chunks, {stats.frames_at_risk} counted at risk"
    )
    if sys.platform.startswith("linux"):  # the kernel tells: nothing is even at risk
        assert not lost
        assert stats.frames_at_risk == 0
