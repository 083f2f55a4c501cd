"""The transport seam: the only contract between the session and a WebSocket library.

A backend opens one WebSocket connection and then pushes every received message to a
:class:`FrameHandler` *synchronously from the event loop* (no per-frame task or queue: the
handler is the session's decoder). Sending is a coroutine so that a backend can apply
backpressure. Closing reports a :class:`CloseInfo` exactly once through
:meth:`FrameHandler.on_close`.

Backends never raise their library's own exceptions to callers: connection failures become
:class:`gemini_live.errors.ConnectError`, sends on a closed connection become
:class:`~gemini_live.errors.TransportClosed` (defined in :mod:`gemini_live.errors`,
re-exported here).

Everything a backend receives in :class:`ConnectOptions` has been checked when the options
were built (header names and values, timeouts, sizes), so a backend never has to guard
against header injection, and ``repr(options)`` never shows a header value.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gemini_live._limits import MAX_MESSAGE_SIZE
from gemini_live.errors import ConfigError, TransportClosed
from gemini_live.transport._common import (
    CLOSE_TIMEOUT,
    check_header,
    check_headers,
    check_positive,
    mask_headers,
)

__all__ = [
    "Backend",
    "CloseInfo",
    "ConnectOptions",
    "DirectWriter",
    "FrameHandler",
    "SyncSender",
    "Transport",
    "TransportClosed",
    "UnsentBytes",
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


@dataclass(frozen=True, slots=True, repr=False)
class ConnectOptions:
    """Everything a backend needs to open a connection, checked when it is built.

    ``headers`` may carry credentials: backends must never log them, and ``repr`` shows
    only their names. ``ssl_context`` is used for ``wss://`` URLs (None means the system
    default context, with verification on); it is ignored for ``ws://``.
    ``ping_interval`` None disables client keepalive pings (the default: Gemini pongs
    have been measured at 8-30 s, so strict pings kill healthy sessions).
    ``close_timeout`` bounds the closing handshake, in seconds.

    Raises:
        ConfigError: a header name that is not an HTTP token, a header value (or
            ``user_agent``, ``proxy``) with a control character such as CR or LF, or a
            timeout or size that is not a finite number > 0.
    """

    headers: tuple[tuple[str, str], ...] = ()
    ssl_context: ssl.SSLContext | None = None
    proxy: str | None = None
    open_timeout: float = 10.0
    ping_interval: float | None = None
    ping_timeout: float | None = None
    max_message_size: int = MAX_MESSAGE_SIZE
    user_agent: str | None = None
    close_timeout: float = CLOSE_TIMEOUT

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", check_headers(self.headers))
        if self.user_agent is not None:
            check_header("User-Agent", self.user_agent)
        if self.proxy is not None:
            check_header("Proxy", self.proxy)
            if not urllib.parse.urlsplit(self.proxy).scheme:
                raise ConfigError("proxy must be a URL such as http://host:port")
        if self.ssl_context is not None and not isinstance(self.ssl_context, ssl.SSLContext):
            raise ConfigError("ssl_context must be an ssl.SSLContext or None")
        check_positive("open_timeout", self.open_timeout)
        check_positive("close_timeout", self.close_timeout)
        check_positive("ping_interval", self.ping_interval, optional=True)
        check_positive("ping_timeout", self.ping_timeout, optional=True)
        size = self.max_message_size
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ConfigError(f"max_message_size must be an int > 0, got {size!r}")

    def __repr__(self) -> str:
        proxy = None if self.proxy is None else "***"
        return (
            f"ConnectOptions(headers={mask_headers(self.headers)!r}, proxy={proxy!r}, "
            f"open_timeout={self.open_timeout!r}, ping_interval={self.ping_interval!r}, "
            f"ping_timeout={self.ping_timeout!r}, max_message_size={self.max_message_size!r}, "
            f"user_agent={self.user_agent!r}, close_timeout={self.close_timeout!r})"
        )

    __str__ = __repr__


class FrameHandler(Protocol):
    """Receives what a transport reads. Both methods are called on the event loop."""

    def on_frame(self, data: bytes) -> None:
        """One complete WebSocket message (text or binary), as bytes."""

    def on_close(self, info: CloseInfo) -> None:
        """The connection ended; called exactly once, after the last :meth:`on_frame`."""


@runtime_checkable
class Transport(Protocol):
    """One open WebSocket connection: what the session needs, nothing more.

    The built-in backends also offer ``close_info`` (how the connection ended),
    ``write_buffer_size()`` (bytes not yet handed to the kernel) for diagnostics, and
    :meth:`UnsentBytes.unsent_bytes` (what has not left this host), which the re-send
    window uses; a custom backend does not have to.
    """

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


@runtime_checkable
class SyncSender(Protocol):
    """Optional extra of a :class:`Transport`: a synchronous send for the hot path.

    ``try_send(data)`` writes one text frame at once and returns True, or returns False
    (writing nothing) when the connection is closed or applying backpressure; the caller
    then falls back to :meth:`Transport.send`. Backends that cannot write synchronously
    simply do not have it.
    """

    def try_send(self, data: bytes) -> bool: ...


@runtime_checkable
class DirectWriter(Protocol):
    """Optional extra of a :class:`SyncSender`: a writer without the per-write check.

    ``direct_writer()`` returns a callable that writes one text frame at once (its return
    value means nothing; it is never False), or None when writes must go through
    ``try_send`` now (closing, or under backpressure). It stays valid until the transport
    calls ``writes_changed`` (when set), right after either state changed: the caller
    asks again then. A writer taken before is then what ``try_send`` would do without
    its check, so the caller must stop using it.
    """

    writes_changed: Callable[[], None] | None

    def direct_writer(self) -> Callable[[bytes], object] | None: ...


@runtime_checkable
class DirectSend(DirectWriter, Protocol):
    """Optional extra of a :class:`DirectWriter`: its writer as the backend's own call
    (internal for now: the picows transport has it; the session uses it when present).

    ``direct_send()`` returns ``(send, kind)`` such that ``send(kind, data)`` does what
    the callable ``direct_writer()`` returns at the same moment does with ``data``, or
    None exactly when ``direct_writer()`` does; valid as long. A caller that writes
    every chunk through it calls the backend's method itself: no wrapper object
    (``functools.partial`` and the bound method inside it) between them (issue 24: fewer
    objects, so fewer cache lines, per chunk written).
    """

    def direct_send(self) -> tuple[Callable[[Any, bytes], object], object] | None: ...


@runtime_checkable
class UnsentBytes(Protocol):
    """Optional extra of a :class:`Transport`: how much of what was sent is still here.

    ``unsent_bytes()`` returns how many bytes passed to :meth:`Transport.send` or
    ``try_send`` (counted on the wire, so framing may make it larger) have not left this
    host: still in the backend's write buffer, or in the kernel's send queue not yet
    acknowledged by the peer. None when it cannot tell (the system has no such query, or
    the connection is closed). The session calls it once per resumption handle, never
    per frame. A transport without it (or returning None) makes a handle cover frames by
    the clock alone, and every frame so covered is counted in ``frames_at_risk``.
    """

    def unsent_bytes(self) -> int | None: ...


class Backend(Protocol):
    """Opens connections. ``name`` is what users pass as ``backend=``."""

    name: str

    async def connect(self, url: str, handler: FrameHandler, options: ConnectOptions) -> Transport:
        """Open a WebSocket to ``url`` and return it once the HTTP upgrade succeeded.

        Raises :class:`gemini_live.errors.ConnectError` (with ``status`` for a refused
        upgrade) on any failure, within ``options.open_timeout`` seconds.
        """
