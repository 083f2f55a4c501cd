"""Transport-agnostic core of the fake Live API server.

:class:`LiveServerCore` holds the options and all state that outlives a single connection
(sessions, resumption handles, tool calls). Each accepted connection gets a
:class:`_ConnectionLogic`, which talks to its peer only through the tiny
:class:`~gemini_live.testing._connection.ServerConn` interface (send bytes, close with a
code, abort) and to the core only through the core's named internal API (``notify``,
``issue_handle``, ``lookup_handle``, ``take_rejection``, ``next_call_id``, ``next_group``,
``auth_failure``, ``validate``; typed as :class:`~gemini_live.testing._connection.CoreApi`).
The connection logic is made of rooms (input, replies, tool calls: see
:mod:`gemini_live.testing._connection`); setup, authentication and resumption stay here.
Adapters feed it:

* :mod:`gemini_live.testing._server` runs it behind a real ``websockets`` server;
* :mod:`gemini_live.testing._memory` runs it over an in-process pipe.

An adapter calls :meth:`_ConnectionLogic.opened` once, then :meth:`~_ConnectionLogic.on_frame`
for every client frame in order (awaiting each), and finally
:meth:`~_ConnectionLogic.on_closed` exactly once with the close code the server saw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from gemini_live._asgi import Notifier
from gemini_live.codec import encode_server
from gemini_live.testing._canned import (
    API_KEY_INVALID,
    BEARER_INVALID,
    INTERNAL_ERROR,
    INVALID_ARGUMENT,
    SESSION_NOT_FOUND,
    TOKEN_INVALID,
    UNREGISTERED_CALLER,
    header_credentials,
    parse_path,
)
from gemini_live.testing._connection import ServerConn
from gemini_live.testing._families import FamilyRules, setup_refusal
from gemini_live.testing._input import InputRoom
from gemini_live.testing._normalize import message_kind
from gemini_live.testing._records import (
    ConnectionRecord,
    Conversation,
    FrameLog,
    ServerOptions,
    SessionState,
    Snapshot,
    ToolScript,
)
from gemini_live.testing._replies import RepliesRoom
from gemini_live.testing._tool_calls import ToolCallsRoom
from gemini_live.testing._vad import ServerVad, VadSettings
from gemini_live.types import (
    UNSET,
    ClientContent,
    ClientMessage,
    FunctionCall,
    RealtimeInput,
    ServerMessage,
    SessionResumptionUpdate,
    Setup,
    SetupComplete,
    ToolResponse,
    UnsetType,
)

__all__ = ["LiveServerCore"]

logger = logging.getLogger("gemini_live.testing")


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
            generated=tuple(session.generated),
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


class _ConnectionLogic(InputRoom, RepliesRoom, ToolCallsRoom):
    """Per-connection protocol state machine: this class holds the frame loop, setup and
    resumption; the rooms it is made of hold input, replies and tool calls (see
    :mod:`gemini_live.testing._connection`)."""

    async def opened(self) -> None:
        if self.opts.auth_on_connect:
            await self._check_auth()

    async def _check_auth(self) -> bool:
        failure = self.core.auth_failure(self.record)
        if failure is None:
            return True
        await self.close(*failure)
        return False

    async def _process(self, data: bytes) -> None:
        taken = await self._take(data)
        if taken is None:
            return
        msg, audio = taken
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
            or (
                isinstance(msg.tool_response, ToolResponse)
                and rules.refuses_tool_response(msg.tool_response)
            )
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
