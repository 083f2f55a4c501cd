"""``--record FILE.jsonl``: a wire log of every frame, written by a wrapping Backend.

One JSON object per line::

    {"t": 0.0123, "conn": 1, "dir": "client", "bytes": 412, "frame": {...}}
    {"t": 0.0456, "conn": 1, "dir": "server", "bytes": 2661, "frame": {...}}
    {"t": 1.2000, "conn": 1, "dir": "meta", "event": "close", "code": 1000, ...}

``t`` is seconds since the recorder started (monotonic), ``wall`` the UTC time. Base64
payloads (``inlineData`` / ``audio`` / ``video`` blobs) are replaced by a short
placeholder and every line passes through :func:`gemini_live.errors.redact`, so API keys
and tokens never reach the file (headers are not recorded at all).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from gemini_live.errors import ConnectError, redact
from gemini_live.transport.base import (
    Backend,
    CloseInfo,
    ConnectOptions,
    FrameHandler,
    Transport,
)

__all__ = ["RecordingBackend", "WireRecorder", "scrub_frame"]

_MIME_KEYS = ("mimeType", "mime_type")


def _scrub(obj: Any) -> Any:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        is_blob = any(k in obj for k in _MIME_KEYS)
        for k, v in obj.items():
            if is_blob and k == "data" and isinstance(v, str):
                out[k] = f"<base64 redacted: {len(v)} chars>"
            else:
                out[k] = _scrub(v)
        return out
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj


def scrub_frame(data: bytes) -> dict[str, Any]:
    """The loggable form of one frame: parsed JSON with blob payloads replaced."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return {"binary": True}
        return {"text": text[:500]}
    return {"frame": _scrub(obj)}


class WireRecorder:
    """Appends redacted records to a JSONL file (line-buffered, closed by :meth:`close`)."""

    def __init__(self, path: str | Path, *, clock: Any = time.monotonic) -> None:
        self.path = Path(path)
        self._clock = clock
        self._t0 = clock()
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")
        self._connections = 0
        self.records = 0

    def next_connection(self) -> int:
        self._connections += 1
        return self._connections

    def write(self, conn: int, direction: str, **fields: Any) -> None:
        f = self._file
        if f is None:
            return
        record: dict[str, Any] = {
            "t": round(self._clock() - self._t0, 6),
            "wall": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "conn": conn,
            "dir": direction,
            **fields,
        }
        f.write(redact(json.dumps(record, ensure_ascii=False, separators=(",", ":"))) + "\n")
        self.records += 1

    def frame(self, conn: int, direction: str, data: bytes) -> None:
        self.write(conn, direction, bytes=len(data), **scrub_frame(data))

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()


class _RecordingHandler:
    __slots__ = ("_conn", "_inner", "_recorder")

    def __init__(self, inner: FrameHandler, recorder: WireRecorder, conn: int) -> None:
        self._inner = inner
        self._recorder = recorder
        self._conn = conn

    def on_frame(self, data: bytes) -> None:
        self._recorder.frame(self._conn, "server", data)
        self._inner.on_frame(data)

    def on_close(self, info: CloseInfo) -> None:
        self._recorder.write(
            self._conn,
            "meta",
            event="close",
            code=info.code,
            reason=info.reason,
            by="client" if info.local else "server",
        )
        self._inner.on_close(info)


class _RecordingTransport:
    __slots__ = ("_conn", "_inner", "_recorder")

    def __init__(self, inner: Transport, recorder: WireRecorder, conn: int) -> None:
        self._inner = inner
        self._recorder = recorder
        self._conn = conn

    async def send(self, data: bytes) -> None:
        self._recorder.frame(self._conn, "client", data)
        await self._inner.send(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._inner.close(code, reason)

    def abort(self) -> None:
        self._inner.abort()

    @property
    def closed(self) -> bool:
        return self._inner.closed


class RecordingBackend:
    """A :class:`~gemini_live.transport.base.Backend` that logs every frame of ``inner``."""

    def __init__(self, inner: Backend, recorder: WireRecorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.name = f"recording+{getattr(inner, 'name', 'backend')}"

    async def connect(self, url: str, handler: FrameHandler, options: ConnectOptions) -> Transport:
        conn = self.recorder.next_connection()
        self.recorder.write(conn, "meta", event="connect", url=redact(url), backend=self.inner.name)
        try:
            transport = await self.inner.connect(
                url, _RecordingHandler(handler, self.recorder, conn), options
            )
        except ConnectError as exc:
            self.recorder.write(conn, "meta", event="connect_failed", error=str(exc))
            raise
        return _RecordingTransport(transport, self.recorder, conn)
