"""Helpers for driving FakeLiveServer with a bare ``websockets`` client or the memory backend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from gemini_live.transport.base import CloseInfo

JSON = dict[str, Any]


async def send_json(ws: ClientConnection, obj: JSON) -> None:
    await ws.send(json.dumps(obj))


async def recv_json(ws: ClientConnection) -> JSON:
    """One server frame; every server frame must be a binary frame."""
    data = await ws.recv()
    assert isinstance(data, bytes), f"server sent a text frame: {data!r}"
    obj = json.loads(data)
    assert isinstance(obj, dict)
    return obj


async def recv_until(ws: ClientConnection, done: Callable[[JSON], bool]) -> list[JSON]:
    """Frames up to and including the first for which ``done`` is true."""
    frames: list[JSON] = []
    while True:
        frame = await recv_json(ws)
        frames.append(frame)
        if done(frame):
            return frames


async def expect_close(ws: ClientConnection) -> tuple[int, str, list[JSON]]:
    """Read until the connection ends; return (code, reason, frames read before)."""
    frames: list[JSON] = []
    try:
        while True:
            frames.append(await recv_json(ws))
    except ConnectionClosed as exc:
        if exc.rcvd is None:
            return 1006, "", frames
        return exc.rcvd.code, exc.rcvd.reason, frames


async def do_setup(ws: ClientConnection, **fields: Any) -> JSON:
    """Send a setup (model defaults to models/m) and return the setupComplete frame."""
    await send_json(ws, {"setup": {"model": "models/m", **fields}})
    frame = await recv_json(ws)
    assert "setupComplete" in frame, frame
    return frame


def is_turn_complete(frame: JSON) -> bool:
    return bool(frame.get("serverContent", {}).get("turnComplete"))


def is_update(frame: JSON) -> bool:
    return "sessionResumptionUpdate" in frame


def is_handle(frame: JSON) -> bool:
    """A resumption update that carries a usable handle (``resumable: true``)."""
    return frame.get("sessionResumptionUpdate", {}).get("resumable") is True


def transcript(frames: list[JSON]) -> str:
    return "".join(
        f.get("serverContent", {}).get("outputTranscription", {}).get("text", "") for f in frames
    )


class Collector:
    """A FrameHandler for the memory backend that records what it is given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_info: CloseInfo | None = None

    def on_frame(self, data: bytes) -> None:
        assert not self.closed.is_set(), "frame after on_close"
        self.events.append(("frame", data))
        self.frames.put_nowait(data)

    def on_close(self, info: CloseInfo) -> None:
        assert not self.closed.is_set(), "on_close called twice"
        self.events.append(("close", info))
        self.close_info = info
        self.closed.set()

    async def next(self) -> JSON:
        obj = json.loads(await self.frames.get())
        assert isinstance(obj, dict)
        return obj

    async def until(self, done: Callable[[JSON], bool]) -> list[JSON]:
        frames: list[JSON] = []
        while True:
            frame = await self.next()
            frames.append(frame)
            if done(frame):
                return frames

    async def wait_closed(self) -> CloseInfo:
        await self.closed.wait()
        assert self.close_info is not None
        return self.close_info
