"""Cassettes: record a Live session once (against Google or anything else), replay it forever.

A cassette is a JSONL file, one record per line, written as the session runs::

    {"t": 0.0, "wall": "...", "conn": 0, "dir": "meta", "event": "cassette", "version": 1, ...}
    {"t": 0.0012, "wall": "...", "conn": 1, "dir": "meta", "event": "connect", "url": "..."}
    {"t": 0.0031, "wall": "...", "conn": 1, "dir": "client", "kind": "setup", "bytes": 412,
     "frame": {...}}
    {"t": 0.0456, "wall": "...", "conn": 1, "dir": "server", "bytes": 2661, "frame": {...}}
    {"t": 1.2, "wall": "...", "conn": 1, "dir": "meta", "event": "close", "code": 1000,
     "reason": "", "by": "client"}

``t`` is seconds since recording started (monotonic), ``wall`` the UTC time. Both directions
are kept. Secrets never reach the file: request headers and query strings are not recorded,
and every line passes through :func:`gemini_live.errors.redact`. Audio and video payloads
are replaced by ``"<base64 redacted: N chars>"`` unless ``keep_audio=True``; a replay sends
silence of the same length in their place.

Write one with a :class:`Recorder` (a transport backend wrapping another) or a
:class:`RecordingProxy` (a local WebSocket server forwarding to the real service), or with
the CLI's ``--record FILE``. Play the server side back with
``FakeLiveServer.replay(cassette)``; :func:`gemini_live.testing.use_cassette` does either in
three lines of a test.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import pybase64

from gemini_live.auth import GEMINI_PATH_FMT, is_credential_header, register_header_secrets
from gemini_live.errors import CassetteError, ConnectError, excerpt, redact, register_secret
from gemini_live.testing._canned import bad_input_rate, pcm_rate
from gemini_live.testing._normalize import normalize_keys
from gemini_live.transport._common import sendable
from gemini_live.transport.base import Backend, CloseInfo, ConnectOptions, FrameHandler, Transport

__all__ = [
    "CASSETTE_VERSION",
    "Cassette",
    "CassetteError",
    "CassetteWriter",
    "Recorder",
    "RecordingProxy",
    "client_kind",
    "scrub_frame",
]

#: Version written in the cassette header; readers refuse newer ones.
CASSETTE_VERSION: Final = 1
#: Where :class:`RecordingProxy` forwards by default.
GOOGLE_BASE: Final = "wss://generativelanguage.googleapis.com"
_REDACTED_PREFIX: Final = "<base64 redacted: "
#: Client message kinds that stream: consecutive ones are one step of a replay.
STREAM_KINDS: Final = frozenset({"realtimeInput.audio", "realtimeInput.video"})
#: Longest cassette line read (characters); a longer one is a :class:`CassetteError`.
#: A recorded frame is at most 16 MiB, about 22 MiB as base64 JSON with ``keep_audio``.
MAX_LINE_CHARS: Final = 24 * 1024 * 1024
#: Largest blob a redacted payload may declare (bytes of silence a replay sends in its
#: place); the service's own frame limit.
MAX_BLOB_BYTES: Final = 16 * 1024 * 1024


# --------------------------------------------------------------------------- writing


def _scrub(obj: Any) -> Any:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        is_blob = "mimeType" in obj or "mime_type" in obj
        for k, v in obj.items():
            if is_blob and k == "data" and isinstance(v, str):
                out[k] = f"{_REDACTED_PREFIX}{len(v)} chars = {_decoded_len(v)} bytes>"
            else:
                out[k] = _scrub(v)
        return out
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj


def scrub_frame(data: bytes, *, keep_audio: bool = False) -> dict[str, Any]:
    """The recordable form of one frame: ``{"frame": parsed JSON}`` (blob payloads replaced
    unless ``keep_audio``), or ``{"text": ...}`` / ``{"binary": true}`` for non-JSON."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return {"binary": True}
        return {"text": text[:500]}
    return {"frame": obj if keep_audio else _scrub(obj)}


def client_kind(frame: Any) -> str:
    """The kind of a client message, e.g. ``setup``, ``realtimeInput.audio``,
    ``realtimeInput.text``, ``clientContent``, ``toolResponse`` (either key style)."""
    if not isinstance(frame, dict) or not frame:
        return "unknown"
    obj = normalize_keys(frame)
    key = next(iter(obj))
    if key == "realtimeInput" and isinstance(obj[key], dict) and obj[key]:
        sub = next(iter(obj[key]))
        if sub == "mediaChunks":
            chunks = obj[key][sub] or [{}]
            mime = str(chunks[0].get("mimeType", "")) if isinstance(chunks[0], dict) else ""
            sub = "video" if mime.startswith("image/") else "audio"
        return f"realtimeInput.{sub}"
    return str(key)


def _blob(frame: dict[str, Any]) -> dict[str, Any] | None:
    ri = normalize_keys(frame).get("realtimeInput")
    if not isinstance(ri, dict):
        return None
    blob = ri.get("audio") or ri.get("video")
    if blob is None and isinstance(ri.get("mediaChunks"), list) and ri["mediaChunks"]:
        blob = ri["mediaChunks"][0]
    return blob if isinstance(blob, dict) else None


def _decoded_len(data: str) -> int:
    """Bytes a base64 string decodes to (either alphabet, padded or not)."""
    return len(data.rstrip("=")) * 3 // 4


def _b64_len(data: str) -> int:
    """Bytes a blob held: its base64 length, or the size a redacted blob declares.

    Raises:
        ValueError: a redacted blob whose declared size is not a number or is above
            :data:`MAX_BLOB_BYTES` (a replay would allocate that much silence).
    """
    if data.startswith(_REDACTED_PREFIX):
        words = data[len(_REDACTED_PREFIX) : len(_REDACTED_PREFIX) + 80].rstrip(">").split()
        try:
            if len(words) >= 4 and words[2] == "=":
                n = int(words[3].rstrip(">"))
            else:
                n = int(words[0]) * 3 // 4
        except (IndexError, ValueError):
            raise ValueError(f"unreadable redacted blob {excerpt(data, 60)}") from None
        if not 0 <= n <= MAX_BLOB_BYTES:
            raise ValueError(
                f"a redacted blob declares {n} bytes (at most {MAX_BLOB_BYTES} are allowed)"
            )
        return n
    return _decoded_len(data)


def stream_units(kind: str, frame: Any) -> float:
    """Milliseconds of audio in an audio message, 1 for a video frame, else 0."""
    if kind == "realtimeInput.video":
        return 1.0
    if kind != "realtimeInput.audio" or not isinstance(frame, dict):
        return 0.0
    blob = _blob(frame)
    if blob is None or not isinstance(blob.get("data"), str):
        return 0.0
    why = bad_input_rate(blob.get("mimeType"))
    if why is not None:
        raise ValueError(f"audio blob with an {why}")
    rate = pcm_rate(blob.get("mimeType"))
    return _b64_len(blob["data"]) / 2 / rate * 1000


class CassetteWriter:
    """Appends cassette records to a JSONL file (line-buffered; :meth:`close` ends it).

    With ``atomic=True`` the records go to ``PATH.partial`` beside ``path``;
    :meth:`close` renames it over ``path`` (a clean recording) and :meth:`discard`
    deletes it (a failed one), so ``path`` is either the previous cassette, untouched, or
    a whole new one, never half a recording.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        keep_audio: bool = False,
        clock: Callable[[], float] = time.monotonic,
        atomic: bool = False,
    ) -> None:
        self.path = Path(path)
        self.keep_audio = keep_audio
        self.atomic = atomic
        #: Where the records are written (``path``, or ``PATH.partial`` when atomic).
        self.partial = self.path.with_name(self.path.name + ".partial") if atomic else self.path
        #: Connections whose upstream could not be reached, as ``(conn, error)``.
        self.failures: list[tuple[int, str]] = []
        self._clock = clock
        self._t0 = clock()
        self._file: IO[str] | None = self.partial.open("w", encoding="utf-8")
        self._connections = 0
        self.records = 0
        self.write(0, "meta", event="cassette", version=CASSETTE_VERSION, keep_audio=keep_audio)

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
        f.flush()
        self.records += 1

    def frame(self, conn: int, direction: str, data: bytes) -> None:
        fields = scrub_frame(data, keep_audio=self.keep_audio)
        if direction == "client" and "frame" in fields:
            fields = {"kind": client_kind(fields["frame"]), **fields}
        self.write(conn, direction, bytes=len(data), **fields)

    def connected(self, conn: int, url: str, **extra: Any) -> None:
        # Only scheme, host and path: a query string may hold a key or token.
        parts = urllib.parse.urlsplit(url)
        self.write(
            conn,
            "meta",
            event="connect",
            url=f"{parts.scheme}://{parts.netloc}{parts.path}",
            **extra,
        )

    def closed(self, conn: int, code: int, reason: str, by: str) -> None:
        self.write(conn, "meta", event="close", code=code, reason=reason, by=by)

    def close(self) -> None:
        """End the file (and, when atomic, put it in place of ``path``)."""
        f, self._file = self._file, None
        if f is not None:
            f.close()
            if self.atomic:
                self.partial.replace(self.path)

    def discard(self) -> None:
        """Drop a failed recording: an atomic writer deletes its partial file and leaves
        ``path`` as it was; a plain one only closes the file."""
        f, self._file = self._file, None
        if f is not None:
            f.close()
            if self.atomic:
                self.partial.unlink(missing_ok=True)

    def failed(self, conn: int, error: str) -> None:
        """Record that connection ``conn`` could not reach the upstream (bounded list)."""
        if len(self.failures) < 16:
            self.failures.append((conn, error))
        self.write(conn, "meta", event="connect_failed", error=error)


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


# --------------------------------------------------------------------------- reading


@dataclass(slots=True)
class Step:
    """One client step of a recorded connection: a message, or a run of streamed chunks."""

    kind: str
    t: float
    units: float = 0.0
    messages: int = 1
    #: The recorded message (payloads scrubbed), for ``match="strict"``; None for streams.
    frame: dict[str, Any] | None = None


@dataclass(slots=True)
class ServerItem:
    """A recorded server frame (or close), due once the client reached its position."""

    t: float
    #: Client steps begun when it was recorded, and units of the last one if it streams.
    steps: int
    units: float
    frame: bytes | None = None
    close: tuple[int, str] | None = None
    #: A frame with redacted blobs: silence is put in their place when it is sent (so a
    #: cassette's silence is never all in memory at once).
    template: dict[str, Any] | None = None

    def payload(self) -> bytes:
        """The frame to send (redacted blobs replaced by silence of their length)."""
        if self.template is not None:
            return json.dumps(_restore_blobs(self.template), separators=(",", ":")).encode()
        assert self.frame is not None
        return self.frame


@dataclass(slots=True)
class RecordedConnection:
    index: int
    url: str = ""
    steps: list[Step] = field(default_factory=list)
    items: list[ServerItem] = field(default_factory=list)


def _restore_blobs(obj: Any) -> Any:
    """Redacted blob payloads -> silence (zero bytes) of the recorded length."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k == "data" and isinstance(v, str) and v.startswith(_REDACTED_PREFIX):
                n = _b64_len(v) // 2 * 2
                out[k] = pybase64.b64encode_as_string(bytes(n))
            else:
                out[k] = _restore_blobs(v)
        return out
    if isinstance(obj, list):
        return [_restore_blobs(v) for v in obj]
    return obj


def _declared_silence(obj: Any) -> int:
    """Bytes of silence the redacted blobs of a frame stand for (checked, not allocated)."""
    if isinstance(obj, dict):
        total = 0
        for k, v in obj.items():
            if k == "data" and isinstance(v, str) and v.startswith(_REDACTED_PREFIX):
                total += _b64_len(v) // 2 * 2
            else:
                total += _declared_silence(v)
        return total
    if isinstance(obj, list):
        return sum(_declared_silence(v) for v in obj)
    return 0


def _int(rec: dict[str, Any], key: str, default: int | None = None) -> int:
    value = rec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key!r} must be an integer, got {excerpt(value, 40)}")
    return value


def _float(rec: dict[str, Any], key: str) -> float:
    value = rec.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key!r} must be a finite number, got {excerpt(value, 40)}")
    return float(value)


def _str(rec: dict[str, Any], key: str) -> str:
    value = rec.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {excerpt(value, 40)}")
    return value


def _read_records(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """The records of a cassette file with their line numbers (bounded line length)."""
    records: list[tuple[int, dict[str, Any]]] = []
    try:
        with Path(path).open(encoding="utf-8", newline="") as f:
            n = 0
            while True:
                line = f.readline(MAX_LINE_CHARS + 1)
                if not line:
                    break
                n += 1
                if len(line) > MAX_LINE_CHARS:
                    raise CassetteError(f"{path}:{n}: line longer than {MAX_LINE_CHARS} characters")
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except RecursionError:
                    raise CassetteError(f"{path}:{n}: JSON nested too deeply") from None
                except ValueError as exc:
                    raise CassetteError(f"{path}:{n}: not JSON: {exc}") from None
                if not isinstance(rec, dict) or "dir" not in rec or "conn" not in rec:
                    raise CassetteError(f"{path}:{n}: not a cassette record")
                records.append((n, rec))
    except UnicodeDecodeError as exc:
        raise CassetteError(
            f"{path}: not a cassette (not UTF-8 text at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise CassetteError(f"cannot read cassette {path}: {exc.strerror or exc}") from None
    if not records:
        raise CassetteError(f"{path}: empty cassette (no records)")
    return records


@dataclass
class Cassette:
    """A parsed cassette: per recorded connection, the client steps and server items.

    Loading is bounded: lines are at most :data:`MAX_LINE_CHARS` long, and the redacted
    blobs of one frame declare at most :data:`MAX_BLOB_BYTES` in all (their silence is
    made when the frame is sent, not at load). Anything wrong is a
    :class:`~gemini_live.errors.CassetteError` naming the file, the line and the problem
    in one line.
    """

    connections: list[RecordedConnection]
    version: int = CASSETTE_VERSION
    path: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Cassette:
        """Read and check a cassette file (raises :class:`CassetteError`)."""
        return cls._build(_read_records(path), str(path), lines=True)

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], *, path: str = "") -> Cassette:
        """Build a cassette from parsed records (errors name the record's index)."""
        return cls._build(list(enumerate(records)), path, lines=False)

    @classmethod
    def _build(
        cls, records: list[tuple[int, dict[str, Any]]], path: str, *, lines: bool
    ) -> Cassette:
        version = CASSETTE_VERSION
        conns: dict[int, RecordedConnection] = {}
        for n, rec in records:
            try:
                if not isinstance(rec, dict):
                    raise ValueError("not a cassette record")
                if rec.get("event") == "cassette":
                    version = _int(rec, "version", CASSETTE_VERSION)
                    if version != CASSETTE_VERSION:
                        raise CassetteError(f"{path}: unsupported cassette version {version}")
                    continue
                _add_record(conns, rec)
            except CassetteError:
                raise
            except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
                where = f"{path}:{n}" if lines else f"{path}: record {n}"
                raise CassetteError(f"{where}: {exc}") from None
            except RecursionError:
                where = f"{path}:{n}" if lines else f"{path}: record {n}"
                raise CassetteError(f"{where}: frame nested too deeply") from None
        ordered = [conns[k] for k in sorted(conns)]
        for i, c in enumerate(ordered):
            c.index = i
        return cls(ordered, version, path)


def _add_record(conns: dict[int, RecordedConnection], rec: dict[str, Any]) -> None:
    conn_id = _int(rec, "conn")
    if conn_id <= 0:
        return
    direction = rec["dir"]
    if direction not in ("meta", "client", "server"):
        raise ValueError(f"'dir' must be meta, client or server, got {excerpt(direction, 40)}")
    conn = conns.setdefault(conn_id, RecordedConnection(index=len(conns)))
    t = _float(rec, "t")
    if direction == "meta":
        if rec.get("event") == "connect":
            conn.url = _str(rec, "url")
        elif rec.get("event") == "close" and rec.get("by") == "server":
            code = _int(rec, "code", 1006)
            if code != 1006 and not sendable(code):  # 1006: a drop, replayed as one
                raise ValueError(f"close code {code} cannot be sent in a close frame")
            conn.items.append(_item(conn, t, close=(code, _str(rec, "reason"))))
        return
    frame = rec.get("frame")
    if direction == "client":
        kind = rec.get("kind") or client_kind(frame)
        if not isinstance(kind, str):
            raise ValueError(f"'kind' must be a string, got {excerpt(kind, 40)}")
        units = stream_units(kind, frame)
        last = conn.steps[-1] if conn.steps else None
        if kind in STREAM_KINDS and last is not None and last.kind == kind:
            last.units += units
            last.messages += 1
        else:
            kept = frame if isinstance(frame, dict) and kind not in STREAM_KINDS else None
            conn.steps.append(Step(kind, t, units, frame=kept))
    elif frame is not None:
        if not isinstance(frame, dict):
            raise ValueError(f"a server 'frame' must be a JSON object, got {excerpt(frame, 40)}")
        silence = _declared_silence(frame)
        if silence > MAX_BLOB_BYTES:
            raise ValueError(
                f"a frame declares {silence} bytes of redacted audio "
                f"(at most {MAX_BLOB_BYTES} are allowed)"
            )
        if silence:
            item = _item(conn, t)
            item.template = frame
        else:
            item = _item(conn, t, frame=json.dumps(frame, separators=(",", ":")).encode())
        conn.items.append(item)


def _item(
    conn: RecordedConnection,
    t: float,
    *,
    frame: bytes | None = None,
    close: tuple[int, str] | None = None,
) -> ServerItem:
    last = conn.steps[-1] if conn.steps else None
    units = last.units if last is not None and last.kind in STREAM_KINDS else 0.0
    return ServerItem(t, len(conn.steps), units, frame, close)


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


def __getattr__(name: str) -> Any:
    # Deprecated path, kept for one release: use_cassette lives beside the server it
    # starts (gemini_live.testing._server), so this module need not import the server.
    if name == "use_cassette":
        import warnings

        from gemini_live.testing._server import use_cassette

        warnings.warn(
            "import use_cassette from gemini_live.testing, not gemini_live.testing.cassette",
            DeprecationWarning,
            stacklevel=2,
        )
        return use_cassette
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
