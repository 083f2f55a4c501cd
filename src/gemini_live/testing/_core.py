"""Transport-agnostic core of the fake Live API server.

:class:`LiveServerCore` holds the options and all state that outlives a single connection
(sessions, resumption handles, tool calls). Each accepted connection gets a
:class:`_ConnectionLogic`, which talks to its peer only through the tiny
:class:`ServerConn` interface (send bytes, close with a code, abort) and to the core only
through the core's named internal API (``notify``, ``issue_handle``, ``lookup_handle``,
``take_rejection``, ``next_call_id``, ``next_group``, ``auth_failure``, ``validate``).
Adapters feed it:

* :mod:`gemini_live.testing._server` runs it behind a real ``websockets`` server;
* :mod:`gemini_live.testing._memory` runs it over an in-process pipe.

An adapter calls :meth:`_ConnectionLogic.opened` once, then :meth:`~_ConnectionLogic.on_frame`
for every client frame in order (awaiting each), and finally
:meth:`~_ConnectionLogic.on_closed` exactly once with the close code the server saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import wave
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import msgspec

from gemini_live._asgi import Notifier
from gemini_live.codec import encode_server
from gemini_live.errors import redact
from gemini_live.testing._canned import (
    API_KEY_INVALID,
    BEARER_INVALID,
    CHUNK_MS,
    ENTITY_NOT_FOUND,
    INTERNAL_ERROR,
    INVALID_ARGUMENT,
    OUTPUT_MIME,
    OUTPUT_RATE,
    SESSION_NOT_FOUND,
    TOKEN_INVALID,
    TONE_PCM,
    UNREGISTERED_CALLER,
    audio_frame,
    header_credentials,
    make_tone,
    output_mime,
    parse_path,
    pcm_rate,
    result_json,
    split_fragments,
    usage,
)
from gemini_live.testing._families import FamilyRules, setup_refusal
from gemini_live.testing._normalize import FrameError, decode_client_tolerant, message_kind
from gemini_live.testing._records import (
    ConnectionRecord,
    Conversation,
    FrameLog,
    PendingCall,
    ServerOptions,
    SessionState,
    Snapshot,
    ToolScript,
)
from gemini_live.testing._vad import ServerVad, VadEvent, VadSettings
from gemini_live.testing.script import (
    Action,
    Call,
    CallTools,
    Close,
    Drop,
    Reply,
    Send,
    Usage,
    Wait,
)
from gemini_live.testing.script import GoAway as ScriptGoAway
from gemini_live.types import (
    UNSET,
    Blob,
    ClientContent,
    ClientMessage,
    Content,
    FunctionCall,
    FunctionResponse,
    GoAway,
    Part,
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
    VoiceActivity,
    VoiceActivityDetectionSignal,
    format_duration,
)

__all__ = ["LiveServerCore", "ServerConn", "ServerConnectionClosed"]

logger = logging.getLogger("gemini_live.testing")

#: What ``received`` holds for an audio-only message without ``keep_audio_payloads``: the
#: payload is not kept (one shared object, so the audio itself never accumulates).
AUDIO_NOT_KEPT: Final = ClientMessage(
    realtime_input=RealtimeInput(audio=Blob(mime_type="audio/pcm", data=""))
)


def stored_message(msg: ClientMessage, audio: bytes, keep_payloads: bool) -> ClientMessage:
    """``msg`` as ``received`` keeps it: without ``keep_payloads`` (``gemini-live
    fake-server``) an audio-only message is replaced by :data:`AUDIO_NOT_KEPT`."""
    if keep_payloads or not audio:
        return msg
    ri = msg.realtime_input
    if isinstance(ri, RealtimeInput) and all(
        v is UNSET
        for v in (ri.text, ri.video, ri.activity_start, ri.activity_end, ri.audio_stream_end)
    ):
        return AUDIO_NOT_KEPT
    return msg


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


@dataclass(frozen=True, slots=True)
class _HandleEntry:
    session_id: str
    snapshot: Snapshot


# --------------------------------------------------------------------------- core


class LiveServerCore:
    """Scripted server side of the Live protocol, independent of any transport.

    See :class:`gemini_live.testing.FakeLiveServer` for the options.
    """

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        #: One record per accepted connection, in accept order.
        self.connections: list[ConnectionRecord] = []
        #: Server-side sessions by id.
        self.sessions: dict[str, SessionState] = {}
        #: Frames that failed the ``validate_frames`` oracle (raised on exit).
        self.frame_errors: list[str] = []
        #: Unexpected exceptions inside the server (raised on exit).
        self.errors: list[BaseException] = []
        #: How clients departed from the cassette being replayed (raised on exit).
        self.divergences: list[str] = []
        #: True once the server has been stopped (new connections are refused then).
        self.stopped = False
        self._logics: list[_ConnectionLogic] = []
        self._handles: dict[str, _HandleEntry] = {}
        self._n_sessions = 0
        self._n_handles = 0
        self._n_calls = 0
        self._n_groups = 0
        self._notifier = Notifier()
        self._reject_next = 0
        self._reject_close: tuple[int, str] = (1011, INTERNAL_ERROR)

    # ------------------------------------------------------------------ option shortcuts

    @property
    def validate_frames(self) -> bool:
        return self.options.validate_frames

    # ------------------------------------------------------------------ records

    @property
    def received(self) -> list[list[ClientMessage]]:
        """Every decoded client message, per connection, in order."""
        return [c.received for c in self.connections]

    @property
    def consumed(self) -> list[list[ClientMessage]]:
        """Per connection, the received messages that are part of the session state."""
        return [c.consumed for c in self.connections]

    def conversation(self, session_id: str | None = None) -> Conversation:
        """What the model's conversation state holds now, for one logical session.

        ``session_id`` defaults to the session of the latest connection that has one (the
        *current* logical session: resumed connections share their session). Input
        consumed after the handle a client resumed from is not included.
        """
        if session_id is None:
            ids = [c.session_id for c in self.connections if c.session_id is not None]
            if not ids:
                raise LookupError("no session yet: no setup was answered")
            session_id = ids[-1]
        session = self.sessions[session_id]
        messages = tuple(self.connections[ci].received[mi] for ci, mi in session.log)
        return Conversation(
            session_id=session.session_id,
            user_texts=tuple(session.user_texts),
            audio_ms=session.audio_ms,
            answers=tuple(session.answers),
            history=tuple(session.history),
            messages=messages,
            turns=session.turns,
        )

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
        if self.divergences:
            raise AssertionError(
                "the client diverged from the cassette:\n" + "\n".join(self.divergences)
            )

    # ------------------------------------------------------------------ waiting

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` is true; it is re-checked on every server event."""
        await self._notifier.wait_for(predicate, within)

    def _record(self, connection: int) -> ConnectionRecord | None:
        """Connection ``connection`` if it exists yet (negative: from the latest)."""
        n = len(self.connections)
        if -n <= connection < n:
            return self.connections[connection]
        return None

    async def wait_for_connections(self, n: int, within: float = 5.0) -> list[ConnectionRecord]:
        """Wait until at least ``n`` connections were accepted."""
        await self.wait_until(lambda: len(self.connections) >= n, within)
        return self.connections

    async def wait_for_messages(
        self, n: int, connection: int = -1, within: float = 5.0
    ) -> list[ClientMessage]:
        """Wait until connection ``connection`` (default: the latest) received ``n`` messages.

        The setup counts. A message counts once the server has processed it, i.e. sent
        its replies and acknowledgements (replies generated in the background, see
        ``chunk_interval``, may still be running). A connection that does not exist yet
        is waited for.
        """

        def ready() -> bool:
            rec = self._record(connection)
            return rec is not None and rec.processed >= n

        await self.wait_until(ready, within)
        rec = self._record(connection)
        assert rec is not None
        return rec.received

    async def wait_for_close(self, connection: int = -1, within: float = 5.0) -> ConnectionRecord:
        """Wait until connection ``connection`` (default: the latest) has ended."""

        def ready() -> bool:
            rec = self._record(connection)
            return rec is not None and not rec.open

        await self.wait_until(ready, within)
        rec = self._record(connection)
        assert rec is not None
        return rec

    async def wait_for_setup(self, connection: int = -1, within: float = 5.0) -> ConnectionRecord:
        """Wait until connection ``connection`` has been sent ``setupComplete``."""

        def ready() -> bool:
            rec = self._record(connection)
            return rec is not None and rec.setup_completed

        await self.wait_until(ready, within)
        rec = self._record(connection)
        assert rec is not None
        return rec

    async def wait_for_conversation(
        self, predicate: Callable[[Conversation], bool], within: float = 5.0
    ) -> Conversation:
        """Wait until the current session's :meth:`conversation` satisfies ``predicate``."""

        def ready() -> bool:
            try:
                return predicate(self.conversation())
            except LookupError:
                return False

        await self.wait_until(ready, within)
        return self.conversation()

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
        self,
        time_left: float = 1.0,
        *,
        connection: int | None = None,
        close_after: bool = True,
        close: tuple[int, str] | None = None,
    ) -> None:
        """Send ``goAway`` to every open connection.

        The connection keeps being served (replies, handles) until ``time_left`` runs out;
        then, with ``close_after``, it is closed with ``close`` (default: the
        ``go_away_close`` option, 1000 "The operation was cancelled.").
        """
        for lg in self._targets(connection):
            await lg.go_away(time_left, close_after=close_after, close=close)

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

    # ------------------------------------------------------------------ adapter API

    def path_ok(self, path: str) -> bool:
        return parse_path(path) is not None

    def open_connection(
        self,
        conn: ServerConn,
        *,
        transport: str,
        path: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
    ) -> _ConnectionLogic:
        """Register a new connection; the adapter then drives the returned logic."""
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
            raw_received=FrameLog(self.options.max_recorded_frames),
            sent=FrameLog(self.options.max_recorded_frames),
        )
        logic = self._new_logic(conn, record)
        self.connections.append(record)
        self._logics.append(logic)
        logger.info("connection %d: opened (%s, %s %s)", record.index, transport, *parsed)
        self.notify()
        return logic

    def _new_logic(self, conn: ServerConn, record: ConnectionRecord) -> _ConnectionLogic:
        """The protocol logic for a new connection (the server adds cassette replay)."""
        if self.options.cassette is not None:
            raise ValueError("replaying a cassette needs FakeLiveServer")
        return _ConnectionLogic(self, conn, record)

    # ------------------------------------------------------------------ logic API

    def live_logics(self) -> list[_ConnectionLogic]:
        """The connections not finished yet."""
        return [lg for lg in self._logics if not lg.finished]

    def notify(self) -> None:
        """Wake every ``wait_*`` (call after any state change)."""
        self._notifier.notify()

    def take_rejection(self) -> tuple[int, str] | None:
        """The close for this setup if it is to be rejected (``reject_next_setups``)."""
        if self._reject_next > 0:
            self._reject_next -= 1
            return self._reject_close
        return self.options.reject_setup

    def auth_failure(self, record: ConnectionRecord) -> tuple[int, str] | None:
        """The close a connection's credentials earn, or None when they are accepted."""
        opts = self.options
        key, token, bearer = header_credentials(record.headers, record.query)
        required = any(
            r is not None for r in (opts.require_api_key, opts.require_token, opts.require_bearer)
        )
        if record.kind == "gemini":
            if opts.require_api_key is not None and key == opts.require_api_key:
                return None
            if not required:
                return None
            if token is not None and key in (None, token):
                return 1008, UNREGISTERED_CALLER
            return 1007, API_KEY_INVALID
        if record.kind == "constrained":
            if opts.require_token is not None and token == opts.require_token:
                return None
            if not required:
                return None
            return 1007, TOKEN_INVALID
        if opts.require_bearer is not None and bearer == opts.require_bearer:
            return None
        if opts.require_api_key is not None and key == opts.require_api_key:
            return None  # Vertex express mode
        if not required:
            return None
        return 1007, BEARER_INVALID

    def new_session(self) -> SessionState:
        self._n_sessions += 1
        state = SessionState(session_id=f"fake-session-{self._n_sessions}")
        self.sessions[state.session_id] = state
        return state

    def issue_handle(self, session: SessionState) -> str:
        """A new handle standing for ``session`` exactly as it is now."""
        self._n_handles += 1
        handle = f"fake-handle-{self._n_handles}"
        self._handles[handle] = _HandleEntry(session.session_id, session.snapshot())
        session.handles.append(handle)
        return handle

    def lookup_handle(self, handle: str) -> tuple[SessionState, Snapshot] | None:
        entry = self._handles.get(handle)
        if entry is None or entry.session_id not in self.sessions:
            return None
        return self.sessions[entry.session_id], entry.snapshot

    def next_call_id(self) -> str:
        self._n_calls += 1
        return f"call-{self._n_calls}"

    def next_group(self) -> int:
        self._n_groups += 1
        return self._n_groups

    def match_trigger(self, text: str) -> ToolScript | None:
        low = text.lower()
        for word, script in self.options.tool_triggers.items():
            if word.lower() in low:
                return script
        return None

    def validate(self, data: bytes, vertex: bool) -> None:
        from gemini_live.testing._oracle import validate_server_frame

        try:
            validate_server_frame(data, vertex=vertex)
        except AssertionError as exc:
            self.frame_errors.append(str(exc))
            logger.error("fake server sent an invalid frame: %s", exc)


# --------------------------------------------------------------------------- connection


class _ConnectionLogic:
    """Per-connection protocol state machine (setup, replies, tools, goAway, resumption)."""

    def __init__(self, core: LiveServerCore, conn: ServerConn, record: ConnectionRecord) -> None:
        self.core = core
        self.opts = core.options
        self.conn = conn
        self.record = record
        self.vertex = record.kind == "vertex"
        self.finished = False  # we closed / aborted, or the connection ended
        self.peer_gone = False  # a send failed: the connection is closed
        self.setup: Setup | None = None
        self.session: SessionState | None = None
        self.index = -1  # index of the last client frame consumed (setup = 0)
        #: Bytes of input audio kept on the record (0: none).
        self.audio_limit = self.opts.max_recorded_audio
        self.after_setup = 0  # client messages after setup
        self.want_resumption = False
        self.transparent = False
        self.go_away_sent = False
        self.seeding = False  # historyConfig.initialHistoryInClientContent phase
        self._last_acked = -1
        self._close_sent: tuple[int, str] | None = None
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._deadline: asyncio.Task[None] | None = None
        #: The latest response being generated in the background, if any.
        self._generation: asyncio.Task[None] | None = None
        #: Every background response not finished yet (the latest waits for the others).
        self._generations: set[asyncio.Task[None]] = set()
        self._inline_generating = False
        self.text_mode = False
        #: What this connection's model refuses after the setup (per its family).
        self.rules = FamilyRules()
        self.vad_settings = VadSettings()
        self.detector = ServerVad(self.vad_settings)
        self.vad_signals = False
        self.manual_active = False  # between activityStart and activityEnd
        self.stream_open = False  # audio arrived since the last audioStreamEnd
        self.vad_turn_in_stream = False  # VAD ended a turn since the stream (re)started
        self.clock_ms = 0.0  # input audio time on this connection
        self._clock_event = asyncio.Event()
        #: Fragments of the reply being sent (None when no reply is in progress).
        self.reply_sent: list[str] | None = None
        #: Ids of the calls the model made in its current response.
        self.turn_calls: list[str] = []
        self.interruptions = 0

    @property
    def generating(self) -> bool:
        """True while the model produces a response (resumption updates say not resumable)."""
        return self._inline_generating or self._generation is not None

    # ------------------------------------------------------------------ adapter API

    async def opened(self) -> None:
        if self.opts.auth_on_connect:
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
        if self._close_sent is not None:
            code, reason = self._close_sent
        if self.record.close_code is None:
            logger.info(
                "connection %d: closed %d %s(%d client messages)",
                self.record.index,
                code,
                f"{redact(reason)!r} " if reason else "",
                max(0, len(self.record.received) - 1),
            )
        self.record.mark_closed(code, reason)
        self.core.notify()

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
        if self.opts.latency > 0 and not await self._sleep(self.opts.latency):
            return False
        if self.opts.validate_frames:
            self.core.validate(data, self.vertex)
        try:
            await self.conn.send(data)
        except ServerConnectionClosed:
            self.peer_gone = True
            return False
        if self.opts.record_frames:
            self.record.sent.append(data)
        self.core.notify()
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

    async def go_away(
        self, time_left: float, *, close_after: bool = True, close: tuple[int, str] | None = None
    ) -> None:
        self.go_away_sent = True
        self.record.go_away_at = asyncio.get_running_loop().time()
        await self._send(ServerMessage(go_away=GoAway(time_left=format_duration(time_left))))
        if close_after:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self._spawn(
                self._go_away_deadline(time_left, close or self.opts.go_away_close)
            )

    async def _go_away_deadline(self, time_left: float, close: tuple[int, str]) -> None:
        # The connection keeps being served until the deadline, then it ends.
        if await self._sleep(time_left):
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)  # don't let on_closed cancel us mid-close
            await self.close(*close)

    async def _go_away_timer(self, after: float) -> None:
        if await self._sleep(after) and not self.go_away_sent:
            await self.go_away(self.opts.go_away_time_left)

    # ------------------------------------------------------------------ protocol

    async def _check_auth(self) -> bool:
        failure = self.core.auth_failure(self.record)
        if failure is None:
            return True
        await self.close(*failure)
        return False

    async def _on_frame(self, data: bytes) -> None:
        try:
            await self._process(data)
        finally:
            self.record.processed = len(self.record.received)
            self.core.notify()

    async def _process(self, data: bytes) -> None:
        self.index += 1
        if self.opts.record_frames:
            self.record.raw_received.append(bytes(data))
        try:
            msg, audio = decode_client_tolerant(data)
        except FrameError as exc:
            logger.info("fake server: undecodable client frame: %s", exc)
            await self.close(1007, INVALID_ARGUMENT)
            return
        self.record.received.append(stored_message(msg, audio, self.opts.keep_audio_payloads))
        self.core.notify()
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
        rules = self.rules
        if (
            (
                rules.refuse_media_chunks
                and isinstance(msg.realtime_input, RealtimeInput)
                and msg.realtime_input.media_chunks
            )
            or (
                rules.refuse_client_content
                and isinstance(msg.client_content, ClientContent)
                and not self.seeding
            )
            or (rules.refuse_context_update and not isinstance(msg.context_update, UnsetType))
        ):
            await self.close(1007, INVALID_ARGUMENT)
            return
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
        limit = self.opts.go_away_after_messages
        if limit is not None and not self.go_away_sent and self.after_setup >= limit:
            await self.go_away(self.opts.go_away_time_left)
        every = self.opts.ack_every
        if (
            self.transparent
            and every > 0
            and self.index % every == 0
            and self._last_acked != self.index
        ):
            await self._send_resumption_update()

    async def _handle_setup(self, setup: Setup) -> None:
        core = self.core
        if not self.opts.auth_on_connect and not await self._check_auth():
            return
        rejection = core.take_rejection()
        if rejection is not None:
            await self.close(*rejection)
            return
        gc = setup.generation_config
        modalities = (
            [str(m).upper() for m in gc.response_modalities]
            if gc is not UNSET and isinstance(gc.response_modalities, list)
            else []
        )
        self.text_mode = modalities == ["TEXT"]
        refusal = setup_refusal(setup)
        if refusal is not None:
            await self.close(*refusal)
            return
        self.setup = setup
        self.record.setup = setup
        self.rules = FamilyRules.for_model(setup.model)
        ric = setup.realtime_input_config
        self.vad_settings = VadSettings.from_config(None if ric is UNSET else ric)
        self.detector = ServerVad(self.vad_settings)
        self.vad_signals = setup.explicit_vad_signal is True
        sr = setup.session_resumption
        handle = None if sr is UNSET or not isinstance(sr.handle, str) else sr.handle
        if handle:
            found = core.lookup_handle(handle)
            if found is None:
                await self.close(1008, SESSION_NOT_FOUND)
                return
            session, snapshot = found
            if self.opts.reject_resume_while_open and any(
                not lg.finished and lg.session is session for lg in core.live_logics()
            ):
                await self.close(1011, INTERNAL_ERROR)
                return
            # Resume the state exactly as of the handle: later input and calls are forgotten.
            for conn_index, msg_index in session.restore(snapshot):
                core.connections[conn_index].rolled_back.add(msg_index)
            self.record.resumed_from = handle
        else:
            session = core.new_session()
        self.session = session
        session.connections.append(self.record.index)
        self.record.session_id = session.session_id
        self.want_resumption = sr is not UNSET
        self.transparent = self.opts.transparent and sr is not UNSET and sr.transparent is True
        hc = setup.history_config
        self.seeding = (
            not handle and hc is not UNSET and hc.initial_history_in_client_content is True
        )
        if not self.opts.send_setup_complete:
            return
        if self.opts.setup_delay > 0 and not await self._sleep(self.opts.setup_delay):
            return
        if not await self._send(
            ServerMessage(setup_complete=SetupComplete(session_id=session.session_id))
        ):
            return
        self.record.setup_completed = True
        logger.info(
            "connection %d: setup model=%s, %s",
            self.record.index,
            setup.model,
            f"resumed {session.session_id}" if handle else f"new {session.session_id}",
        )
        core.notify()
        if self.transparent:
            await self._send_resumption_update()  # a handle for index 0 right away
        if self.opts.go_away_after_seconds is not None:
            self._spawn(self._go_away_timer(self.opts.go_away_after_seconds))
        if self.opts.go_away_after_messages == 0:
            await self.go_away(self.opts.go_away_time_left)

    # ------------------------------------------------------------------ input

    async def _realtime_input(self, ri: RealtimeInput, audio: bytes) -> None:
        session = self.session
        assert session is not None
        self.seeding = False
        if ri.activity_start is not UNSET:
            self.manual_active = True
            if self.vad_settings.only_activity:
                session.pending_audio_ms = 0.0
            await self._speech_started()
        if audio:
            self.record.add_audio(audio, self.audio_limit)
            if isinstance(ri.audio, Blob):
                mime: object = ri.audio.mime_type
            else:
                chunks = [] if isinstance(ri.media_chunks, UnsetType) else ri.media_chunks
                mime = next((c.mime_type for c in chunks if isinstance(c.mime_type, str)), None)
            rate = pcm_rate(mime)
            ms = len(audio) / 2 / rate * 1000
            session.audio_ms += ms
            if (
                not self.vad_settings.disabled
                or self.manual_active
                or not self.vad_settings.only_activity
            ):
                session.pending_audio_ms += ms
            self.stream_open = True
            if self.opts.vad and not self.vad_settings.disabled:
                for event in self.detector.feed(audio, rate):
                    await self._vad_event(event)
                    if self.finished:
                        return
            self._advance_clock(ms)
        if isinstance(ri.text, str):
            await self._user_text(ri.text)
        if ri.activity_end is not UNSET:
            self.manual_active = False
            if session.pending_audio_ms > 0:
                await self._audio_turn(session.pending_audio_ms)
        if ri.audio_stream_end is True:
            await self._stream_ended()

    def _advance_clock(self, ms: float) -> None:
        self.clock_ms += ms
        event, self._clock_event = self._clock_event, asyncio.Event()
        event.set()

    async def _stream_ended(self) -> None:
        """``audioStreamEnd``: the end of speech, if any, is now; paced replies run free."""
        session = self.session
        assert session is not None
        self.stream_open = False
        self._advance_clock(0.0)
        vad_on = self.opts.vad and not self.vad_settings.disabled
        if vad_on and self.detector.speaking:
            await self._vad_event(self.detector.end())
        elif session.pending_audio_ms > 0 and not self.vad_turn_in_stream:
            # No end of speech was detected in this stream: what came is one utterance.
            await self._audio_turn(session.pending_audio_ms)
        self.vad_turn_in_stream = False
        if vad_on:
            self.detector.end()  # a new stream starts a new turn
        session.pending_audio_ms = 0.0

    async def _vad_event(self, event: VadEvent) -> None:
        session = self.session
        assert session is not None
        start = event.kind == "start"
        if self.opts.voice_activity:
            await self._send(
                ServerMessage(
                    voice_activity=VoiceActivity(
                        voice_activity_type="ACTIVITY_START" if start else "ACTIVITY_END",
                        audio_offset=format_duration(event.offset_ms / 1000),
                    )
                )
            )
        if self.vad_signals:
            await self._send(
                ServerMessage(
                    voice_activity_detection_signal=VoiceActivityDetectionSignal(
                        vad_signal_type="VAD_SIGNAL_TYPE_SOS" if start else "VAD_SIGNAL_TYPE_EOS"
                    )
                )
            )
        if start:
            await self._speech_started()
            return
        self.vad_turn_in_stream = True
        ms = event.activity_ms if self.vad_settings.only_activity else event.since_turn_ms
        await self._audio_turn(ms, at_ms=event.offset_ms)

    async def _speech_started(self) -> None:
        """The user started speaking: barge in on the model's turn unless told not to."""
        if not self.vad_settings.interrupts:
            return
        session = self.session
        assert session is not None
        pending = [i for i in self.turn_calls if i in session.pending_calls]
        if self._generation is None and not pending:
            return
        await self._interrupt(pending)

    async def _interrupt(self, pending_calls: list[str]) -> None:
        session = self.session
        assert session is not None
        tasks = list(self._generations)
        self._generation = None
        self._generations.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self.reply_sent is not None:
            # Only what was already sent stays in the history.
            said = "".join(self.reply_sent)
            session.history.append(("model", said))
            session.answers.append(said)
            self.reply_sent = None
        self.interruptions += 1
        await self._send(ServerMessage(server_content=ServerContent(interrupted=True)))
        if pending_calls:
            await self.cancel_calls(pending_calls, finish=False)
        session.turns += 1
        await self._send(ServerMessage(server_content=ServerContent(turn_complete=True)))
        await self._send_resumption_update()

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
                    session.user_texts.append(text)
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
        session.user_texts.append(text)
        session.prompt_tokens += max(1, len(text) // 4)
        await self._respond(text)

    async def _respond(self, text: str) -> None:
        """Answer a complete user text turn: a scripted rule, a tool trigger, or an echo."""
        session = self.session
        assert session is not None
        session.user_turns += 1
        if not self.opts.auto_reply:
            return
        # A new user turn cuts the model's response, as speech does.
        await self._speech_started()
        actions = self._scripted(text=text)
        if actions is None:
            actions = [Reply(self._echo(text))]
        await self._generate(actions)

    def _echo(self, text: str) -> str:
        """The default answer: an echo; "what did I say?" is answered from the history
        (so a test sees whether a fresh session was seeded with the conversation)."""
        session = self.session
        assert session is not None
        if "what did i say" in text.lower():
            earlier = [t for role, t in session.history[:-1] if role == "user"]
            return f"Earlier you said: {earlier[-1] if earlier else 'nothing'}"
        return f"You said: {text}"

    def _scripted(self, **turn: Any) -> list[Action | _EndTurn] | None:
        session = self.session
        assert session is not None
        script = self.opts.script
        if script is not None:
            rule = script.match(
                session.fired, utterance=session.utterances, turn=session.user_turns, **turn
            )
            if rule is not None:
                return list(rule.do)
        text = turn.get("text")
        if text is not None:
            trigger = self.core.match_trigger(text)
            if trigger is not None:
                return _tool_script_actions(trigger)
        return None

    async def _audio_turn(self, ms_heard: float, *, at_ms: float | None = None) -> None:
        session = self.session
        assert session is not None
        ms = round(ms_heard)
        session.pending_audio_ms = 0.0
        session.utterances += 1
        session.user_turns += 1
        session.history.append(("user", f"[{ms} ms of audio]"))
        session.prompt_tokens += max(1, ms * 25 // 1000)
        if not self.opts.auto_reply:
            return
        if self.setup is not None and self.setup.input_audio_transcription is not UNSET:
            await self._send(
                ServerMessage(
                    server_content=ServerContent(
                        input_transcription=Transcription(text=f"{ms} ms of audio")
                    )
                )
            )
        actions = self._scripted(audio_ms=float(ms))
        if actions is None:
            actions = [Reply(f"I heard {ms} ms of audio.")]
        paced = self.opts.paced_by_input and self.stream_open
        await self._generate(actions, paced=paced, start_ms=at_ms)

    # ------------------------------------------------------------------ generation

    async def _generate(
        self,
        actions: Sequence[Action | _EndTurn],
        *,
        paced: bool = False,
        start_ms: float | None = None,
    ) -> None:
        """Carry out one model response: inline when instant, else in the background.

        Background responses run one after the other, in order. A resumption update
        follows the response (``resumable: true`` unless a blocking call is pending).
        """
        self.turn_calls = []
        if (
            self.opts.chunk_interval <= 0
            and not paced
            and self._generation is None
            and not self.opts.assumed_playback
        ):
            self._inline_generating = True
            try:
                await self._perform(actions, paced=False)
            finally:
                self._inline_generating = False
            await self._send_resumption_update()
            return
        previous = self._generation
        task: asyncio.Task[None] | None = None

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await self._perform(actions, paced=paced, start_ms=start_ms)
            if self._generation is task:
                self._generation = None
            if task is not None:
                self._generations.discard(task)
            if not self.finished:
                await self._send_resumption_update()

        task = self._spawn(run())
        self._generation = task
        self._generations.add(task)

    async def _perform(
        self,
        actions: Sequence[Action | _EndTurn],
        *,
        paced: bool,
        start_ms: float | None = None,
    ) -> None:
        for action in actions:
            if self.finished:
                return
            if isinstance(action, Reply):
                await self._reply_turn(action, paced=paced, start_ms=start_ms)
                start_ms = None
            elif isinstance(action, CallTools):
                await self._call_tools(action)
            elif isinstance(action, Wait):
                await self._sleep(action.seconds)
            elif isinstance(action, ScriptGoAway):
                await self.go_away(action.time_left, close=action.close)
            elif isinstance(action, Drop):
                self.abort()
            elif isinstance(action, Close):
                await self.close(action.code, action.reason)
            elif isinstance(action, Usage):
                await self.send_frame(msgspec.json.encode({"usageMetadata": action.metadata}))
            elif isinstance(action, Send):
                await self.send_frame(msgspec.json.encode(action.frame))
            elif isinstance(action, _EndTurn):
                await self._end_turn(0)

    async def _wait_clock(self, due_ms: float) -> bool:
        """Wait until the client streamed audio up to ``due_ms`` (or stopped streaming)."""
        while self.stream_open and self.clock_ms < due_ms and not self.finished:
            event = self._clock_event
            stopped = asyncio.ensure_future(self._stopped.wait())
            try:
                await asyncio.wait(
                    [asyncio.ensure_future(event.wait()), stopped],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stopped.cancel()
        return not self.finished

    async def _reply_turn(
        self, reply: Reply, *, paced: bool, start_ms: float | None = None
    ) -> None:
        """One model turn: audio (+ transcript) or text chunks, generationComplete,
        turnComplete (+ usage, + interactionStatus)."""
        session = self.session
        assert session is not None and self.setup is not None
        # While the model generates, the session is not resumable.
        await self._send_resumption_update(generating=True)
        text = reply.text
        chunks = _reply_chunks(reply, self.opts.reply_chunks, self.text_mode)
        n = len(chunks)
        interval = self.opts.chunk_interval
        transcribe = self.setup.output_audio_transcription is not UNSET and not self.text_mode
        fragments = split_fragments(text, max(n, 1))
        self.reply_sent = []
        # Paced replies start where the user stopped speaking (in audio time).
        start = self.clock_ms if start_ms is None else start_ms
        loop = asyncio.get_running_loop()
        started = loop.time()
        rate = pcm_rate(reply_mime(reply))
        audio_s = 0.0 if self.text_mode else sum(len(c) for c in chunks) / 2 / rate
        for i, pcm in enumerate(chunks):
            if i and interval > 0 and not await self._sleep(interval):
                return
            if i and paced and not await self._wait_clock(start + i * CHUNK_MS):
                return
            if self.text_mode:
                frame = encode_server(
                    ServerMessage(
                        server_content=ServerContent(
                            model_turn=Content(role="model", parts=[Part(text=fragments[i])])
                        )
                    )
                )
            else:
                frame = audio_frame(fragments[i] if transcribe else None, pcm, reply_mime(reply))
            if not await self.send_frame(frame):
                return
            self.reply_sent.append(fragments[i] if i < len(fragments) else "")
        if n == 0 and transcribe and text:
            await self._send(
                ServerMessage(
                    server_content=ServerContent(output_transcription=Transcription(text=text))
                )
            )
        await self._send(ServerMessage(server_content=ServerContent(generation_complete=True)))
        self.reply_sent = None
        turn_response = max(n, 1)
        session.response_tokens += turn_response
        session.history.append(("model", text))
        session.answers.append(text)
        if self.opts.assumed_playback and audio_s > 0:
            # The service holds the turn open while the client plays the audio it was
            # sent (at real time); speech in this gap still interrupts the turn.
            left = audio_s - (loop.time() - started)
            if left > 0 and not await self._sleep(left):
                return
        await self._end_turn(turn_response, reply.interaction_status, usage_too=reply.usage)

    async def _end_turn(
        self, turn_response: int, status: str | None = None, *, usage_too: bool = True
    ) -> None:
        session = self.session
        assert session is not None
        session.turns += 1
        sc = ServerContent(turn_complete=True)
        if status is not None:
            sc.interaction_status = status
        meta = (
            usage(
                session.prompt_tokens,
                session.response_tokens,
                turn_response,
                vertex=self.vertex,
                modality="TEXT" if self.text_mode else "AUDIO",
            )
            if usage_too
            else UNSET
        )
        await self._send(ServerMessage(server_content=sc, usage_metadata=meta))

    async def _send_resumption_update(self, *, generating: bool = False) -> None:
        session = self.session
        if not self.want_resumption or session is None or self.finished:
            return
        if (
            self.opts.resumable
            and not generating
            and not session.blocking_pending()
            and self._generation is None
            and not self._inline_generating
        ):
            upd = SessionResumptionUpdate(
                new_handle=self.core.issue_handle(session), resumable=True
            )
        else:
            upd = SessionResumptionUpdate(resumable=False)
        if self.transparent:
            upd.last_consumed_client_message_index = self.index
            self._last_acked = self.index
        msg = ServerMessage(session_resumption_update=upd)
        if self.transparent and self.opts.int64_as_string:
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
        group = self.core.next_group()
        ids: list[str] = []
        for call in calls:
            if not isinstance(call.id, str):
                call.id = self.core.next_call_id()
            name = call.name if isinstance(call.name, str) else ""
            session.pending_calls[call.id] = PendingCall(call.id, name, group, non_blocking)
            ids.append(call.id)
        await self._send(ServerMessage(tool_call=ToolCall(function_calls=calls)))
        return ids

    async def cancel_calls(self, ids: list[str], *, finish: bool = True) -> None:
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
        if not finish:
            for group in groups:
                if not any(c.group == group for c in session.pending_calls.values()):
                    session.results.pop(group, None)
            return
        for group in groups:
            await self._maybe_finish_group(group)

    async def _call_tools(self, action: CallTools) -> None:
        calls = [
            FunctionCall(id=c.id or self.core.next_call_id(), name=c.name, args=dict(c.args))
            for c in action.calls
        ]
        ids = await self.start_tool_call(calls, non_blocking=not action.blocking)
        self.turn_calls.extend(ids)
        if action.cancel_after:
            await self.cancel_calls(ids)

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
            results = session.results.setdefault(call.group, [])
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
        results = session.results.pop(group, [])
        if not results or not self.opts.auto_reply:
            return
        session.prompt_tokens += sum(max(1, len(result_json(r)) // 4) for _, r, _ in results)
        actions = self._scripted(tool_names=[name for name, _, _ in results])
        if actions is None:
            if all(s == "SILENT" for _, _, s in results):
                return
            text = "; ".join(f"{name} returned {result_json(r)}" for name, r, _ in results)
            actions = [Reply(text)]
        await self._generate(actions)


@dataclass(frozen=True, slots=True)
class _EndTurn:
    """End the model's turn without content (``turnComplete`` only)."""


def _tool_script_actions(script: ToolScript) -> list[Action | _EndTurn]:
    """A ``tool_triggers`` entry as script actions."""
    call = CallTools(
        [Call(script.name, script.args) for _ in range(max(1, script.parallel))],
        blocking=not script.non_blocking,
        cancel_after=script.cancel_after,
    )
    if script.cancel_after:
        return [call, _EndTurn()]
    if script.non_blocking:
        return [call, Reply(f"Calling {script.name}.")]
    return [call]


@functools.lru_cache(maxsize=32)
def _tone(hz: float) -> bytes:
    return make_tone(CHUNK_MS, OUTPUT_RATE, hz)


@functools.lru_cache(maxsize=32)
def _wav_chunks(path: str) -> tuple[int, tuple[bytes, ...]]:
    """A WAV file (PCM16 mono) as 40 ms chunks at its own rate."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: the fake server plays 16-bit mono WAV files only")
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    step = rate * CHUNK_MS // 1000 * 2
    return rate, tuple(pcm[i : i + step] for i in range(0, len(pcm), step))


def reply_mime(reply: Reply) -> str:
    if reply.wav is not None:
        return output_mime(_wav_chunks(reply.wav)[0])
    return OUTPUT_MIME


def _reply_chunks(reply: Reply, default_chunks: int, text_mode: bool) -> list[bytes]:
    if reply.wav is not None and not text_mode:
        return list(_wav_chunks(reply.wav)[1])
    n = default_chunks if reply.chunks is None else reply.chunks
    if text_mode:
        return [b""] * max(n, 1)
    tone = TONE_PCM if reply.tone_hz == 440.0 else _tone(reply.tone_hz)
    return [tone] * n
