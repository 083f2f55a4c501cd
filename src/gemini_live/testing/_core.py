"""Transport-agnostic core of the fake Live API server.

:class:`LiveServerCore` holds the scripted behaviour and all state that outlives a single
connection (sessions, resumption handles, tool calls). Each accepted connection gets a
:class:`_ConnectionLogic`, which talks to its peer only through the tiny
:class:`ServerConn` interface (send bytes, close with a code, abort). Adapters feed it:

* :mod:`gemini_live.testing._server` runs it behind a real ``websockets`` server;
* :mod:`gemini_live.testing._memory` runs it over an in-process pipe.

An adapter calls :meth:`_ConnectionLogic.opened` once, then :meth:`~_ConnectionLogic.on_frame`
for every client frame in order (awaiting each), and finally
:meth:`~_ConnectionLogic.on_closed` exactly once with the close code the server saw.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import math
import re
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import msgspec
import pybase64

from gemini_live.codec import encode_server
from gemini_live.testing._normalize import FrameError, decode_client_tolerant, message_kind
from gemini_live.types import (
    UNSET,
    Blob,
    ClientContent,
    ClientMessage,
    FunctionCall,
    FunctionResponse,
    GoAway,
    ModalityTokenCount,
    RealtimeInput,
    ServerContent,
    ServerMessage,
    SessionResumptionUpdate,
    Setup,
    SetupComplete,
    ToolCall,
    ToolCallCancellation,
    ToolResponse,
    Transcription,
    UnsetType,
    UsageMetadata,
    format_duration,
)

__all__ = [
    "API_KEY_INVALID",
    "BEARER_INVALID",
    "CANCELLED",
    "ENTITY_NOT_FOUND",
    "INTERNAL_ERROR",
    "INVALID_ARGUMENT",
    "SESSION_NOT_FOUND",
    "TOKEN_INVALID",
    "TONE_PCM",
    "UNREGISTERED_CALLER",
    "ConnectionRecord",
    "LiveServerCore",
    "ServerConn",
    "ServerConnectionClosed",
    "SessionState",
    "ToolScript",
    "parse_path",
]

logger = logging.getLogger("gemini_live.testing")

# Close reasons, worded as the real service words them (see docs/protocol.md § close codes).
INVALID_ARGUMENT: Final = "Request contains an invalid argument."
API_KEY_INVALID: Final = "API key not valid. Please pass a valid API key."
TOKEN_INVALID: Final = (
    "Missing or malformed auth token. Please pass it in an access_token query parameter."
)
UNREGISTERED_CALLER: Final = (
    "Method doesn't allow unregistered callers (callers without established identity)."
    " Please use API Key or other form of API consumer identity to call this API."
)
BEARER_INVALID: Final = "Request had invalid authentication credentials."
SESSION_NOT_FOUND: Final = "BidiGenerateContent session not found"
ENTITY_NOT_FOUND: Final = "Requested entity was not found."
CANCELLED: Final = "The operation was cancelled."
INTERNAL_ERROR: Final = "Internal error encountered."

EndpointKind = Literal["gemini", "constrained", "vertex"]

_GEMINI_PATH: Final = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.(v1|v1beta|v1alpha)\.GenerativeService\."
    r"(BidiGenerateContent|BidiGenerateContentConstrained)$"
)
_VERTEX_PATH: Final = re.compile(
    r"^/ws/google\.cloud\.aiplatform\.(v1|v1beta1)\.LlmBidiService/BidiGenerateContent$"
)


def parse_path(path: str) -> tuple[EndpointKind, str] | None:
    """Return ``(kind, api_version)`` for a Live API path, or None for an unknown path.

    A leading double slash (``//ws/...``, as the official SDK sends it) is tolerated.
    """
    path = "/" + path.split("?", 1)[0].lstrip("/")
    m = _GEMINI_PATH.match(path)
    if m:
        kind: EndpointKind = "constrained" if m.group(2).endswith("Constrained") else "gemini"
        return kind, m.group(1)
    m = _VERTEX_PATH.match(path)
    if m:
        return "vertex", m.group(1)
    return None


# --------------------------------------------------------------------------- audio

OUTPUT_RATE: Final = 24000
OUTPUT_MIME: Final = "audio/pcm;rate=24000"
CHUNK_MS: Final = 40


def _make_tone(ms: int = CHUNK_MS, rate: int = OUTPUT_RATE, freq: float = 440.0) -> bytes:
    n = rate * ms // 1000
    samples = array.array(
        "h", (int(6000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


#: One reply chunk: 40 ms of a 440 Hz tone, 24 kHz mono PCM16 little-endian (1920 bytes).
TONE_PCM: Final = _make_tone()
_TONE_B64: Final = pybase64.b64encode(TONE_PCM)
_AUDIO_PREFIX: Final = (
    b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"'
    + OUTPUT_MIME.encode()
    + b'","data":"'
    + _TONE_B64
    + b'"}}]}'
)
#: The pre-serialized audio-only reply frame.
AUDIO_FRAME: Final = _AUDIO_PREFIX + b"}}"
_transcription_encoder: Final = msgspec.json.Encoder()


def _audio_frame(fragment: str | None) -> bytes:
    if not fragment:
        return AUDIO_FRAME
    return b"".join(
        (
            _AUDIO_PREFIX,
            b',"outputTranscription":',
            _transcription_encoder.encode(Transcription(text=fragment)),
            b"}}",
        )
    )


def _pcm_rate(mime: object) -> int:
    if isinstance(mime, str):
        m = re.search(r"rate=(\d+)", mime)
        if m:
            return int(m.group(1))
    return 16000


def split_fragments(text: str, n: int) -> list[str]:
    """Split ``text`` into ``n`` word-aligned fragments that concatenate back to ``text``."""
    if n <= 1:
        return [text]
    words = re.findall(r"\s+|\S+\s*", text)
    size = max(1, math.ceil(len(words) / n))
    return ["".join(words[i * size : (i + 1) * size]) for i in range(n)]


# --------------------------------------------------------------------------- public records


@dataclass(frozen=True, slots=True)
class ToolScript:
    """What the fake model does when a trigger word appears in user text.

    * ``name`` / ``args``: the function call sent (ids are ``call-<n>``, unique per server).
    * ``parallel``: how many calls (same name and args, distinct ids) go in one ``toolCall``.
    * ``cancel_after``: right after the ``toolCall`` frame, send ``toolCallCancellation`` for
      those ids and end the turn (as a barge-in would). Responses to them are then ignored.
    * ``non_blocking``: the model keeps talking: a short reply turn follows the call at once,
      and the result is spoken in a later turn unless the response's ``scheduling`` is
      ``SILENT``. Blocking calls (the default) get no reply until every call of the batch
      is answered, and meanwhile resumption updates say ``resumable: false``.

    Partial results (``willContinue: true``) are collected; only the final response of a
    call counts as its answer.
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    parallel: int = 1
    cancel_after: bool = False
    non_blocking: bool = False


@dataclass(slots=True)
class _PendingCall:
    id: str
    name: str
    group: int
    non_blocking: bool
    partials: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class _HandleEntry:
    session_id: str
    pending: frozenset[str]
    #: Lengths of the session's message log and history when the handle was issued.
    log_len: int
    history_len: int


@dataclass(eq=False)
class SessionState:
    """Server-side state of one logical session (survives resumption)."""

    session_id: str
    #: ``(role, text)`` per turn, user and model, in order.
    history: list[tuple[str, str]] = field(default_factory=list)
    #: Completed model turns.
    turns: int = 0
    prompt_tokens: int = 0
    response_tokens: int = 0
    #: Every handle issued for this session, oldest first.
    handles: list[str] = field(default_factory=list)
    #: Indexes into ``FakeLiveServer.connections`` of the connections that served it.
    connections: list[int] = field(default_factory=list)
    pending_calls: dict[str, _PendingCall] = field(default_factory=dict)
    cancelled_calls: set[str] = field(default_factory=set)
    #: ``(connection index, message index)`` of every client message in the session state.
    log: list[tuple[int, int]] = field(default_factory=list)
    _results: dict[int, list[tuple[str, Any, str | None]]] = field(default_factory=dict)

    def blocking_pending(self) -> bool:
        return any(not c.non_blocking for c in self.pending_calls.values())


@dataclass(eq=False)
class ConnectionRecord:
    """Everything the server saw on one connection (read it in tests)."""

    index: int
    #: ``"websocket"`` or ``"memory"``.
    transport: str
    path: str
    #: Request headers, lower-case names.
    headers: dict[str, str]
    query: dict[str, str]
    kind: EndpointKind
    api_version: str
    #: Every decoded client message, in order (Blob data rewritten to standard base64).
    received: list[ClientMessage] = field(default_factory=list)
    #: The raw client frames (when the server records frames).
    raw_received: list[bytes] = field(default_factory=list)
    #: Every frame the server sent (when the server records frames).
    sent: list[bytes] = field(default_factory=list)
    #: All realtime input audio, decoded.
    audio: bytearray = field(default_factory=bytearray)
    setup: Setup | None = None
    session_id: str | None = None
    #: The handle this connection resumed from, or None for a fresh session.
    resumed_from: str | None = None
    setup_completed: bool = False
    #: Close code / reason as the server saw them (what it sent, or what the client sent;
    #: 1006 for a drop without close frame). None while open.
    close_code: int | None = None
    close_reason: str | None = None
    #: Indexes (setup = 0) of received messages that a later resumption rolled back: they
    #: came after the handle the client resumed from, so they are not in the session state.
    rolled_back: set[int] = field(default_factory=set)
    #: How many received messages the server has finished processing (replies sent).
    processed: int = 0
    _closed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def open(self) -> bool:
        return self.close_code is None

    @property
    def consumed(self) -> list[ClientMessage]:
        """``received`` minus the messages a later resumption rolled back.

        Concatenated over a session's connections this is the exact input stream the
        session state holds; with transparent resumption a correct client's replays make
        it exactly-once even though ``received`` may show a replayed message twice.
        """
        if not self.rolled_back:
            return list(self.received)
        return [m for i, m in enumerate(self.received) if i not in self.rolled_back]

    async def wait_closed(self, within: float = 5.0) -> tuple[int, str]:
        """Wait (bounded) until the connection ended; return ``(code, reason)``."""
        async with asyncio.timeout(within):
            await self._closed.wait()
        assert self.close_code is not None
        return self.close_code, self.close_reason or ""


# --------------------------------------------------------------------------- seam


class ServerConnectionClosed(Exception):
    """Raised by :meth:`ServerConn.send` once the connection is closed."""


class ServerConn(Protocol):
    """The server's side of one connection, as the core needs it."""

    async def send(self, data: bytes) -> None:
        """Send one binary frame; raise :class:`ServerConnectionClosed` if closed."""

    async def close(self, code: int, reason: str) -> None:
        """Close with a close frame."""

    def abort(self) -> None:
        """Drop the connection without a close frame (the client sees 1006)."""


class _Notifier:
    """Wake every waiter on any state change (sync ``notify``, no lock needed)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_for(self, predicate: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                await self._event.wait()


def _header_credentials(
    headers: Mapping[str, str], query: Mapping[str, str]
) -> tuple[str | None, str | None, str | None]:
    """Return ``(api_key, token, bearer)`` presented by a request."""
    key = headers.get("x-goog-api-key") or query.get("key")
    scheme, _, cred = headers.get("authorization", "").strip().partition(" ")
    scheme = scheme.lower()
    token = cred.strip() if scheme == "token" else query.get("access_token")
    bearer = cred.strip() if scheme == "bearer" else None
    return key, token, bearer


# --------------------------------------------------------------------------- core


class LiveServerCore:
    """Scripted server side of the Live protocol, independent of any transport.

    See :class:`gemini_live.testing.FakeLiveServer` for the options.
    """

    def __init__(
        self,
        *,
        require_api_key: str | None = None,
        require_token: str | None = None,
        require_bearer: str | None = None,
        resumable: bool = True,
        transparent: bool = False,
        setup_delay: float = 0.0,
        send_setup_complete: bool = True,
        reject_setup: tuple[int, str] | None = None,
        reply_chunks: int = 3,
        go_away_after_messages: int | None = None,
        go_away_after_seconds: float | None = None,
        go_away_time_left: float = 1.0,
        tool_triggers: Mapping[str, ToolScript] | None = None,
        auto_reply: bool = True,
        validate_frames: bool = False,
        record_frames: bool = True,
        auth_on_connect: bool = False,
        ack_every: int = 1,
        int64_as_string: bool = True,
    ) -> None:
        self.require_api_key = require_api_key
        self.require_token = require_token
        self.require_bearer = require_bearer
        self.resumable = resumable
        self.transparent = transparent
        self.setup_delay = setup_delay
        self.send_setup_complete = send_setup_complete
        self.reject_setup = reject_setup
        self.reply_chunks = reply_chunks
        self.go_away_after_messages = go_away_after_messages
        self.go_away_after_seconds = go_away_after_seconds
        self.go_away_time_left = go_away_time_left
        self.tool_triggers: dict[str, ToolScript] = dict(tool_triggers or {})
        self.auto_reply = auto_reply
        self.validate_frames = validate_frames
        self.record_frames = record_frames
        self.auth_on_connect = auth_on_connect
        self.ack_every = ack_every
        self.int64_as_string = int64_as_string

        #: One record per accepted connection, in accept order.
        self.connections: list[ConnectionRecord] = []
        #: Server-side sessions by id.
        self.sessions: dict[str, SessionState] = {}
        #: Frames that failed the ``validate_frames`` oracle (raised on exit).
        self.frame_errors: list[str] = []
        #: Unexpected exceptions inside the server (raised on exit).
        self.errors: list[BaseException] = []
        self._logics: list[_ConnectionLogic] = []
        self._handles: dict[str, _HandleEntry] = {}
        self._n_sessions = 0
        self._n_handles = 0
        self._n_calls = 0
        self._n_groups = 0
        self._notifier = _Notifier()
        self._reject_next = 0
        self._reject_close: tuple[int, str] = (1011, INTERNAL_ERROR)

    # ------------------------------------------------------------------ records

    @property
    def received(self) -> list[list[ClientMessage]]:
        """Every decoded client message, per connection, in order."""
        return [c.received for c in self.connections]

    @property
    def consumed(self) -> list[list[ClientMessage]]:
        """Per connection, the received messages that are part of the session state."""
        return [c.consumed for c in self.connections]

    def reject_next_setups(self, n: int, close: tuple[int, str]) -> None:
        """Answer the next ``n`` setups (on any connection) by closing with ``close``."""
        self._reject_next = n
        self._reject_close = close

    @property
    def handles(self) -> list[str]:
        """Every currently valid resumption handle, oldest first."""
        return list(self._handles)

    def expire_handles(self) -> None:
        """Make every issued handle stale: resuming with one closes 1008 "session not found"."""
        self._handles.clear()

    def check(self) -> None:
        """Raise ``AssertionError`` if a frame failed validation or the server hit a bug."""
        if self.frame_errors:
            raise AssertionError(
                f"{len(self.frame_errors)} invalid server frame(s):\n" + self.frame_errors[0]
            )
        if self.errors:
            raise AssertionError(f"fake server error: {self.errors[0]!r}") from self.errors[0]

    # ------------------------------------------------------------------ waiting

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` is true; it is re-checked on every server event."""
        await self._notifier.wait_for(predicate, within)

    async def wait_for_connections(self, n: int, within: float = 5.0) -> list[ConnectionRecord]:
        """Wait until at least ``n`` connections were accepted."""
        await self.wait_until(lambda: len(self.connections) >= n, within)
        return self.connections

    async def wait_for_messages(
        self, n: int, connection: int = -1, within: float = 5.0
    ) -> list[ClientMessage]:
        """Wait until connection ``connection`` (default: the latest) received ``n`` messages.

        The setup counts. A message counts once the server has processed it, i.e. sent
        its replies and acknowledgements.
        """

        def ready() -> bool:
            return bool(self.connections) and self.connections[connection].processed >= n

        await self.wait_until(ready, within)
        return self.connections[connection].received

    async def wait_for_close(self, connection: int = -1, within: float = 5.0) -> ConnectionRecord:
        """Wait until connection ``connection`` (default: the latest) has ended."""
        await self.wait_until(
            lambda: bool(self.connections) and not self.connections[connection].open, within
        )
        return self.connections[connection]

    async def wait_for_setup(self, connection: int = -1, within: float = 5.0) -> ConnectionRecord:
        """Wait until connection ``connection`` has been sent ``setupComplete``."""
        await self.wait_until(
            lambda: bool(self.connections) and self.connections[connection].setup_completed,
            within,
        )
        return self.connections[connection]

    # ------------------------------------------------------------------ actions

    def _targets(self, connection: int | None) -> list[_ConnectionLogic]:
        if connection is not None:
            return [self._logics[connection]]
        return [lg for lg in self._logics if not lg.finished]

    def _current(self, connection: int | None) -> _ConnectionLogic:
        targets = self._targets(connection)
        if not targets:
            raise LookupError("the fake server has no open connection")
        return targets[-1]

    async def send(self, msg: ServerMessage | bytes, *, connection: int | None = None) -> None:
        """Send one raw frame (a ServerMessage or bytes) to the latest open connection."""
        data = msg if isinstance(msg, bytes) else encode_server(msg)
        await self._current(connection).send_frame(data)

    async def send_go_away(
        self, time_left: float = 1.0, *, connection: int | None = None, close_after: bool = True
    ) -> None:
        """Send ``goAway`` to every open connection; close them 1000 when ``time_left`` ends."""
        for lg in self._targets(connection):
            await lg.go_away(time_left, close_after=close_after)

    async def drop(self, *, connection: int | None = None) -> None:
        """Abruptly drop the open connection(s): no close frame, the client sees 1006."""
        for lg in self._targets(connection):
            lg.abort()

    async def close(
        self, code: int = 1011, reason: str = INTERNAL_ERROR, *, connection: int | None = None
    ) -> None:
        """Close the open connection(s) with ``code`` and ``reason``."""
        for lg in self._targets(connection):
            await lg.close(code, reason)

    async def send_tool_call(
        self,
        calls: Sequence[tuple[str, str, Mapping[str, Any]] | FunctionCall],
        *,
        connection: int | None = None,
        non_blocking: bool = False,
    ) -> list[str]:
        """Send one ``toolCall`` with ``calls`` (``(id, name, args)`` tuples) and await answers.

        The ids become pending calls of the session, so a ``toolResponse`` for them gets a
        reply turn. Returns the ids.
        """
        fcs = [
            c if isinstance(c, FunctionCall) else FunctionCall(id=c[0], name=c[1], args=dict(c[2]))
            for c in calls
        ]
        return await self._current(connection).start_tool_call(fcs, non_blocking=non_blocking)

    async def send_tool_call_cancellation(
        self, ids: Iterable[str], *, connection: int | None = None
    ) -> None:
        """Send ``toolCallCancellation`` for ``ids``; later responses to them are ignored."""
        await self._current(connection).cancel_calls(list(ids))

    async def shutdown_connections(self) -> None:
        """Close every open connection with 1001 and stop their timers."""
        for lg in list(self._logics):
            if not lg.finished:
                await lg.close(1001, "")
            lg.stop_tasks()

    # ------------------------------------------------------------------ internals

    def path_ok(self, path: str) -> bool:
        return parse_path(path) is not None

    def _open_connection(
        self,
        conn: ServerConn,
        *,
        transport: str,
        path: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
    ) -> _ConnectionLogic:
        parsed = parse_path(path)
        if parsed is None:
            raise ValueError(f"not a Live API path: {path}")
        record = ConnectionRecord(
            index=len(self.connections),
            transport=transport,
            path=path,
            headers={k.lower(): v for k, v in headers.items()},
            query=dict(query),
            kind=parsed[0],
            api_version=parsed[1],
        )
        logic = _ConnectionLogic(self, conn, record)
        self.connections.append(record)
        self._logics.append(logic)
        self._notifier.notify()
        return logic

    def _auth_failure(self, record: ConnectionRecord) -> tuple[int, str] | None:
        key, token, bearer = _header_credentials(record.headers, record.query)
        required = any(
            r is not None for r in (self.require_api_key, self.require_token, self.require_bearer)
        )
        if record.kind == "gemini":
            if self.require_api_key is not None and key == self.require_api_key:
                return None
            if not required:
                return None
            if token is not None and key in (None, token):
                return 1008, UNREGISTERED_CALLER
            return 1007, API_KEY_INVALID
        if record.kind == "constrained":
            if self.require_token is not None and token == self.require_token:
                return None
            if not required:
                return None
            return 1007, TOKEN_INVALID
        if self.require_bearer is not None and bearer == self.require_bearer:
            return None
        if self.require_api_key is not None and key == self.require_api_key:
            return None  # Vertex express mode
        if not required:
            return None
        return 1007, BEARER_INVALID

    def _new_session(self) -> SessionState:
        self._n_sessions += 1
        state = SessionState(session_id=f"fake-session-{self._n_sessions}")
        self.sessions[state.session_id] = state
        return state

    def _issue_handle(self, session: SessionState) -> str:
        self._n_handles += 1
        handle = f"fake-handle-{self._n_handles}"
        self._handles[handle] = _HandleEntry(
            session.session_id,
            frozenset(session.pending_calls),
            len(session.log),
            len(session.history),
        )
        session.handles.append(handle)
        return handle

    def _next_call_id(self) -> str:
        self._n_calls += 1
        return f"call-{self._n_calls}"

    def _next_group(self) -> int:
        self._n_groups += 1
        return self._n_groups

    def _match_trigger(self, text: str) -> ToolScript | None:
        low = text.lower()
        for word, script in self.tool_triggers.items():
            if word.lower() in low:
                return script
        return None

    def _validate(self, data: bytes, vertex: bool) -> None:
        from gemini_live.testing._oracle import validate_server_frame

        try:
            validate_server_frame(data, vertex=vertex)
        except AssertionError as exc:
            self.frame_errors.append(str(exc))
            logger.error("fake server sent an invalid frame: %s", exc)


def _usage(session: SessionState, vertex: bool, turn_response: int) -> UsageMetadata:
    """Usage of one turn, as the service bills it: the prompt is the whole context so far
    (user input and earlier model output), the response is this turn's output only.
    """
    prompt = session.prompt_tokens + session.response_tokens - turn_response
    total = prompt + turn_response
    details = [ModalityTokenCount(modality="AUDIO", token_count=turn_response)]
    if vertex:
        return UsageMetadata(
            prompt_token_count=prompt,
            candidates_token_count=turn_response,
            total_token_count=total,
            candidates_tokens_details=details,
            traffic_type="ON_DEMAND",
        )
    return UsageMetadata(
        prompt_token_count=prompt,
        response_token_count=turn_response,
        total_token_count=total,
        response_tokens_details=details,
    )


def _result_json(response: Any) -> str:
    output = response.get("output", response) if isinstance(response, dict) else response
    return msgspec.json.encode(output).decode()


class _ConnectionLogic:
    """Per-connection protocol state machine (setup, replies, tools, goAway, resumption)."""

    def __init__(self, core: LiveServerCore, conn: ServerConn, record: ConnectionRecord) -> None:
        self.core = core
        self.conn = conn
        self.record = record
        self.vertex = record.kind == "vertex"
        self.finished = False  # we closed / aborted, or the connection ended
        self.peer_gone = False  # a send failed: the connection is closed
        self.setup: Setup | None = None
        self.session: SessionState | None = None
        self.index = -1  # index of the last client frame consumed (setup = 0)
        self.after_setup = 0  # client messages after setup
        self.audio_ms = 0.0
        self.want_resumption = False
        self.transparent = False
        self.go_away_sent = False
        self.seeding = False  # historyConfig.initialHistoryInClientContent phase
        self._last_acked = -1
        self._close_sent: tuple[int, str] | None = None
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._deadline: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ adapter API

    async def opened(self) -> None:
        if self.core.auth_on_connect:
            await self._check_auth()

    async def on_frame(self, data: bytes) -> None:
        if self.finished:
            return
        try:
            await self._on_frame(data)
        except Exception as exc:  # a bug in the fake server: report it, fail the connection
            logger.exception("fake server failed on a client frame")
            self.core.errors.append(exc)
            await self.close(1011, INTERNAL_ERROR)

    def on_closed(self, code: int, reason: str) -> None:
        self._finish()
        self.stop_tasks()
        rec = self.record
        if rec.close_code is None:
            if self._close_sent is not None:
                code, reason = self._close_sent
            rec.close_code, rec.close_reason = code, reason
        rec.processed = len(rec.received)
        rec._closed.set()
        self.core._notifier.notify()

    def stop_tasks(self) -> None:
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        self._tasks.clear()

    # ------------------------------------------------------------------ actions

    def _finish(self) -> None:
        self.finished = True
        self._stopped.set()

    async def close(self, code: int, reason: str) -> None:
        if self.finished:
            return
        self._finish()
        # A close frame holds at most 123 bytes of reason; the service truncates too.
        reason = reason.encode()[:123].decode(errors="ignore")
        self._close_sent = (code, reason)
        with contextlib.suppress(ServerConnectionClosed):
            await self.conn.close(code, reason)

    def abort(self) -> None:
        if self.finished:
            return
        self._finish()
        self._close_sent = (1006, "")
        self.conn.abort()

    async def send_frame(self, data: bytes) -> bool:
        """Send one frame; False (and nothing sent) once the connection is closed."""
        if self.peer_gone or self.finished:
            return False
        if self.core.validate_frames:
            self.core._validate(data, self.vertex)
        try:
            await self.conn.send(data)
        except ServerConnectionClosed:
            self.peer_gone = True
            return False
        if self.core.record_frames:
            self.record.sent.append(data)
        self.core._notifier.notify()
        return True

    async def _send(self, msg: ServerMessage) -> bool:
        return await self.send_frame(encode_server(msg))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                assert exc is not None
                self.core.errors.append(exc)

        task.add_done_callback(done)
        return task

    async def _sleep(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; False if the connection ended meanwhile."""
        if self.finished:
            return False
        try:
            await asyncio.wait_for(self._stopped.wait(), delay)
        except TimeoutError:
            return not self.finished
        return False

    async def go_away(self, time_left: float, *, close_after: bool = True) -> None:
        self.go_away_sent = True
        await self._send(ServerMessage(go_away=GoAway(time_left=format_duration(time_left))))
        if close_after:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self._spawn(self._go_away_deadline(time_left))

    async def _go_away_deadline(self, time_left: float) -> None:
        if await self._sleep(time_left):
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)  # don't let on_closed cancel us mid-close
            await self.close(1000, CANCELLED)

    async def _go_away_timer(self, after: float) -> None:
        if await self._sleep(after) and not self.go_away_sent:
            await self.go_away(self.core.go_away_time_left)

    # ------------------------------------------------------------------ protocol

    async def _check_auth(self) -> bool:
        failure = self.core._auth_failure(self.record)
        if failure is None:
            return True
        await self.close(*failure)
        return False

    async def _on_frame(self, data: bytes) -> None:
        try:
            await self._process(data)
        finally:
            self.record.processed = len(self.record.received)
            self.core._notifier.notify()

    async def _process(self, data: bytes) -> None:
        self.index += 1
        if self.core.record_frames:
            self.record.raw_received.append(bytes(data))
        try:
            msg, audio = decode_client_tolerant(data)
        except FrameError as exc:
            logger.info("fake server: undecodable client frame: %s", exc)
            await self.close(1007, INVALID_ARGUMENT)
            return
        self.record.received.append(msg)
        self.core._notifier.notify()
        kind = message_kind(msg)
        if self.setup is None:
            if isinstance(msg.setup, UnsetType):
                await self.close(1007, INVALID_ARGUMENT)
                return
            await self._handle_setup(msg.setup)
            return
        if kind == "setup":
            await self.close(1007, INVALID_ARGUMENT)
            return
        if not self.record.setup_completed:
            return  # never answered: the service would not be listening yet
        self.after_setup += 1
        assert self.session is not None
        self.session.log.append((self.record.index, self.index))
        if isinstance(msg.realtime_input, RealtimeInput):
            await self._realtime_input(msg.realtime_input, audio)
        elif isinstance(msg.client_content, ClientContent):
            await self._client_content(msg.client_content)
        elif isinstance(msg.tool_response, ToolResponse):
            await self._tool_response(msg.tool_response)
        # contextUpdate: recorded only.
        if self.finished:
            return
        limit = self.core.go_away_after_messages
        if limit is not None and not self.go_away_sent and self.after_setup >= limit:
            await self.go_away(self.core.go_away_time_left)
        every = self.core.ack_every
        if (
            self.transparent
            and every > 0
            and self.index % every == 0
            and self._last_acked != self.index
        ):
            await self._send_resumption_update()

    async def _handle_setup(self, setup: Setup) -> None:
        core = self.core
        if not core.auth_on_connect and not await self._check_auth():
            return
        if core._reject_next > 0:
            core._reject_next -= 1
            await self.close(*core._reject_close)
            return
        if core.reject_setup is not None:
            await self.close(*core.reject_setup)
            return
        self.setup = setup
        self.record.setup = setup
        sr = setup.session_resumption
        handle = None if sr is UNSET or not isinstance(sr.handle, str) else sr.handle
        if handle:
            entry = core._handles.get(handle)
            if entry is None or entry.session_id not in core.sessions:
                await self.close(1008, SESSION_NOT_FOUND)
                return
            session = core.sessions[entry.session_id]
            # Resume the state as of the handle: later input and calls are forgotten.
            session.pending_calls = {
                k: v for k, v in session.pending_calls.items() if k in entry.pending
            }
            for conn_index, msg_index in session.log[entry.log_len :]:
                core.connections[conn_index].rolled_back.add(msg_index)
            del session.log[entry.log_len :]
            del session.history[entry.history_len :]
            self.record.resumed_from = handle
        else:
            session = core._new_session()
        self.session = session
        session.connections.append(self.record.index)
        self.record.session_id = session.session_id
        self.want_resumption = sr is not UNSET
        self.transparent = core.transparent and sr is not UNSET and sr.transparent is True
        hc = setup.history_config
        self.seeding = (
            not handle and hc is not UNSET and hc.initial_history_in_client_content is True
        )
        if not core.send_setup_complete:
            return
        if core.setup_delay > 0 and not await self._sleep(core.setup_delay):
            return
        if not await self._send(
            ServerMessage(setup_complete=SetupComplete(session_id=session.session_id))
        ):
            return
        self.record.setup_completed = True
        core._notifier.notify()
        if self.transparent:
            await self._send_resumption_update()  # a handle for index 0 right away
        if core.go_away_after_seconds is not None:
            self._spawn(self._go_away_timer(core.go_away_after_seconds))
        if core.go_away_after_messages == 0:
            await self.go_away(core.go_away_time_left)

    async def _realtime_input(self, ri: RealtimeInput, audio: bytes) -> None:
        self.seeding = False
        if audio:
            self.record.audio += audio
            if isinstance(ri.audio, Blob):
                mime: object = ri.audio.mime_type
            else:
                chunks = [] if isinstance(ri.media_chunks, UnsetType) else ri.media_chunks
                mime = next((c.mime_type for c in chunks if isinstance(c.mime_type, str)), None)
            self.audio_ms += len(audio) / 2 / _pcm_rate(mime) * 1000
        if isinstance(ri.text, str):
            await self._user_text(ri.text)
        if (ri.audio_stream_end is True or ri.activity_end is not UNSET) and self.audio_ms > 0:
            await self._audio_turn()

    async def _client_content(self, cc: ClientContent) -> None:
        session = self.session
        assert session is not None
        texts: list[str] = []
        if cc.turns is not UNSET:
            for turn in cc.turns:
                role = turn.role if isinstance(turn.role, str) else "user"
                parts = [] if turn.parts is UNSET else turn.parts
                text = "".join(p.text for p in parts if isinstance(p.text, str))
                session.history.append((role, text))
                if role == "user":
                    session.prompt_tokens += max(1, len(text) // 4)
                    texts.append(text)
        if self.seeding:
            # Initial history (historyConfig): ingested without generating, up to and
            # including the clientContent with turnComplete.
            if cc.turn_complete is True:
                self.seeding = False
            return
        if cc.turn_complete is True:
            await self._respond(" ".join(t for t in texts if t))

    async def _user_text(self, text: str) -> None:
        session = self.session
        assert session is not None
        session.history.append(("user", text))
        session.prompt_tokens += max(1, len(text) // 4)
        await self._respond(text)

    async def _respond(self, text: str) -> None:
        """Answer a complete user turn: a scripted tool call or a reply turn."""
        if not self.core.auto_reply:
            return
        script = self.core._match_trigger(text)
        if script is not None:
            await self._scripted_tool_call(script)
            return
        await self._reply_turn(f"You said: {text}")

    async def _audio_turn(self) -> None:
        session = self.session
        assert session is not None
        ms = round(self.audio_ms)
        self.audio_ms = 0.0
        session.history.append(("user", f"[{ms} ms of audio]"))
        session.prompt_tokens += max(1, ms * 25 // 1000)
        if not self.core.auto_reply:
            return
        if self.setup is not None and self.setup.input_audio_transcription is not UNSET:
            await self._send(
                ServerMessage(
                    server_content=ServerContent(
                        input_transcription=Transcription(text=f"{ms} ms of audio")
                    )
                )
            )
        await self._reply_turn(f"I heard {ms} ms of audio.")

    async def _reply_turn(self, text: str, *, end_only: bool = False) -> None:
        """One model turn: audio (+ transcript) chunks, generationComplete, turnComplete."""
        session = self.session
        assert session is not None and self.setup is not None
        n = self.core.reply_chunks
        turn_response = 0
        if not end_only:
            transcribe = self.setup.output_audio_transcription is not UNSET
            fragments = split_fragments(text, max(n, 1))
            for i in range(n):
                if not await self.send_frame(_audio_frame(fragments[i] if transcribe else None)):
                    return
            if n == 0 and transcribe and text:
                await self._send(
                    ServerMessage(
                        server_content=ServerContent(output_transcription=Transcription(text=text))
                    )
                )
            await self._send(ServerMessage(server_content=ServerContent(generation_complete=True)))
            turn_response = max(n, 1)
            session.response_tokens += turn_response
            session.history.append(("model", text))
        session.turns += 1
        await self._send(
            ServerMessage(
                server_content=ServerContent(turn_complete=True),
                usage_metadata=_usage(session, self.vertex, turn_response),
            )
        )
        await self._send_resumption_update()

    async def _send_resumption_update(self) -> None:
        session = self.session
        if not self.want_resumption or session is None or self.finished:
            return
        if self.core.resumable and not session.blocking_pending():
            upd = SessionResumptionUpdate(
                new_handle=self.core._issue_handle(session), resumable=True
            )
        else:
            upd = SessionResumptionUpdate(resumable=False)
        if self.transparent:
            upd.last_consumed_client_message_index = self.index
            self._last_acked = self.index
        msg = ServerMessage(session_resumption_update=upd)
        if self.transparent and self.core.int64_as_string:
            # int64 is a JSON string in proto3 JSON, as the real service sends it.
            obj = msgspec.to_builtins(msg)
            obj["sessionResumptionUpdate"]["lastConsumedClientMessageIndex"] = str(self.index)
            await self.send_frame(msgspec.json.encode(obj))
        else:
            await self._send(msg)

    # ------------------------------------------------------------------ tools

    async def start_tool_call(
        self, calls: list[FunctionCall], *, non_blocking: bool = False
    ) -> list[str]:
        session = self.session
        if session is None:
            raise LookupError("the connection has no session yet (no setup received)")
        group = self.core._next_group()
        ids: list[str] = []
        for call in calls:
            if not isinstance(call.id, str):
                call.id = self.core._next_call_id()
            name = call.name if isinstance(call.name, str) else ""
            session.pending_calls[call.id] = _PendingCall(call.id, name, group, non_blocking)
            ids.append(call.id)
        await self._send(ServerMessage(tool_call=ToolCall(function_calls=calls)))
        return ids

    async def cancel_calls(self, ids: list[str]) -> None:
        session = self.session
        if session is None:
            raise LookupError("the connection has no session yet (no setup received)")
        groups = set()
        for call_id in ids:
            call = session.pending_calls.pop(call_id, None)
            if call is not None:
                groups.add(call.group)
            session.cancelled_calls.add(call_id)
        await self._send(ServerMessage(tool_call_cancellation=ToolCallCancellation(ids=ids)))
        for group in groups:
            await self._maybe_finish_group(group)

    async def _scripted_tool_call(self, script: ToolScript) -> None:
        calls = [
            FunctionCall(id=self.core._next_call_id(), name=script.name, args=dict(script.args))
            for _ in range(max(1, script.parallel))
        ]
        ids = await self.start_tool_call(calls, non_blocking=script.non_blocking)
        if script.cancel_after:
            await self.cancel_calls(ids)
            await self._reply_turn("", end_only=True)
        elif script.non_blocking:
            await self._reply_turn(f"Calling {script.name}.")
        else:
            await self._send_resumption_update()  # resumable: false while the call runs

    async def _tool_response(self, tr: ToolResponse) -> None:
        session = self.session
        assert session is not None
        done_groups: list[int] = []
        for fr in tr.function_responses:
            call_id = fr.id if isinstance(fr.id, str) else self._id_by_name(fr)
            if call_id is not None and call_id in session.cancelled_calls:
                continue  # answered after a cancellation: ignored, as the service does
            call = session.pending_calls.get(call_id) if call_id is not None else None
            if call is None:
                await self.close(1008, ENTITY_NOT_FOUND)
                return
            if fr.will_continue is True:
                call.partials.append(fr.response)
                continue
            del session.pending_calls[call.id]
            scheduling = fr.scheduling if isinstance(fr.scheduling, str) else None
            results = session._results.setdefault(call.group, [])
            for partial in call.partials:
                results.append((call.name, partial, scheduling))
            if fr.response or not call.partials:
                results.append((call.name, fr.response, scheduling))
            if call.group not in done_groups:
                done_groups.append(call.group)
        for group in done_groups:
            await self._maybe_finish_group(group)

    def _id_by_name(self, fr: FunctionResponse) -> str | None:
        assert self.session is not None
        for call in self.session.pending_calls.values():
            if call.name == fr.name:
                return call.id
        return None

    async def _maybe_finish_group(self, group: int) -> None:
        session = self.session
        assert session is not None
        if any(c.group == group for c in session.pending_calls.values()):
            return
        results = session._results.pop(group, [])
        if not results or not self.core.auto_reply:
            return
        session.prompt_tokens += sum(max(1, len(_result_json(r)) // 4) for _, r, _ in results)
        if all(s == "SILENT" for _, _, s in results):
            return
        text = "; ".join(f"{name} returned {_result_json(r)}" for name, r, _ in results)
        await self._reply_turn(text)
