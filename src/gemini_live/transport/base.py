"""The transport seam: the only contract between the session and a WebSocket library.

A backend opens one WebSocket connection and then pushes every received message to a
:class:`FrameHandler` *synchronously from the event loop* (no per-frame task or queue: the
handler is the session's decoder). Sending is a coroutine so that a backend can apply
backpressure. Closing reports a :class:`CloseInfo` exactly once through
:meth:`FrameHandler.on_close`.

Backends never raise their library's own exceptions to callers: connection failures become
:class:`gemini_live.errors.ConnectError`, sends on a closed connection become
:class:`TransportClosed`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gemini_live.errors import GeminiLiveError

__all__ = [
    "Backend",
    "CloseInfo",
    "ConnectOptions",
    "FrameHandler",
    "SyncSender",
    "Transport",
    "TransportClosed",
]


@dataclass(frozen=True, slots=True)
class CloseInfo:
    """How a connection ended.

    ``code`` is the WebSocket close code (1006 when no close frame was received),
    ``reason`` the close reason text, and ``local`` is True when this side decided to
    close (our own :meth:`Transport.close`, a keepalive timeout, a protocol error we
    detected) rather than the peer.
    """

    code: int
    reason: str = ""
    local: bool = False


class TransportClosed(GeminiLiveError):
    """Raised by :meth:`Transport.send` when the connection is already closed."""

    def __init__(self, info: CloseInfo | None) -> None:
        self.info = info
        if info is None:
            super().__init__("transport is closed")
        else:
            super().__init__(f"transport is closed (code {info.code}: {info.reason})")


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Everything a backend needs to open a connection.

    ``headers`` may carry credentials: backends must never log them.
    ``ssl_context`` is used for ``wss://`` URLs (None means the system default context,
    with verification on); it is ignored for ``ws://``.
    ``ping_interval`` None disables client keepalive pings (the default: Gemini pongs
    have been measured at 8-30 s, so strict pings kill healthy sessions).
    """

    headers: tuple[tuple[str, str], ...] = ()
    ssl_context: ssl.SSLContext | None = None
    proxy: str | None = None
    open_timeout: float = 10.0
    ping_interval: float | None = None
    ping_timeout: float | None = None
    max_message_size: int = 16 * 1024 * 1024
    user_agent: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


class FrameHandler(Protocol):
    """Receives what a transport reads. Both methods are called on the event loop."""

    def on_frame(self, data: bytes) -> None:
        """One complete WebSocket message (text or binary), as bytes."""

    def on_close(self, info: CloseInfo) -> None:
        """The connection ended; called exactly once, after the last :meth:`on_frame`."""


@runtime_checkable
class Transport(Protocol):
    """One open WebSocket connection."""

    async def send(self, data: bytes) -> None:
        """Send ``data`` (UTF-8 JSON) as one text frame.

        Raises :class:`TransportClosed` if the connection is closed. May wait while the
        write buffer is above the backend's high-water mark (backpressure).
        """

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and wait (bounded) until the connection is closed.

        Idempotent. :meth:`FrameHandler.on_close` is called with ``local=True``.
        """

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake."""

    @property
    def closed(self) -> bool:
        """True once the connection is closed or closing."""

    @property
    def close_info(self) -> CloseInfo | None:
        """How the connection ended, or None while it is open."""

    def write_buffer_size(self) -> int:
        """Bytes accepted by :meth:`send` but not yet handed to the kernel."""


@runtime_checkable
class SyncSender(Protocol):
    """Optional extra of a :class:`Transport`: a synchronous send for the hot path.

    ``try_send(data)`` writes one text frame at once and returns True, or returns False
    (writing nothing) when the connection is closed or applying backpressure; the caller
    then falls back to :meth:`Transport.send`. Backends that cannot write synchronously
    simply do not have it.
    """

    def try_send(self, data: bytes) -> bool: ...


class Backend(Protocol):
    """Opens connections. ``name`` is what users pass as ``backend=``."""

    name: str

    async def connect(self, url: str, handler: FrameHandler, options: ConnectOptions) -> Transport:
        """Open a WebSocket to ``url`` and return it once the HTTP upgrade succeeded.

        Raises :class:`gemini_live.errors.ConnectError` (with ``status`` for a refused
        upgrade) on any failure, within ``options.open_timeout`` seconds.
        """
