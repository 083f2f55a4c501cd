"""websockets backend (the reference implementation), on ``websockets.asyncio.client``.

websockets parses frames into its own queue, so one reader task per connection moves each
message from ``recv(decode=False)`` (text and binary both as bytes) to ``handler.on_frame``.
When ``recv`` reports the end of the connection, the reader turns websockets' record of
the close frames into a :class:`CloseInfo` and calls ``handler.on_close`` once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.protocol import State

from gemini_live.errors import TransportClosed
from gemini_live.transport._common import (
    WRITE_HIGH_WATER,
    Refusal,
    close_args,
    has_header,
    kernel_unsent,
    library_logger,
    map_connect_errors,
    small_reads,
    ssl_raw_buffer,
)
from gemini_live.transport.base import CloseInfo, ConnectOptions, FrameHandler, Transport

__all__ = ["WebsocketsBackend", "WebsocketsTransport"]

logger = logging.getLogger(__name__)


class _NoRedirectConnect(connect):
    """``connect`` that never follows redirects: they would replay our credentials."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


class WebsocketsTransport:
    """One connection (implements :class:`~gemini_live.transport.base.Transport`)."""

    def __init__(self, ws: ClientConnection, handler: FrameHandler, close_timeout: float) -> None:
        self._ws = ws
        self._handler = handler
        self._close_timeout = close_timeout
        #: Set when this side decided to end the connection (close or abort) first.
        self._local: CloseInfo | None = None
        self._info: CloseInfo | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        recv = self._ws.recv
        on_frame = self._handler.on_frame
        info: CloseInfo
        try:
            while True:
                data = await recv(False)
                on_frame(data)
        except ConnectionClosed as exc:
            info = self._info_from(exc)
        except Exception:
            logger.exception("frame handler raised; closing the connection with 1011")
            if self._local is None:
                self._local = CloseInfo(1011, "frame handler error", local=True)
            await self._ws.close(1011, "frame handler error")
            info = self._local
        self._info = info
        try:
            self._handler.on_close(info)
        except Exception:
            logger.exception("close handler raised")

    def _info_from(self, exc: ConnectionClosed) -> CloseInfo:
        if self._local is not None:
            return self._local
        rcvd, sent = exc.rcvd, exc.sent
        if rcvd is not None and (sent is None or exc.rcvd_then_sent):
            return CloseInfo(rcvd.code, rcvd.reason, local=False)
        if sent is not None:
            # websockets closed on its own: keepalive timeout or a protocol error.
            return CloseInfo(sent.code, sent.reason, local=True)
        return CloseInfo(1006, "", local=False)

    async def send(self, data: bytes) -> None:
        if self._local is not None or self._info is not None:
            raise TransportClosed(self._local or self._info)
        try:
            await self._ws.send(data, text=True)
        except ConnectionClosed as exc:
            raise TransportClosed(self._info or self._info_from(exc)) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        reason = close_args(code, reason)
        if self._local is None and self._ws.state is State.OPEN:
            self._local = CloseInfo(code, reason, local=True)
            await self._ws.close(code, reason)
        if not self._reader.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._close_timeout + 1.0):
                    await asyncio.shield(self._reader)

    def abort(self) -> None:
        if self._reader.done():
            return
        if self._local is None and self._ws.state is State.OPEN:
            self._local = CloseInfo(1006, "", local=True)
        self._ws.transport.abort()

    @property
    def closed(self) -> bool:
        return self._local is not None or self._info is not None or self._ws.state is not State.OPEN

    @property
    def close_info(self) -> CloseInfo | None:
        return self._info

    def write_buffer_size(self) -> int:
        return self._ws.transport.get_write_buffer_size()

    def unsent_bytes(self) -> int | None:
        """Bytes written that have not left this host: the write buffer plus the kernel's
        send queue (None where the system does not tell, or once closed)."""
        raw = self._ws.transport
        if raw.is_closing():
            return None
        kernel = kernel_unsent(raw.get_extra_info("socket"))
        if kernel is None:
            return None
        return raw.get_write_buffer_size() + ssl_raw_buffer(raw) + kernel


class WebsocketsBackend:
    """Opens connections with websockets (the reference backend)."""

    name = "websockets"

    async def connect(self, url: str, handler: FrameHandler, options: ConnectOptions) -> Transport:
        close_timeout = options.close_timeout
        kwargs: dict[str, Any] = {}
        if options.ssl_context is not None and url.lower().startswith("wss:"):
            kwargs["ssl"] = options.ssl_context
        user_agent = options.user_agent
        if has_header(options, "User-Agent"):
            user_agent = None
        with map_connect_errors(
            url, options, refusal=_refusal, handshake_errors=(WebSocketException,)
        ):
            ws = await _NoRedirectConnect(
                url,
                compression=None,
                additional_headers=list(options.headers),
                user_agent_header=user_agent,
                proxy=options.proxy,
                open_timeout=options.open_timeout,
                ping_interval=options.ping_interval,
                ping_timeout=options.ping_timeout,
                close_timeout=close_timeout,
                max_size=options.max_message_size,
                write_limit=WRITE_HIGH_WATER,
                logger=library_logger("websockets.client"),
                **kwargs,
            )
        small_reads(ws.transport)
        return WebsocketsTransport(ws, handler, close_timeout)


def _refusal(exc: Exception) -> Refusal | None:
    """Status, phrase and body of a refused upgrade (for :func:`map_connect_errors`)."""
    if not isinstance(exc, InvalidStatus):
        return None
    response = exc.response
    return response.status_code, response.reason_phrase, bytes(response.body or b"")
