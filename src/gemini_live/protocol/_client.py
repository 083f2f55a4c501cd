"""The facade of the sans-I/O core: :class:`ClientProtocol` routes each call to a part.

A :class:`ClientProtocol` lives as long as a *session* and sees a series of
*connections*. The I/O layer (:mod:`gemini_live.session`) drives it:

1. :meth:`~ClientProtocol.connection_made` when a socket opened; :meth:`data_to_send`
   then returns the setup frame (with the latest resumption handle).
2. :meth:`~ClientProtocol.receive` for every frame read: it returns the events and applies
   them (``setupComplete`` opens the connection and emits ``Resumed`` after a reconnect,
   handles acknowledge what they cover, ``goAway`` starts the drain, tool calls are
   tracked).
3. ``send_*`` for everything the app sends: each validates (a bad value raises before
   anything is written), encodes and numbers the frame, and either hands it out at once
   (open connection, nothing queued: the returned frame is to be written now) or keeps it
   in the bounded offline buffer.
4. :meth:`~ClientProtocol.data_to_send` hands out, in order: the setup, the frames to
   re-send after a reconnect, the offline buffer, new sends. The caller confirms each
   write with :meth:`written` or gives the unwritten ones back with :meth:`unwritten`.
5. :meth:`~ClientProtocol.rotation_due` says when a planned rotation (after ``goAway``)
   may happen and :meth:`~ClientProtocol.begin_rotation` decides it;
   :meth:`~ClientProtocol.connection_lost` classifies how a socket ended.

The parts, each with its own state and pure tests: the outbox and re-send window
(``_outbox``), the tool-call ledger (``_ledger``), the rotation plan (``_rotation``), the
message checks (``_messages``, ``_checks``). The facade keeps the connection phase
(``_state``), the setup and handle, the seed of a fresh session, and whether the model is
generating; :meth:`ClientProtocol.snapshot` returns all of it as one versioned value
(``_snapshot``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import msgspec

from gemini_live._limits import MAX_MESSAGE_SIZE
from gemini_live.auth import ApiKind
from gemini_live.codec import _fast_parts, decode_frame, encode_client, fast_events
from gemini_live.errors import (
    ConfigError,
    Phase,
    ProtocolStateError,
    ServiceError,
    classify_close,
)
from gemini_live.events import Event, Resumed, SetupComplete
from gemini_live.models import family_of
from gemini_live.protocol import _messages
from gemini_live.protocol._checks import validate_setup
from gemini_live.protocol._ledger import ToolLedger
from gemini_live.protocol._outbox import Kind, Outbox, ResendWindow
from gemini_live.protocol._reconnect import ReconnectCounters
from gemini_live.protocol._rotation import RotationPlan
from gemini_live.protocol._snapshot import Snapshots
from gemini_live.protocol._state import Connection, SessionStats, State
from gemini_live.types import (
    UNSET,
    ClientMessage,
    Content,
    FunctionResponse,
    SessionResumptionConfig,
    Setup,
    Tool,
)

__all__ = ["ClientProtocol", "ResendWindow"]

logger = logging.getLogger("gemini_live.protocol")

_OPEN: Final = State.OPEN
_ACTIVITY_START: Final = encode_client(_messages.ACTIVITY_START)
_ACTIVITY_END: Final = encode_client(_messages.ACTIVITY_END)
_AUDIO_STREAM_END: Final = encode_client(_messages.AUDIO_STREAM_END)


class ClientProtocol(Snapshots):
    """The client side of one Live session across any number of connections.

    ``api`` selects endpoint rules ("gemini" refuses Vertex-only fields). With
    ``transparent`` resumption (Vertex) the window is pruned by the server's
    ``lastConsumedClientMessageIndex``; otherwise by handles (see the module docstring).

    ``snapshot()`` returns the whole core as one versioned plain value
    (:class:`~gemini_live.protocol.ProtocolSnapshot`) and the classmethod ``restore()``
    rebuilds an equal core from it (both come from its base class ``Snapshots``).
    """

    def __init__(
        self,
        setup: Setup,
        *,
        api: ApiKind = "gemini",
        resume_handle: str | None = None,
        request_resumption: bool = True,
        normalize_model: Callable[[str], str] | None = None,
        input_rate: int = 16000,
        offline_buffer_bytes: int = 4 * 1024 * 1024,
        max_frame_bytes: int = MAX_MESSAGE_SIZE,
        resend: ResendWindow | None = None,
        go_away_margin: float = 0.25,
        hold_while_draining: bool = False,
    ) -> None:
        self._normalize = normalize_model
        setup = self._normalized(setup)
        validate_setup(setup, api)
        self.api: ApiKind = api
        sr = setup.session_resumption
        if sr is UNSET and request_resumption:
            sr = SessionResumptionConfig()
        self.transparent = sr is not UNSET and sr.transparent is True
        self.resumption_enabled = sr is not UNSET
        if sr is not UNSET and sr.handle is not UNSET and resume_handle is None:
            resume_handle = sr.handle
        self._setup = setup
        #: Latest handle that arrived with ``resumable: true``.
        self.resume_handle: str | None = resume_handle
        self.session_id: str | None = None
        self.stats = SessionStats()
        #: The reconnect decision state (the I/O layer's reconnect rules update it; it is
        #: here so a snapshot carries it).
        self.reconnect = ReconnectCounters()
        self._conn: Connection | None = None
        self.ever_open = False
        self._input_rate = input_rate
        self._outbox = Outbox(
            self.stats,
            input_rate=input_rate,
            offline_buffer_bytes=offline_buffer_bytes,
            max_frame_bytes=max_frame_bytes,
            resend=resend or ResendWindow(),
        )
        self._ledger = ToolLedger()
        self._plan = RotationPlan(margin=go_away_margin, hold_while_draining=hold_while_draining)
        self._plan.mirror_to(self._outbox)  # the audio writer reads the outbox's copy
        #: The model's turn (or interaction) is in progress.
        self._generating = False
        self._seed_setup: Setup | None = None
        self._seed_turns = 0
        #: Set by the I/O layer while it can write a frame synchronously: ``send_*`` then
        #: hands a frame out at once (returned) when nothing is queued before it.
        self.direct_writes = False
        #: Set by the I/O layer for each connection: how many bytes written to the current
        #: transport have not left this host yet (None: it cannot tell). Called once per
        #: resumable handle, never per frame. Unset, a frame counts as sent when written.
        self.unsent_bytes: Callable[[], int | None] | None = None
        #: The first connection is to resume (a handle in the setup, or a restored
        #: conversation): its ``setupComplete`` emits ``Resumed`` too, saying whether the
        #: state was restored or the session started fresh. Not part of a snapshot.
        self.expect_resume = self.resumption_enabled and resume_handle is not None
        self._ledger.note_setup(setup)

    def _normalized(self, setup: Setup) -> Setup:
        if self._normalize is not None and isinstance(setup, Setup) and setup.model:
            model = self._normalize(setup.model)
            if model != setup.model:
                setup = msgspec.structs.replace(setup, model=model)
        return setup

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._conn.state if self._conn is not None else State.IDLE

    @property
    def setup(self) -> Setup:
        return self._setup

    @property
    def phase(self) -> Phase:
        st = self.state
        if st in (State.CONNECTING, State.IDLE):
            return "connect"
        if st is State.SETUP_SENT:
            return "setup"
        return "stream"

    @property
    def connection_number(self) -> int:
        """1 for the first connection, +1 per reconnect (identifies a connection)."""
        return self.stats.connections

    @property
    def pending_tool_calls(self) -> dict[str, str]:
        """Tool call ids the model is waiting on (id -> function name)."""
        return self._ledger.pending

    @property
    def generating(self) -> bool:
        """The model's turn (or interaction) is in progress."""
        return self._generating

    @property
    def has_pending_blocking_call(self) -> bool:
        """True if a call to a BLOCKING function is still unanswered (the one rule).

        Only a function declared ``NON_BLOCKING`` does not block: explicitly, or by an
        unset behaviour on a model family whose default is ``NON_BLOCKING`` (3.8, see
        :func:`gemini_live.models.effective_behavior`). Unknown behaviour (an undeclared
        function, an unknown model) counts as blocking, the safe choice.
        """
        return self._ledger.blocking_pending

    @property
    def unacknowledged(self) -> int:
        """Frames written and not yet covered by a handle (kept for re-sending)."""
        return self._outbox.unacknowledged

    @property
    def queued(self) -> int:
        """Frames waiting to be written (offline buffer and frames not yet handed out)."""
        return len(self._outbox.pending)

    @property
    def handle_guard(self) -> float:
        return self._outbox.handle_guard

    @property
    def coverage_guard(self) -> float:
        """How long before a handle arrived a frame must have left this host to be covered
        by it: ``handle_guard``, or the latest response lag when that is longer."""
        return self._outbox.coverage_guard

    def _cover_by_handle(self, conn: Connection, now: float) -> None:
        probe = self.unsent_bytes
        if probe is None:  # the caller writes synchronously: a frame leaves when written
            self._outbox.cover_by_handle(now)
            return
        try:
            unsent = probe()
        except Exception:  # a probe must never break receiving: the transport cannot tell
            logger.exception("unsent_bytes probe raised")
            unsent = None
        self._outbox.cover_by_handle(now, conn, unsent)

    def connection_healthy(self, now: float, healthy_after: float) -> bool:
        """The current connection stayed open long enough, or completed a model turn."""
        conn = self._conn
        if conn is None or conn.opened_at is None:
            return False
        return conn.turns_completed > 0 or now - conn.opened_at >= healthy_after

    def will_resume(self) -> bool:
        """Whether the next setup resumes (a handle is known and resumption is on)."""
        return self.resumption_enabled and self.resume_handle is not None

    def resume_rejected(self) -> None:
        """The last resume attempt failed (stale handle): the next setup starts fresh."""
        self.resume_handle = None

    # -- the rotation plan ----------------------------------------------------------------

    @property
    def go_away_deadline(self) -> float | None:
        """Time (in the caller's clock) when the server will cut the connection."""
        return self._plan.deadline

    @property
    def draining(self) -> bool:
        """A goAway (or a setup change) asked for a rotation that has not happened yet."""
        return self._plan.deadline is not None

    @property
    def at_clean_point(self) -> bool:
        """Whether the connection can be replaced now without cutting anything.

        The model is not generating, no BLOCKING call is unanswered, no pending call is
        newer than the latest handle, and every user turn and tool answer written so far
        is covered by a resumable handle (only media may still be in the window).
        """
        return not self.rotation_blockers()

    def rotation_blockers(self) -> list[str]:
        """Why the connection is not at a clean point (empty when it is)."""
        return self._plan.blockers(self._ledger, self._outbox, self._generating)

    def rotation_due(self, now: float) -> bool:
        """After goAway: rotate now? At a clean point, or at ``deadline - margin``.

        A question only: the caller that acts on it calls :meth:`begin_rotation`.
        """
        conn = self._conn
        return conn is not None and self._plan.due(
            now,
            is_open=conn.state is _OPEN,
            ledger=self._ledger,
            outbox=self._outbox,
            generating=self._generating,
        )

    def begin_rotation(self) -> None:
        """The rotation is decided: from now on nothing more is handed out on this
        connection (new input waits for the next one, so the clean point cannot slip)."""
        self._plan.begin()

    def rotation_deadline(self) -> float | None:
        """When the rotation happens at the latest (caller's clock), or None."""
        return self._plan.latest()

    def request_rotation(self, now: float) -> None:
        """Rotate as soon as possible (a setup change): like a goAway with no time left."""
        self._plan.request(now, connected=self._conn is not None)

    def update_setup(self, setup: Setup) -> None:
        """Use ``setup`` for the next connection (everything but the model may change)."""
        setup = self._normalized(setup)
        validate_setup(setup, self.api)
        if setup.model != self._setup.model:
            raise ConfigError("the model cannot change within a session")
        self._setup = setup
        self._ledger.note_setup(setup)

    # -- connection lifecycle -------------------------------------------------------------

    def connection_made(self) -> None:
        """A new socket is open (the previous one, if any, must be closed)."""
        if self._conn is not None and self._conn.state is not State.CLOSED:
            raise ProtocolStateError("previous connection is not closed yet")
        self._conn = Connection()
        self._plan.reset()
        self.stats.connections += 1

    def data_to_send(self, now: float) -> list[bytes]:
        """The frames to write now, in order; confirm them with :meth:`written`.

        While connecting this is the setup frame. Once the connection is open: the frames
        re-sent after a reconnect, the offline buffer, then new sends. Nothing while
        closed, or while a rotation holds input.
        """
        conn = self._conn
        if conn is None:
            return []
        if conn.state is State.CONNECTING:
            setup = self._seed_setup if self._seed_setup is not None else self._setup
            handle = self.resume_handle if self.resumption_enabled else None
            frame = _messages.setup(setup, self.resumption_enabled, handle)
            conn.resuming = handle is not None
            conn.state = State.SETUP_SENT
            conn.setup_sent_at = now
            return [frame]
        if conn.state is not _OPEN or not self._outbox.pending or self._plan.holding:
            return []
        return self._outbox.hand_out(conn, now)

    def written(self, count: int = 1) -> None:
        """``count`` frames handed out (oldest first) were written to the socket."""
        self._outbox.written(count)

    def direct_failed(self) -> None:
        """The frame just returned by a ``send_*`` could not be written synchronously: it
        goes to the head of the queue (to be written by :meth:`data_to_send`)."""
        self._outbox.direct_failed(self._conn)

    def unwritten(self) -> None:
        """Frames handed out but not written go back to the head of the queue, in order."""
        self._outbox.unwritten(self._conn)

    def start_closing(self) -> None:
        """We are closing the current connection on purpose (rotation or close())."""
        if self._conn is not None and self._conn.state is not State.CLOSED:
            self._conn.state = State.CLOSING
        self._outbox.close_run()  # no chunk is written to a closing connection

    def connection_lost(self, code: int, reason: str, *, local: bool = False) -> ServiceError:
        """The socket ended. Returns the typed error describing why (never raises it).

        Frames handed out but not confirmed go back to the queue.
        """
        phase = self.phase
        self._outbox.unwritten(self._conn)
        if self._conn is not None:
            self._conn.state = State.CLOSED
        self._outbox.close_run()
        return classify_close(code, reason, phase=phase, session_id=self.session_id, local=local)

    def discard_queue(self) -> int:
        """The session is over: forget what was never written; returns how many frames."""
        return self._outbox.discard()

    # -- sending --------------------------------------------------------------------------

    def _direct(self, conn: Connection | None) -> bool:
        """A new frame may go straight to the socket as far as the connection goes: the
        caller writes synchronously, the connection is open, no rotation holds input
        (the outbox adds: nothing queued or unconfirmed before it)."""
        return (
            self.direct_writes
            and conn is not None
            and conn.state is _OPEN
            and not self._plan.holding
        )

    def _submit(
        self,
        frame: bytes,
        kind: Kind,
        now: float,
        turn_end: bool | None = None,
        audio_s: float = 0.0,
        tool_ids: tuple[str, ...] = (),
    ) -> bytes | None:
        conn = self._conn
        return self._outbox.submit(
            frame, kind, now, conn, self._direct(conn), turn_end, audio_s, tool_ids
        )

    def send_audio(self, pcm: object, now: float, sample_rate: int | None = None) -> bytes | None:
        """Queue one PCM16 chunk; returns the frame when it is to be written right now."""
        conn = self._conn
        return self._outbox.send_audio(
            pcm,
            now,
            sample_rate,
            conn,
            self.direct_writes
            and conn is not None
            and conn.state is _OPEN
            and not self._plan.holding,
        )

    def audio_writer(
        self, write: Callable[..., object], kind: object = None
    ) -> Callable[[object, float], bool]:
        """The audio hot path of the current connection: ``writer(pcm, now)`` encodes a
        chunk at the input rate, writes it with ``write`` and keeps it for re-sending, in
        one call (see :meth:`Outbox.write_audio`). True: written; False: queued for
        :meth:`data_to_send`. Valid while ``write`` writes to the current connection; it
        returns False when it cannot write now (anything else: written). With ``kind``
        (not None) a frame is written as ``write(kind, frame)``."""
        conn = self._conn
        if conn is None:
            raise ProtocolStateError("no connection to write audio to")
        # The outbox reads the rotation's ``holding`` from its own copy (one object fewer
        # for each chunk to touch).
        return self._outbox.audio_writer(conn, write, kind)

    def send_video(self, frame: object, now: float, mime_type: str = "image/jpeg") -> bytes | None:
        """Queue one still frame (JPEG/PNG/WebP)."""
        msg = _messages.video(frame, mime_type)
        return self._submit(encode_client(msg), Kind.VIDEO, now)

    def send_text(self, text: object, now: float) -> bytes | None:
        """Queue typed user text (realtime input)."""
        msg, kind, turn_end = _messages.text(self._setup.model, text, self.api == "vertex")
        return self._submit(encode_client(msg), kind, now, turn_end)

    def send_activity_start(self, now: float) -> bytes | None:
        return self._submit(_ACTIVITY_START, Kind.ACTIVITY_START, now)

    def send_activity_end(self, now: float) -> bytes | None:
        return self._submit(_ACTIVITY_END, Kind.ACTIVITY_END, now)

    def send_audio_stream_end(self, now: float) -> bytes | None:
        return self._submit(_AUDIO_STREAM_END, Kind.AUDIO_STREAM_END, now)

    def send_client_content(
        self,
        turns: Content | str | Sequence[Content] | None,
        now: float,
        *,
        turn_complete: bool = True,
    ) -> bytes | None:
        """Queue turns for the conversation history; ``turn_complete`` starts generation."""
        return self.send_message(_messages.client_content(turns, turn_complete), now)

    def send_tool_response(
        self, responses: FunctionResponse | Iterable[FunctionResponse], now: float
    ) -> bytes | None:
        """Queue answers to tool calls: each id must belong to a pending call."""
        return self.send_message(_messages.tool_response(responses), now)

    def send_context_update(
        self,
        now: float,
        *,
        system_instruction: Content | str | None = None,
        tools: Sequence[Tool] | None = None,
    ) -> bytes | None:
        """Change the system instruction and/or tools mid-session (``tools=[]`` clears).

        The setup of later connections carries the change too (a resume sends it again).
        """
        model = self._setup.model
        msg, si, tool_list = _messages.context_update(
            model, family_of(model), system_instruction, tools
        )
        new = self._setup
        if tool_list is not None:
            new = msgspec.structs.replace(new, tools=tool_list if tool_list else UNSET)
        if si is not None:
            new = msgspec.structs.replace(new, system_instruction=si)
        frame = self.send_message(msg, now)
        self._setup = new
        self._ledger.note_setup(new)
        return frame

    def send_message(self, message: ClientMessage, now: float) -> bytes | None:
        """Queue any client message (checked: types, one field, one realtime payload)."""
        message, field, kind, turn_end, audio_s = _messages.classify(message)
        tool_ids: tuple[str, ...] = ()
        if field == "tool_response":
            tr = message.tool_response
            assert tr is not UNSET
            checked = self._ledger.check_response(
                tr, model=self._setup.model, api=self.api, stats=self.stats
            )
            if checked is None:
                return None
            if checked is not tr:
                message = ClientMessage(tool_response=checked)
            tool_ids = tuple(r.id for r in checked.function_responses if isinstance(r.id, str))
            # Awaits the model's reply (which covers it, as an answer covers a user turn)?
            turn_end = self._ledger.reply_expected(checked)
        return self._submit(encode_client(message), kind, now, turn_end, audio_s, tool_ids)

    # -- receiving ------------------------------------------------------------------------

    def receive(self, data: bytes | bytearray | memoryview | str, now: float) -> list[Event]:
        """Decode one server frame and apply it. ``now`` is the caller's monotonic time."""
        conn = self._conn
        if conn is None or conn.state in (State.IDLE, State.CONNECTING, State.CLOSED):
            raise ProtocolStateError(f"frame received in state {self.state.value}")
        self.stats.frames_received += 1
        fast = fast_events(data)  # audio, or audio + output transcript: nothing to apply
        if fast is not None:
            if not self._generating:
                self._model_started(now)
            return fast
        msg, events = decode_frame(data)
        sc = msg.server_content
        if sc is not UNSET:
            if (
                sc.model_turn is not UNSET or sc.output_transcription is not UNSET
            ) and not self._generating:
                self._model_started(now)
            if sc.interrupted is True:
                self._generating = False
            if sc.turn_complete is True:
                self._generating = sc.interaction_status == "IN_PROGRESS"
                conn.turns_completed += 1
                if not self.resumption_enabled:
                    # No handles will come: a completed turn is the only acknowledgement.
                    self._cover_by_handle(conn, now)
        if (
            msg.setup_complete is UNSET
            and msg.session_resumption_update is UNSET
            and msg.go_away is UNSET
            and msg.tool_call is UNSET
            and msg.tool_call_cancellation is UNSET
        ):
            return events  # content only (audio, text, transcripts): nothing else to apply
        tc = msg.tool_call
        if tc is not UNSET:
            if not self._generating:
                self._model_started(now)
            # The model now waits for the answer: what comes after it is a new response.
            self._generating = False
            self._ledger.calls(tc.function_calls if tc.function_calls is not UNSET else ())
        tcc = msg.tool_call_cancellation
        if tcc is not UNSET:
            replied = self._ledger.cancel(tcc.ids if tcc.ids is not UNSET else ())
            if replied:  # the group is complete: the model replies to the answers given
                self._outbox.reply_due(replied)
        sru = msg.session_resumption_update
        if sru is not UNSET and sru.resumable is True and sru.new_handle:
            self.resume_handle = sru.new_handle
            idx = sru.last_consumed_client_message_index
            if self.transparent and idx is not UNSET:
                self._outbox.acknowledge_index(idx)
            elif not self.transparent:
                self._cover_by_handle(conn, now)
            # The handle covers an answered call once the outbox no longer holds its answer.
            self._ledger.handle_arrived(self._outbox.held_tool_ids())
        if msg.go_away is not UNSET:
            for ev in events:
                left = getattr(ev, "time_left", None)
                if isinstance(left, float):
                    self._plan.go_away(now, left)
                    logger.info("goAway: the service ends this connection in %.1f s", left)
        if msg.setup_complete is not UNSET:
            return self._on_setup_complete(conn, events, now)
        return events

    def receive_stream(
        self, data: bytes | bytearray | memoryview | str, now: float
    ) -> tuple[bytes, str | None] | None:
        """The receive hot path: a frame of model audio (and its output transcript) on an
        open connection, decoded and applied in one call: ``(pcm, transcript or None)``.
        None: any other frame or state, nothing done (use :meth:`receive`). The events are
        what :meth:`receive` returns for the frame (no transcript event for an empty one).
        """
        conn = self._conn
        if conn is None or conn.state is not _OPEN:
            return None
        parts = _fast_parts(data)
        if parts is None:
            return None
        self.stats.frames_received += 1
        if not self._generating:
            self._model_started(now)
        return parts

    def _model_started(self, now: float) -> None:
        self._generating = True
        # A new model turn after the latest user turn: the service read that turn.
        self._outbox.model_started(now)

    def _on_setup_complete(self, conn: Connection, events: list[Event], now: float) -> list[Event]:
        if conn.state is not State.SETUP_SENT:
            logger.warning("setupComplete received in state %s; ignored", conn.state.value)
            return [e for e in events if not isinstance(e, SetupComplete)]
        conn.state = _OPEN
        conn.opened_at = now
        for ev in events:
            if isinstance(ev, SetupComplete) and ev.session_id:
                self.session_id = ev.session_id
        reconnected = self.ever_open
        restored = conn.resuming
        if restored:
            self.stats.resumed += 1
        elif reconnected:
            self.stats.fresh_sessions_after_loss += 1
        self._ledger.opened(resuming=restored, reconnected=reconnected)
        self.ever_open = True
        self.stats.opens += 1
        self._generating = False
        outbox = self._outbox
        outbox.opened(None if conn.setup_sent_at is None else now - conn.setup_sent_at)
        if reconnected:
            outbox.requeue_window(self._ledger.stale)
        turns = self._seed_turns
        self._seed_setup, self._seed_turns = None, 0
        seeded = outbox.release_seed()
        announce = reconnected or self.expect_resume
        self.expect_resume = False
        if announce:
            at = next(
                (k for k, e in enumerate(events) if isinstance(e, SetupComplete)), len(events) - 1
            )
            resumed = Resumed(restored, reseeded=seeded, turns=turns if seeded else 0)
            events = [*events[: at + 1], resumed, *events[at + 1 :]]
        return events

    # -- a fresh session's seed -----------------------------------------------------------

    def set_seed(self, setup: Setup | None, messages: Sequence[ClientMessage], turns: int) -> None:
        """History for the next connection, a fresh session: ``setup`` replaces the setup
        of that connection (e.g. with ``historyConfig``), ``messages`` go out right after
        its ``setupComplete``, before anything else."""
        self._seed_setup = setup
        self._outbox.set_seed([encode_client(msg) for msg in messages])
        self._seed_turns = turns

    def resend_texts(self) -> list[str]:
        """Texts that the next connection writes again (window and queue), oldest first."""
        return self._outbox.resend_texts()
