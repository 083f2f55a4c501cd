"""One connection of the fake server: its state, its lifetime, and the doors between its rooms.

The per-connection logic is one object assembled from rooms, each a mixin on
:class:`ConnectionBase` and each in its own module:

* :mod:`~gemini_live.testing._core` — ``_ConnectionLogic``: the frame loop, setup,
  authentication and resumption (handles, ``sessionResumptionUpdate``);
* :mod:`~gemini_live.testing._input` — ``InputRoom``: realtime input, client content,
  turn detection (the server VAD, manual activity, ``audioStreamEnd``) and barge-in;
* :mod:`~gemini_live.testing._replies` — ``RepliesRoom``: what the model answers (script,
  tool trigger, echo) and how the answer goes out (chunks, pacing, ``turnComplete``);
* :mod:`~gemini_live.testing._tool_calls` — ``ToolCallsRoom``: call groups, responses,
  cancellations.

This module holds what every room shares: the state (one ``__init__``, so every attribute
is declared once), sending, closing, sleeping on the connection's clock, background
tasks, goAway, and the head of frame processing that cassette replay reuses. A room calls
another room only through the abstract methods declared here (:class:`ConnectionBase`
lists them), so each room imports this module and no other room. The rooms share state
rather than own it because the service's rules cross them: a barge-in (input) cancels the
reply being sent (replies) and the calls the model just made (tool calls).

The logic talks to the server core through :class:`CoreApi`, and to its peer through
:class:`ServerConn` (send bytes, close with a code, abort).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gemini_live.codec import encode_server
from gemini_live.errors import redact
from gemini_live.testing._canned import INTERNAL_ERROR, INVALID_ARGUMENT
from gemini_live.testing._families import FamilyRules
from gemini_live.testing._normalize import FrameError, decode_client_tolerant
from gemini_live.testing._records import (
    ConnectionRecord,
    ServerOptions,
    SessionState,
    Snapshot,
    ToolScript,
)
from gemini_live.testing._vad import ServerVad, VadSettings
from gemini_live.testing.script import Action, CallTools
from gemini_live.types import (
    UNSET,
    Blob,
    ClientMessage,
    GoAway,
    RealtimeInput,
    ServerMessage,
    Setup,
    format_duration,
)

__all__ = [
    "AUDIO_NOT_KEPT",
    "ConnectionBase",
    "CoreApi",
    "EndTurn",
    "ServerConn",
    "ServerConnectionClosed",
    "stored_message",
]

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


class CoreApi(Protocol):
    """What a connection may ask of the server core (``LiveServerCore`` is the one
    implementation): the state shared by all connections, behind named calls."""

    options: ServerOptions
    connections: list[ConnectionRecord]
    errors: list[BaseException]
    divergences: list[str]

    def notify(self) -> None: ...
    def live_logics(self) -> Sequence[ConnectionBase]: ...
    def take_rejection(self) -> tuple[int, str] | None: ...
    def auth_failure(self, record: ConnectionRecord) -> tuple[int, str] | None: ...
    def new_session(self) -> SessionState: ...
    def issue_handle(self, session: SessionState) -> str: ...
    def lookup_handle(self, handle: str) -> tuple[SessionState, Snapshot] | None: ...
    def next_call_id(self) -> str: ...
    def next_group(self) -> int: ...
    def match_trigger(self, text: str) -> ToolScript | None: ...
    def validate(self, data: bytes, vertex: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class EndTurn:
    """End the model's turn without content (``turnComplete`` only)."""


class ConnectionBase(abc.ABC):
    """Per-connection state, lifetime and sending, shared by the rooms (see the module)."""

    def __init__(self, core: CoreApi, conn: ServerConn, record: ConnectionRecord) -> None:
        # The connection and its lifetime (this module).
        self.core = core
        self.opts = core.options
        self.conn = conn
        self.record = record
        self.vertex = record.kind == "vertex"
        self.finished = False  # we closed / aborted, or the connection ended
        self.peer_gone = False  # a send failed: the connection is closed
        self.index = -1  # index of the last client frame consumed (setup = 0)
        #: Bytes of input audio kept on the record (0: none).
        self.audio_limit = self.opts.max_recorded_audio
        self.go_away_sent = False
        self._close_sent: tuple[int, str] | None = None
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._deadline: asyncio.Task[None] | None = None
        # Setup and resumption (_core).
        self.setup: Setup | None = None
        self.session: SessionState | None = None
        self.after_setup = 0  # client messages after setup
        self.want_resumption = False
        self.transparent = False
        self._last_acked = -1
        self.text_mode = False
        #: What this connection's model refuses after the setup (per its family).
        self.rules = FamilyRules()
        # Input and turn detection (_input).
        self.seeding = False  # historyConfig.initialHistoryInClientContent phase
        self.vad_settings = VadSettings()
        self.detector = ServerVad(self.vad_settings)
        self.vad_signals = False
        self.manual_active = False  # between activityStart and activityEnd
        self.stream_open = False  # audio arrived since the last audioStreamEnd
        self.vad_turn_in_stream = False  # VAD ended a turn since the stream (re)started
        self.clock_ms = 0.0  # input audio time on this connection
        self._clock_event = asyncio.Event()
        self.interruptions = 0
        # Replies (_replies).
        #: The latest response being generated in the background, if any.
        self._generation: asyncio.Task[None] | None = None
        #: Every background response not finished yet (the latest waits for the others).
        self._generations: set[asyncio.Task[None]] = set()
        self._inline_generating = False
        #: Fragments of the reply being sent (None when no reply is in progress).
        self.reply_sent: list[str] | None = None
        #: The whole text of the reply being sent (with ``reply_sent``).
        self.reply_text = ""
        #: A reply whose audio the client is assumed to be playing (``assumed_playback``):
        #: its answer index, fragments, seconds of audio and loop time it started.
        self.playing: tuple[int, list[str], float, float] | None = None
        # Tool calls (_tool_calls).
        #: Ids of the calls the model made in its current response.
        self.turn_calls: list[str] = []

    @property
    def generating(self) -> bool:
        """True while the model produces a response (resumption updates say not resumable)."""
        return self._inline_generating or self._generation is not None

    # ------------------------------------------------------------------ adapter API

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

    # ------------------------------------------------------------------ lifetime and sending

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

    # ------------------------------------------------------------------ frames

    async def _on_frame(self, data: bytes) -> None:
        try:
            await self._process(data)
        finally:
            self.record.processed = len(self.record.received)
            self.core.notify()

    async def _take(self, data: bytes) -> tuple[ClientMessage, bytes] | None:
        """The head of processing one client frame, for the live logic and cassette
        replay alike: count it, keep it, decode it and record it. None (after closing
        1007) when it does not decode."""
        self.index += 1
        if self.opts.record_frames:
            self.record.raw_received.append(bytes(data))
        try:
            msg, audio = decode_client_tolerant(data)
        except FrameError as exc:
            logger.info("fake server: undecodable client frame: %s", exc)
            await self.close(1007, INVALID_ARGUMENT)
            return None
        self.record.received.append(stored_message(msg, audio, self.opts.keep_audio_payloads))
        self.core.notify()
        return msg, audio

    @abc.abstractmethod
    async def _process(self, data: bytes) -> None:
        """Handle one client frame (``_core``; cassette replay has its own)."""

    # ------------------------------------------------------------------ doors between rooms

    @abc.abstractmethod
    async def _send_resumption_update(self, *, generating: bool = False) -> None:
        """Send ``sessionResumptionUpdate`` if the client asked for them (``_core``)."""

    @abc.abstractmethod
    async def _generate(
        self,
        actions: Sequence[Action | EndTurn],
        *,
        paced: bool = False,
        start_ms: float | None = None,
    ) -> None:
        """Carry out one model response (``_replies``)."""

    @abc.abstractmethod
    def _scripted(self, **turn: Any) -> list[Action | EndTurn] | None:
        """The scripted or triggered response to a user turn, if any (``_replies``)."""

    @abc.abstractmethod
    async def _interrupt(self, pending_calls: list[str]) -> None:
        """Cut the model's turn short (``interrupted``), cancelling ``pending_calls``
        (``_input``)."""

    @abc.abstractmethod
    async def _call_tools(self, action: CallTools) -> None:
        """Make the calls of a ``CallTools`` action (``_tool_calls``)."""

    @abc.abstractmethod
    async def cancel_calls(self, ids: list[str], *, finish: bool = True) -> None:
        """Cancel pending calls; with ``finish``, answer their groups (``_tool_calls``)."""
