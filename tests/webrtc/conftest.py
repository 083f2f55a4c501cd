"""Helpers for the WebRTC tests: an HTTP POST, and an aiortc peer standing in for a page."""

from __future__ import annotations

import asyncio
import fractions
import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

#: Sentinel: send the server's own origin.
SAME_ORIGIN = "same"


async def post(
    url: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    origin: str | None = SAME_ORIGIN,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to ``url`` (HTTP/1.1, bounded); the status and the JSON answer."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if origin == SAME_ORIGIN:
        origin = f"http://{host}:{port}"
    if origin is not None:
        lines.append(f"Origin: {origin}")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    async with asyncio.timeout(30):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        payload = _unchunk(payload)
    return status, json.loads(payload) if payload else {}


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)


class PcmTrack(MediaStreamTrack):
    """A microphone: plays 16 kHz PCM16 in 20 ms frames in real time, then silence."""

    kind = "audio"

    def __init__(self, pcm: bytes, rate: int = 16000) -> None:
        super().__init__()
        self.pcm = pcm
        self.rate = rate
        self.pos = 0
        self.pts = 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        samples = self.rate // 50
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        else:
            self.pts += samples
            wait = self.start + self.pts / self.rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # real-time pacing of a microphone
        chunk = self.pcm[self.pos : self.pos + samples * 2]
        self.pos += samples * 2
        chunk += bytes(samples * 2 - len(chunk))
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(chunk + bytes(frame.planes[0].buffer_size - len(chunk)))
        frame.pts = self.pts
        frame.sample_rate = self.rate
        frame.time_base = fractions.Fraction(1, self.rate)
        return frame


@dataclass
class Peer:
    """The test's page: a peer connection, its data channel and what came back."""

    pc: RTCPeerConnection
    channel: RTCDataChannel
    messages: list[dict[str, Any]] = field(default_factory=list)
    audio_in_bytes: int = 0
    audio_energy: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    def send(self, obj: dict[str, Any]) -> None:
        self.channel.send(json.dumps(obj))

    async def wait_for(self, predicate: Any, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def types(self) -> list[str]:
        return [str(m.get("type")) for m in self.messages]


async def make_offer(
    pcm: bytes = b"", *, audio: bool = True, channel: bool = True
) -> tuple[RTCPeerConnection, RTCDataChannel | None]:
    pc = RTCPeerConnection()
    if audio:
        pc.addTrack(PcmTrack(pcm))
    dc = pc.createDataChannel("gemini-live") if channel else None
    await pc.setLocalDescription(await pc.createOffer())
    return pc, dc


@asynccontextmanager
async def peer(base: str, pcm: bytes = b"", query: str = "") -> AsyncIterator[Peer]:
    """A peer connection to ``base``'s offer endpoint that streams ``pcm`` as its mic."""
    pc, dc = await make_offer(pcm)
    assert dc is not None
    p = Peer(pc, dc)

    @dc.on("message")
    def on_message(text: str) -> None:
        p.messages.append(json.loads(text))
        p.changed.set()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            try:
                while True:
                    frame = await track.recv()
                    assert isinstance(frame, av.AudioFrame)
                    arr = frame.to_ndarray()
                    p.audio_in_bytes += frame.samples * 2
                    p.audio_energy += float((arr.astype("float64") ** 2).sum())
                    p.changed.set()
            except MediaStreamError:
                return

        p.readers.append(asyncio.get_running_loop().create_task(read()))

    @pc.on("connectionstatechange")
    def on_state() -> None:
        p.changed.set()

    try:
        status, answer = await post(
            base + "/live/webrtc/offer" + query,
            json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}).encode(),
        )
        assert status == 200, (status, answer)
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        yield p
    finally:
        for t in p.readers:
            t.cancel()
        async with asyncio.timeout(10):
            await pc.close()
            for t in p.readers:
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
