"""Helpers for the web relay tests: synthetic speech, a relay served by uvicorn."""

from __future__ import annotations

import math
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import gemini_live as gl
from gemini_live.testing import FakeLiveServer
from gemini_live.web import ConnectionInfo, Relay, create_app, running

ORIGIN_OK = "http://127.0.0.1"
#: The explicit opt-out of the identity check (these tests are about other things).
ANYONE = Relay.ALLOW_ANYONE


def speech(ms: int, rate: int = 16000, freq: float = 180.0, amp: float = 0.3) -> bytes:
    """A voiced-sounding burst: a fundamental with harmonics (the fake does no ASR)."""
    n = rate * ms // 1000
    out = bytearray()
    for i in range(n):
        t = i / rate
        v = sum(math.sin(2 * math.pi * freq * k * t) / k for k in (1, 2, 3, 4))
        out += struct.pack("<h", int(max(-1.0, min(1.0, amp * v / 1.5)) * 32767))
    return bytes(out)


def silence(ms: int, rate: int = 16000) -> bytes:
    return bytes(rate * ms // 1000 * 2)


def activity_starts(server: FakeLiveServer) -> int:
    """``activityStart`` messages the fake server received on its first connection."""
    return sum(
        1
        for m in server.received[0]
        if m.realtime_input is not gl.types.UNSET
        and m.realtime_input.activity_start is not gl.types.UNSET
    )


def frames(pcm: bytes, ms: int = 20, rate: int = 16000) -> list[bytes]:
    size = rate * ms // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def fake_config(server: FakeLiveServer) -> Callable[[ConnectionInfo], gl.SessionConfig]:
    def config(_conn: ConnectionInfo) -> gl.SessionConfig:
        return gl.build_config(
            url=server.url,
            input_audio_transcription=True,
            output_audio_transcription=True,
        )

    return config


@asynccontextmanager
async def served_relay(relay: Relay, **app_options: Any) -> AsyncIterator[str]:
    """Serve ``relay`` (plus the page) on a free port; yields the ws:// URL of the relay."""
    async with running(create_app(relay, **app_options)) as url:
        yield url.replace("http://", "ws://") + "/live"
