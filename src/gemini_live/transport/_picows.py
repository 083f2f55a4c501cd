"""picows backend: native ``WSListener`` callbacks, no per-frame task or queue.

A received data frame goes from picows' parser straight to ``handler.on_frame`` with one
copy (``get_payload_as_bytes``). Fragmented messages are reassembled here. picows leaves
the closing handshake to us: a peer CLOSE is answered with the same code and the socket is
closed. Backpressure uses the asyncio transport's write-buffer limits, which picows forwards
to :meth:`WSListener.pause_writing` / :meth:`WSListener.resume_writing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any, Final

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSHandshakeError,
    WSInvalidStatusError,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from gemini_live.errors import ConnectError, TransportClosed
from gemini_live.transport._common import (
    WRITE_HIGH_WATER,
    WRITE_LOW_WATER,
    Refusal,
    close_args,
    has_header,
    kernel_unsent,
    library_logger,
    map_connect_errors,
    sendable,
    ssl_raw_buffer,
)
from gemini_live.transport.base import CloseInfo, ConnectOptions, FrameHandler, Transport

__all__ = ["PicowsBackend", "PicowsTransport"]

logger = logging.getLogger(__name__)

_TEXT: Final = WSMsgType.TEXT
_BINARY: Final = WSMsgType.BINARY
_CONTINUATION: Final = WSMsgType.CONTINUATION
_CLOSE: Final = WSMsgType.CLOSE
_PONG: Final = WSMsgType.PONG

#: picows closes with 1001 when its auto-ping gets no pong; we report it like websockets.
_GOING_AWAY: Final = 1001
_KEEPALIVE_TIMEOUT: Final = CloseInfo(1011, "keepalive ping timeout", local=True)
#: Our own open timeout fires this much after picows' handshake timeout, so that picows
#: (which owns the socket by then) is the one that gives up and cleans up.
_TIMEOUT_GRACE: Final = 0.5


def _discard(data: bytes) -> None:
    """Replaces the frame handler once the connection failed locally."""


class PicowsTransport(WSListener):
    """One connection: picows listener and :class:`~gemini_live.transport.base.Transport`."""

    # Slots: a Python subclass of picows' extension type would otherwise carry a real
    # instance dict, one more object per connection for the garbage collector to walk.
    # Not sorted: the two slots every received frame reads come first, next to the
    # object's header (with hundreds of connections taking turns, each further cache
    # line a frame touches is usually a miss; issue 24).
    __slots__ = (  # noqa: RUF023
        "_fragments",
        "_on_frame",
        "_closing",
        "_paused",
        "_ws",
        "_close_timeout",
        "_close_timer",
        "_done",
        "_drain_waiters",
        "_handler",
        "_info",
        "_loop",
        "_max_size",
        "_pending",
        "_ping_outstanding",
        "_reaper",
        "writes_changed",
    )

    _ws: WSTransport

    def __init__(
        self,
        handler: FrameHandler,
        loop: asyncio.AbstractEventLoop,
        max_size: int,
        close_timeout: float,
    ) -> None:
        super().__init__()
        self._handler = handler
        self._on_frame = handler.on_frame
        self._loop = loop
        self._max_size = max_size
        self._close_timeout = close_timeout
        self._fragments: bytearray | None = None
        #: True from the moment either side started closing (or the socket dropped).
        self._closing = False
        #: What on_close will report, decided by whoever started closing first.
        self._pending: CloseInfo | None = None
        self._info: CloseInfo | None = None
        self._done: asyncio.Future[None] = loop.create_future()
        self._paused = False
        #: ``()`` until a send waits for the buffer to drain (no list per connection for
        #: the garbage collector to walk).
        self._drain_waiters: list[asyncio.Future[None]] | tuple[()] = ()
        self._ping_outstanding = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._reaper: asyncio.Task[None] | None = None
        #: Called right after closing starts or backpressure starts or ends (DirectWriter).
        self.writes_changed: Callable[[], None] | None = None

    # --- picows callbacks -----------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._ws = transport
        transport.underlying_transport.set_write_buffer_limits(
            high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER
        )

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # Hot path: a complete, unfragmented data frame on an open connection.
        if frame.fin and self._fragments is None:
            msg_type = frame.msg_type
            if (msg_type is _TEXT or msg_type is _BINARY) and not transport.is_close_frame_sent:
                try:
                    self._on_frame(frame.get_payload_as_bytes())
                except Exception:
                    self._handler_failed()
                return
        self._on_other_frame(transport, frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._closing = True
        self._changed()
        self._fragments = None
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        info = self._pending
        if info is None:
            handshake = transport.close_handshake
            sent = handshake.sent if handshake is not None else None
            if sent is None:
                info = CloseInfo(1006, "", local=False)
            else:
                # picows closed on its own: a protocol error it detected or a missed pong.
                code = sent.code.value
                if code == _GOING_AWAY and self._ping_outstanding:
                    info = _KEEPALIVE_TIMEOUT
                else:
                    info = CloseInfo(code, sent.reason or "", local=True)
                self._reaper = self._loop.create_task(self._reap(transport))
        self._info = info
        self._paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        if not self._done.done():
            self._done.set_result(None)
        try:
            self._handler.on_close(info)
        except Exception:
            logger.exception("close handler raised")

    def send_user_specific_ping(self, transport: WSTransport) -> None:
        self._ping_outstanding = True
        transport.send_ping()

    def is_user_specific_pong(self, frame: WSFrame) -> bool:
        if frame.msg_type is _PONG:
            self._ping_outstanding = False
            return True
        return False

    def pause_writing(self) -> None:
        if not self._paused:
            self._paused = True
            self._changed()

    def resume_writing(self) -> None:
        if self._paused:
            self._paused = False
            self._changed()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    # --- Transport ------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        if self._closing:
            raise TransportClosed(self._pending or self._info)
        self._ws.send(_TEXT, data)
        if self._paused:
            await self._drained()

    def try_send(self, data: bytes) -> bool:
        """Write ``data`` now unless closed or under backpressure (then use :meth:`send`)."""
        if self._closing or self._paused:
            return False
        self._ws.send(_TEXT, data)
        return True

    def direct_writer(self) -> Callable[[bytes], object] | None:
        """``try_send`` without its check (it returns None), while it would write: valid
        until :attr:`writes_changed` is called (see :class:`DirectWriter`)."""
        pair = self.direct_send()
        if pair is None:
            return None
        send, kind = pair
        return functools.partial(send, kind)

    def direct_send(self) -> tuple[Callable[[Any, bytes], object], object] | None:
        """:meth:`direct_writer` as ``(send, kind)``: ``send(kind, data)`` (DirectSend)."""
        if self._closing or self._paused:
            return None
        return self._ws.send, _TEXT

    async def close(self, code: int = 1000, reason: str = "") -> None:
        reason = close_args(code, reason)
        if not self._closing:
            self._closing = True
            self._changed()
            ws = self._ws
            if not ws.is_close_frame_sent:
                self._pending = CloseInfo(code, reason, local=True)
                ws.send_close(WSCloseCode(code), reason.encode())
            self._arm_close_timer()
        if not self._done.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._close_timeout + 1.0):
                    await asyncio.shield(self._done)
            if not self._done.done():  # pragma: no cover - the close timer aborts first
                self.abort()

    def abort(self) -> None:
        if self._done.done():
            return
        if self._pending is None:
            self._pending = CloseInfo(1006, "", local=True)
        if not self._closing:
            self._closing = True
            self._changed()
        self._ws.disconnect(graceful=False)

    @property
    def closed(self) -> bool:
        return self._closing or self._ws.is_close_frame_sent

    @property
    def close_info(self) -> CloseInfo | None:
        return self._info

    def write_buffer_size(self) -> int:
        if self._done.done():
            return 0
        return self._ws.underlying_transport.get_write_buffer_size()

    def unsent_bytes(self) -> int | None:
        """Bytes written that have not left this host: the write buffer plus the kernel's
        send queue (None where the system does not tell, or once closed)."""
        if self._done.done():
            return None
        raw = self._ws.underlying_transport
        kernel = kernel_unsent(raw.get_extra_info("socket"))
        if kernel is None:
            return None
        return raw.get_write_buffer_size() + ssl_raw_buffer(raw) + kernel

    # --- internals ------------------------------------------------------------------

    def _on_other_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is _CLOSE:
            self._on_close_frame(transport, frame)
            return
        if transport.is_close_frame_sent:
            # We (or picows, on a protocol error) already sent CLOSE: no more data.
            self._fragments = None
            return
        if msg_type is _CONTINUATION:
            buf = self._fragments
            if buf is None:
                self._fail(1002, "unexpected continuation frame")
                return
            buf += frame.get_payload_as_memoryview()
            if len(buf) > self._max_size:
                self._fail(1009, "message too big")
            elif frame.fin:
                self._fragments = None
                try:
                    self._on_frame(bytes(buf))
                except Exception:
                    self._handler_failed()
        elif msg_type is _TEXT or msg_type is _BINARY:
            if self._fragments is not None:
                self._fail(1002, "expected a continuation frame")
                return
            # First fragment (an unfragmented frame took the hot path).
            self._fragments = bytearray(frame.get_payload_as_memoryview())
        # PING is answered by picows (auto-pong); an unexpected PONG needs nothing.

    def _on_close_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if not self._closing and not transport.is_close_frame_sent:
            # The peer starts the closing handshake: answer with its code, then hang up.
            code = frame.get_close_code().value
            self._closing = True
            self._changed()
            self._pending = CloseInfo(code or 1005, frame.get_close_reason() or "", local=False)
            transport.send_close(WSCloseCode(code if sendable(code) else 1000))
        # Otherwise this is the answer to our CLOSE: the handshake is complete.
        transport.disconnect()
        self._arm_close_timer()

    def _fail(self, code: int, reason: str) -> None:
        """Close because of an error found on this side."""
        self._on_frame = _discard
        self._fragments = None
        if self._closing:
            return
        self._closing = True
        self._changed()
        ws = self._ws
        if not ws.is_close_frame_sent:
            self._pending = CloseInfo(code, reason, local=True)
            ws.send_close(WSCloseCode(code), reason.encode())
        ws.disconnect()
        self._arm_close_timer()

    def _changed(self) -> None:
        """Closing or backpressure started or ended: tell the direct writer's user."""
        callback = self.writes_changed
        if callback is not None:
            try:
                callback()
            except Exception:
                logger.exception("writes_changed callback raised")

    def _handler_failed(self) -> None:
        logger.exception("frame handler raised; closing the connection with 1011")
        self._fail(1011, "frame handler error")

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self._done.done():
            self._close_timer = self._loop.call_later(self._close_timeout, self._force_close)

    def _force_close(self) -> None:
        self._close_timer = None
        if not self._done.done():
            self._ws.disconnect(graceful=False)

    async def _drained(self) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()
        waiters = self._drain_waiters
        if not isinstance(waiters, list):
            waiters = self._drain_waiters = []
        waiters.append(waiter)
        try:
            await waiter
        finally:
            waiters.remove(waiter)
        if self._info is not None:
            raise TransportClosed(self._info)

    @staticmethod
    async def _reap(transport: WSTransport) -> None:
        # picows keeps the error behind its own close for wait_disconnected(); fetch it so
        # asyncio does not report it as never retrieved.
        try:
            await transport.wait_disconnected()
        except Exception as exc:
            logger.debug("picows closed the connection: %s", exc)


class PicowsBackend:
    """Opens connections with picows (the default, fastest backend)."""

    name = "picows"

    async def connect(self, url: str, handler: FrameHandler, options: ConnectOptions) -> Transport:
        loop = asyncio.get_running_loop()
        close_timeout = options.close_timeout
        created: list[PicowsTransport] = []

        def listener_factory(request: object, response: object) -> PicowsTransport:
            conn = PicowsTransport(handler, loop, options.max_message_size, close_timeout)
            created.append(conn)
            return conn

        headers = list(options.headers)
        if options.user_agent is not None and not has_header(options, "User-Agent"):
            headers.append(("User-Agent", options.user_agent))
        ping = options.ping_interval
        reply = options.ping_timeout if options.ping_timeout is not None else ping
        with map_connect_errors(
            url, options, refusal=_refusal, handshake_errors=(WSHandshakeError,)
        ):
            async with asyncio.timeout(options.open_timeout + _TIMEOUT_GRACE):
                await ws_connect(
                    listener_factory,
                    url,
                    ssl_context=options.ssl_context,
                    websocket_handshake_timeout=options.open_timeout,
                    logger_name=library_logger("picows.client"),
                    enable_auto_ping=ping is not None,
                    # picows requires reply timeout <= idle timeout.
                    auto_ping_idle_timeout=ping if ping is not None else 10.0,
                    auto_ping_reply_timeout=min(reply, ping)
                    if reply is not None and ping is not None
                    else 10.0,
                    auto_ping_strategy=WSAutoPingStrategy.PING_WHEN_IDLE,
                    max_frame_size=options.max_message_size,
                    # Audio frames are ~2.7 KB; the buffer grows on demand. The default
                    # 16 KiB dominated the memory of an idle session.
                    read_buffer_init_size=4096,
                    extra_headers=headers,
                    # Never replay credentials to wherever a redirect points.
                    max_redirects=0,
                    proxy=options.proxy,
                )
        if not created:
            raise ConnectError("the server closed the connection during the WebSocket handshake")
        return created[0]


def _refusal(exc: Exception) -> Refusal | None:
    """Status, phrase and body of a refused upgrade (for :func:`map_connect_errors`)."""
    if not isinstance(exc, WSInvalidStatusError) or exc.response is None:
        return None
    status = exc.response.status
    return int(status), status.phrase, exc.raw_body or b""
