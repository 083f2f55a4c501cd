"""Recording a cassette: :class:`Recorder` (a transport backend) and
:class:`RecordingProxy` (a local server in front of the service)."""

from __future__ import annotations

import asyncio
import urllib.parse
from pathlib import Path
from typing import Any

from gemini_live.auth import GEMINI_PATH_FMT, is_credential_header, register_header_secrets
from gemini_live.errors import ConnectError, excerpt, redact, register_secret
from gemini_live.testing._cassette_file import (
    GOOGLE_BASE,
    CassetteWriter,
)
from gemini_live.transport.base import Backend, CloseInfo, ConnectOptions, FrameHandler, Transport

# --------------------------------------------------------------------------- Recorder


def _writer(path: str | Path | CassetteWriter, keep_audio: bool) -> CassetteWriter:
    return path if isinstance(path, CassetteWriter) else CassetteWriter(path, keep_audio=keep_audio)


class _RecordingHandler:
    __slots__ = ("_conn", "_inner", "_writer")

    def __init__(self, inner: FrameHandler, writer: CassetteWriter, conn: int) -> None:
        self._inner = inner
        self._writer = writer
        self._conn = conn

    def on_frame(self, data: bytes) -> None:
        self._writer.frame(self._conn, "server", data)
        self._inner.on_frame(data)

    def on_close(self, info: CloseInfo) -> None:
        self._writer.closed(
            self._conn, info.code, info.reason, "client" if info.local else "server"
        )
        self._inner.on_close(info)


class _RecordingTransport:
    __slots__ = ("_conn", "_inner", "_writer")

    def __init__(self, inner: Transport, writer: CassetteWriter, conn: int) -> None:
        self._inner = inner
        self._writer = writer
        self._conn = conn

    async def send(self, data: bytes) -> None:
        self._writer.frame(self._conn, "client", data)
        await self._inner.send(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._inner.close(code, reason)

    def abort(self) -> None:
        self._inner.abort()

    @property
    def closed(self) -> bool:
        return self._inner.closed


class Recorder:
    """A transport backend that records every frame of ``inner`` into a cassette::

        recorder = Recorder("session.jsonl")               # wraps the "websockets" backend
        async with gl.connect(..., backend=recorder) as session: ...
        recorder.close()

    ``inner`` is a backend name or object; ``keep_audio=True`` keeps audio payloads.
    """

    def __init__(
        self,
        path: str | Path | CassetteWriter,
        inner: str | Backend = "websockets",
        *,
        keep_audio: bool = False,
    ) -> None:
        self.writer = (
            path
            if isinstance(path, CassetteWriter)
            else CassetteWriter(path, keep_audio=keep_audio)
        )
        if isinstance(inner, str):
            from gemini_live.transport import get_backend

            inner = get_backend(inner)
        self.inner = inner
        self.name = f"recording+{getattr(inner, 'name', 'backend')}"

    async def connect(self, url: str, handler: FrameHandler, options: ConnectOptions) -> Transport:
        conn = self.writer.next_connection()
        self.writer.connected(conn, url, backend=getattr(self.inner, "name", "backend"))
        try:
            transport = await self.inner.connect(
                url, _RecordingHandler(handler, self.writer, conn), options
            )
        except ConnectError as exc:
            self.writer.failed(conn, str(exc))
            raise
        return _RecordingTransport(transport, self.writer, conn)

    def close(self) -> None:
        """Finish the cassette file."""
        self.writer.close()


# --------------------------------------------------------------------------- proxy


def upstream_base(upstream: str) -> str:
    """``scheme://host[:port]`` of an upstream given as a base or as a full Live API URL
    (``ws://127.0.0.1:PORT/ws/google.ai...BidiGenerateContent``, the URL ``gemini-live
    fake-server`` prints). ``http(s)`` becomes ``ws(s)``. Raises ``ValueError`` for
    anything else."""
    parts = urllib.parse.urlsplit(upstream.strip())
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(
            f"upstream must be a ws:// or wss:// URL (a base or the full Live API URL), "
            f"got {excerpt(upstream, 80)}"
        )
    if parts.query:
        raise ValueError("upstream must not carry a query string (keys go in headers)")
    return f"{scheme}://{parts.netloc}"


class RecordingProxy:
    """A local WebSocket server that forwards every connection to ``upstream`` and records
    both directions into a cassette. Point the app at :attr:`url` instead of Google.

    ``upstream`` is a base (``wss://host``) or a full Live API URL such as the one
    ``gemini-live fake-server`` prints (its path is dropped: the app's own request path
    is forwarded). The file is written atomically (``PATH.partial``, renamed when the
    block exits cleanly, deleted when it raises).

    Credentials (``x-goog-api-key`` / ``Authorization`` headers, ``key`` /
    ``access_token`` query parameters) are forwarded, never recorded; their values (and
    those of any credential-looking header) are registered for redaction, so an upstream
    that echoes one back does not get it into the file either.
    """

    def __init__(
        self,
        path: str | Path | CassetteWriter,
        *,
        upstream: str = GOOGLE_BASE,
        keep_audio: bool = False,
    ) -> None:
        self.writer = (
            path
            if isinstance(path, CassetteWriter)
            else CassetteWriter(path, keep_audio=keep_audio, atomic=True)
        )
        self.upstream = upstream_base(upstream)
        self._server: Any = None
        self._port: int | None = None
        self.connections = 0

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("RecordingProxy is not started (use `async with`)")
        return f"ws://127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """The Gemini API (v1beta) ``BidiGenerateContent`` URL on the proxy."""
        return self.base_url + GEMINI_PATH_FMT.format(v="v1beta")

    async def __aenter__(self) -> RecordingProxy:
        from websockets.asyncio.server import serve

        from gemini_live.transport import _library_logger

        self._server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            compression=None,
            ping_interval=None,
            max_size=None,
            logger=_library_logger("websockets.server"),
        )
        self._port = int(next(iter(self._server.sockets)).getsockname()[1])
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        try:
            if self._server is not None:
                self._server.close()
                async with asyncio.timeout(5):
                    await self._server.wait_closed()
        except BaseException:
            self.writer.discard()
            raise
        if exc_type is None:
            self.writer.close()
        else:
            self.writer.discard()

    async def _handler(self, ws: Any) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        request = ws.request
        headers = [
            (k, v)
            for k, v in request.headers.raw_items()
            if k.lower() in ("x-goog-api-key", "authorization", "x-goog-user-project")
        ]
        # The proxy may run in another process than the app: what the app sent as a
        # credential is registered here too, so an upstream that echoes it (a close
        # reason, an error frame) never writes it into the cassette.
        register_header_secrets(list(request.headers.raw_items()))
        for name, value in urllib.parse.parse_qsl(urllib.parse.urlsplit(request.path).query):
            if is_credential_header(name):
                register_secret(value)
        conn = self.writer.next_connection()
        self.connections += 1
        target = self.upstream + "/" + request.path.lstrip("/")
        self.writer.connected(conn, target, via="proxy")
        try:
            upstream = await connect(
                target,
                additional_headers=headers,
                compression=None,
                ping_interval=None,
                max_size=None,
                open_timeout=10,
            )
        except (OSError, InvalidStatus, TimeoutError) as exc:
            error = redact(str(exc))
            self.writer.failed(conn, f"{self.upstream}: {error}")
            cut = f"upstream connection failed: {error}".encode()[:120]
            await ws.close(1011, cut.decode(errors="ignore"))
            return

        async def pump(src: Any, dst: Any, direction: str) -> None:
            try:
                async for data in src:
                    raw = data if isinstance(data, bytes) else data.encode()
                    self.writer.frame(conn, direction, raw)
                    await dst.send(data)
            except ConnectionClosed:
                pass

        async with upstream:
            to_server = asyncio.ensure_future(pump(ws, upstream, "client"))
            to_client = asyncio.ensure_future(pump(upstream, ws, "server"))
            await asyncio.wait([to_server, to_client], return_when=asyncio.FIRST_COMPLETED)
            if to_client.done():  # the service ended the connection: tell the client
                code = upstream.close_code if upstream.close_code is not None else 1006
                reason = upstream.close_reason or ""
                self.writer.closed(conn, code, reason, "server")
                if code == 1006:
                    ws.transport.abort()
                else:
                    await ws.close(code, reason)
            else:
                code = ws.close_code if ws.close_code is not None else 1006
                self.writer.closed(conn, code, ws.close_reason or "", "client")
                await upstream.close(code if code != 1006 else 1000, ws.close_reason or "")
            for task in (to_server, to_client):
                task.cancel()
            await asyncio.gather(to_server, to_client, return_exceptions=True)
