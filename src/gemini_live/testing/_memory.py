"""In-memory transport to a :class:`~gemini_live.testing._core.LiveServerCore` (no sockets).

:class:`MemoryBackend` implements :class:`gemini_live.transport.base.Backend`. Its
connections behave like a socket from the client's point of view:

* server frames reach ``handler.on_frame`` from the event loop (``loop.call_soon``), in
  order, never synchronously inside a ``send``;
* ``close(code, reason)`` -> the server sees that close; the client gets
  ``CloseInfo(code, reason, local=True)``;
* ``abort()`` -> the server sees an abnormal drop (1006); the client gets
  ``CloseInfo(1006, "", local=True)``;
* the server closing with ``(code, reason)`` -> ``CloseInfo(code, reason, local=False)``;
  the server dropping -> ``CloseInfo(1006, "", local=False)``;
* frames the server sent before a close are delivered before ``on_close``; ``on_close`` is
  called exactly once; ``send`` after the client knows the connection is closed raises
  :class:`~gemini_live.transport.base.TransportClosed` (until then, like on a socket, data
  sent into a connection the peer already closed is silently lost).
"""

from __future__ import annotations

import asyncio
import urllib.parse

from gemini_live.errors import ConnectError
from gemini_live.testing._connection import ServerConnectionClosed
from gemini_live.testing._core import LiveServerCore, _ConnectionLogic
from gemini_live.transport.base import (
    CloseInfo,
    ConnectOptions,
    FrameHandler,
    Transport,
    TransportClosed,
)

__all__ = ["MemoryBackend", "MemoryTransport"]


class _Pipe:
    """Shared state of one in-memory connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: FrameHandler) -> None:
        self.loop = loop
        self.handler = handler
        #: Client -> server frames; None marks the end of the connection.
        self.inbound: asyncio.Queue[bytes | None] = asyncio.Queue()
        #: Bytes in ``inbound`` the server has not taken yet (the client's unsent bytes).
        self.inbound_bytes = 0
        self.closed = False
        self.server_view: tuple[int, str] = (1006, "")
        self.client_info: CloseInfo | None = None
        self.client_notified = False
        self.close_delivered: asyncio.Future[None] = loop.create_future()

    def shutdown(self, server_view: tuple[int, str], client_info: CloseInfo) -> bool:
        """End the connection (first caller wins); both sides learn it asynchronously."""
        if self.closed:
            return False
        self.closed = True
        self.server_view = server_view
        self.client_info = client_info
        self.inbound.put_nowait(None)
        self.loop.call_soon(self._deliver_close)
        return True

    def deliver(self, data: bytes) -> None:
        self.loop.call_soon(self._deliver_frame, data)

    def _deliver_frame(self, data: bytes) -> None:
        if not self.client_notified:
            self.handler.on_frame(data)

    def _deliver_close(self) -> None:
        if self.client_notified:
            return
        self.client_notified = True
        try:
            assert self.client_info is not None
            self.handler.on_close(self.client_info)
        finally:
            if not self.close_delivered.done():
                self.close_delivered.set_result(None)


class _MemoryServerConn:
    """The server's end of a pipe (implements ``ServerConn``)."""

    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe

    async def send(self, data: bytes) -> None:
        if self._pipe.closed:
            raise ServerConnectionClosed
        self._pipe.deliver(data)

    async def close(self, code: int, reason: str) -> None:
        self._pipe.shutdown((code, reason), CloseInfo(code, reason, False))

    def abort(self) -> None:
        self._pipe.shutdown((1006, ""), CloseInfo(1006, "", False))


class MemoryTransport:
    """The client's end of an in-memory connection (implements ``Transport``)."""

    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe
        self._local: CloseInfo | None = None

    async def send(self, data: bytes) -> None:
        if self._local is not None or self._pipe.client_notified:
            raise TransportClosed(self.close_info)
        if self._pipe.closed:
            return  # the peer closed; the close notification is on its way
        self._pipe.inbound.put_nowait(bytes(data))
        self._pipe.inbound_bytes += len(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._local is None and not self._pipe.client_notified:
            info = CloseInfo(code, reason, True)
            if self._pipe.shutdown((code, reason), info):
                self._local = info
        if not self._pipe.close_delivered.done():
            async with asyncio.timeout(5.0):
                await asyncio.shield(self._pipe.close_delivered)

    def abort(self) -> None:
        if self._local is None and not self._pipe.client_notified:
            info = CloseInfo(1006, "", True)
            if self._pipe.shutdown((1006, ""), info):
                self._local = info

    @property
    def closed(self) -> bool:
        return self._local is not None or self._pipe.client_notified

    @property
    def close_info(self) -> CloseInfo | None:
        if self._local is not None:
            return self._local
        return self._pipe.client_info if self._pipe.client_notified else None

    def write_buffer_size(self) -> int:
        return 0

    def unsent_bytes(self) -> int:
        """Bytes sent that the server has not read yet (like an unread socket)."""
        return self._pipe.inbound_bytes


class MemoryBackend:
    """A :class:`~gemini_live.transport.base.Backend` (``name = "memory"``) bound to a server.

    ``connect(url, handler, options)`` opens an in-process connection to the server core:
    the URL's path and query and ``options.headers`` are what the server sees, so path
    checks (unknown path -> ``ConnectError(status=404)``) and auth checks apply. Any host
    and port are accepted.
    """

    name = "memory"

    def __init__(self, core: LiveServerCore) -> None:
        self._core = core
        self._tasks: set[asyncio.Task[None]] = set()

    async def wait_idle(self, within: float = 5.0) -> None:
        """Wait (bounded) until every in-process connection's server side has ended."""
        tasks = list(self._tasks)
        if tasks:
            async with asyncio.timeout(within):
                await asyncio.gather(*tasks, return_exceptions=True)

    async def connect(self, url: str, handler: FrameHandler, options: ConnectOptions) -> Transport:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ConnectError(f"unsupported URL scheme {parts.scheme!r}")
        if self._core.stopped:
            raise ConnectError("connection refused: the fake server is stopped")
        if not self._core.path_ok(parts.path):
            raise ConnectError("server rejected WebSocket connection: HTTP 404", status=404)
        headers = {k.lower(): v for k, v in options.headers}
        if options.user_agent and "user-agent" not in headers:
            headers["user-agent"] = options.user_agent
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        loop = asyncio.get_running_loop()
        pipe = _Pipe(loop, handler)
        logic = self._core.open_connection(
            _MemoryServerConn(pipe),
            transport="memory",
            path=parts.path,
            headers=headers,
            query=query,
        )
        task = loop.create_task(_serve(pipe, logic))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return MemoryTransport(pipe)


async def _serve(pipe: _Pipe, logic: _ConnectionLogic) -> None:
    """Server-side reader: feed client frames to the logic until the connection ends."""
    try:
        await logic.opened()
        while not logic.finished:
            data = await pipe.inbound.get()
            if data is None:
                break
            pipe.inbound_bytes -= len(data)
            await logic.on_frame(data)
    finally:
        if not pipe.closed:
            # The logic stopped reading without closing (cannot normally happen): close 1011.
            pipe.shutdown((1011, ""), CloseInfo(1011, "", False))
        logic.on_closed(*pipe.server_view)
