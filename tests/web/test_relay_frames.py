"""The page's frames: 40 ms (mic-worklet.js) and 20 ms (older pages) both work with the
relay's VAD; the audio of one message goes up as one chunk."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import subprocess
import sys
from typing import Any

import pytest
import websockets

from gemini_live.testing import FakeLiveServer
from gemini_live.types import UNSET
from gemini_live.web import Relay, RelayLimits, running
from gemini_live.web._app import create_app

from .conftest import fake_config


def _tone(ms: int) -> bytes:
    n = 16 * ms
    return struct.pack(
        f"<{n}h", *(int(9000 * math.sin(2 * math.pi * 200 * i / 16000)) for i in range(n))
    )


def _chunks(server: FakeLiveServer) -> list[int]:
    sizes = []
    for m in server.received[0][1:]:
        ri = m.realtime_input
        if ri is not UNSET and ri.audio is not UNSET:
            sizes.append(len(base64.b64decode(ri.audio.data)))  # base64 on the wire
    return sizes


@pytest.mark.parametrize("page_ms", [20, 40, 60])
async def test_a_message_goes_up_as_one_chunk(page_ms: int) -> None:
    frame = _tone(page_ms)
    frames = 25
    async with FakeLiveServer() as server:
        relay = Relay(
            fake_config(server),
            authorize=Relay.ALLOW_ANYONE,
            limits=RelayLimits(audio_bytes_per_second=1e9, audio_burst_bytes=10**9),
        )
        async with running(create_app(relay, page=False)) as base:
            url = base.replace("http://", "ws://") + "/live"
            async with asyncio.timeout(30):
                origin: Any = base
                async with websockets.connect(url, origin=origin) as ws:
                    for _ in range(frames):
                        await ws.send(frame)
                    sent = frames * len(frame)
                    await server.wait_until(
                        lambda: (
                            bool(server.connections) and server.connections[0].audio_bytes >= sent
                        )
                    )
                    assert bytes(server.connections[0].audio) == frame * frames
                    sizes = _chunks(server)
                    # The pre-roll (the first 60 ms: the VAD's start) goes up with the
                    # start, then the rest of the message that completed it; after it,
                    # one chunk per message, as the page sent it.
                    start = 60 * 32
                    rest = -start % len(frame)
                    whole = (sent - start - rest) // len(frame)
                    assert sizes == [start] + [rest] * (rest > 0) + [len(frame)] * whole


@pytest.mark.parametrize("turn_detection", ["vad", "manual"])
def test_the_vads_numpy_is_imported_when_the_relay_is_built(turn_detection: str) -> None:
    """Not inside the event loop at the first browser's first frame (an import stalls
    every connection of the process for a while); not at all without the VAD."""
    pytest.importorskip("numpy")
    code = (
        "import sys\n"
        "import gemini_live as gl\n"
        "from gemini_live.web import Relay\n"
        "assert 'numpy' not in sys.modules\n"
        f"Relay(lambda c: gl.build_config(), authorize=Relay.ALLOW_ANYONE, "
        f"turn_detection={turn_detection!r})\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == str(turn_detection == "vad")
