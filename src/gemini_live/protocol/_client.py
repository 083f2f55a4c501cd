"""Sans-I/O client core of the Live protocol: every rule of both directions, no I/O.

No asyncio, no sockets, no clock: the caller passes ``now`` (its monotonic time) where
time matters. A :class:`ClientProtocol` lives as long as a *session* and sees a series of
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
   may happen; :meth:`~ClientProtocol.connection_lost` classifies how a socket ended.

The re-send window (docs/design.md, ADR 11): a resumption handle stands for the
conversation as it was when the service issued it. Every frame written after that point
stays in the window and is written again on the next connection, so nothing the app sent
is lost across a reconnect. A handle covers a frame when the model already responded to
the user turn that frame belongs to, or when the frame was written more than a guard
time (about two round trips) before the handle arrived. Transparent resumption (Vertex)
uses the server's exact ``lastConsumedClientMessageIndex`` instead.

States per connection: ``IDLE -> CONNECTING -> SETUP_SENT -> OPEN -> CLOSING -> CLOSED``.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from gemini_live._checks import non_negative, non_negative_int
from gemini_live._limits import MAX_MESSAGE_SIZE
from gemini_live._pcm import INPUT_RATE, parse_pcm_rate
from gemini_live.auth import ApiKind
from gemini_live.codec import (
    AudioFrameEncoder,
    check_client_message,
    decode_frame,
    encode_client,
    fast_events,
)
from gemini_live.errors import (
    ConfigError,
    InvalidMessageError,
    MessageTooLargeError,
    Phase,
    ProtocolStateError,
    QueueFullError,
    ServiceError,
    UnknownToolCallError,
    classify_close,
)
from gemini_live.events import (
    Event,
    Resumed,
    SetupComplete,
)
from gemini_live.models import adapt_function_response, family_of, text_message
from gemini_live.protocol._checks import check_types, not_a_list, validate_setup
from gemini_live.protocol._state import Connection, SessionStats, State
from gemini_live.types import (
    UNSET,
    ActivityEnd,
    ActivityStart,
    Blob,
    ClientContent,
    ClientMessage,
    Content,
    ContextUpdate,
    FunctionResponse,
    Part,
    RealtimeInput,
    SessionResumptionConfig,
    Setup,
    Tool,
    ToolResponse,
    ToolsUpdate,
)

__all__ = [
    "ApiKind",
    "ClientProtocol",
    "ResendWindow",
    "SessionStats",
    "State",
    "check_types",
    "validate_setup",
]

logger = logging.getLogger("gemini_live.protocol")

#: Image types the service takes as video frames.
IMAGE_MIME_TYPES: Final = ("image/jpeg", "image/png", "image/webp")


class Kind(enum.IntEnum):
    """What a client frame carries (decides how the re-send window treats it)."""

    AUDIO = 1
    VIDEO = 2
    TEXT = 3
    ACTIVITY_START = 4
    ACTIVITY_END = 5
    AUDIO_STREAM_END = 6
    CLIENT_CONTENT = 7
    TOOL_RESPONSE = 8
    CONTEXT_UPDATE = 9
    #: History sent to a fresh session (never re-sent: a later fresh session gets a new one).
    SEED = 10


_REALTIME_KINDS: Final = {
    "audio": Kind.AUDIO,
    "video": Kind.VIDEO,
    "text": Kind.TEXT,
    "activity_start": Kind.ACTIVITY_START,
    "activity_end": Kind.ACTIVITY_END,
    "audio_stream_end": Kind.AUDIO_STREAM_END,
}


@dataclass(frozen=True, slots=True)
class ResendWindow:
    """What is kept to re-send after a reconnect (see docs/design.md, "re-send window").

    A resumption handle stands for the conversation as it was when the service issued
    it. Everything written after that point is kept and written again on the next
    connection. Text, client content, tool responses and activity markers are always
    kept; audio beyond ``audio_seconds`` (and video beyond ``video_frames``) is dropped
    oldest-first and counted in ``stats.frames_at_risk``.
    """

    audio_seconds: float = 5.0
    video_frames: int = 4
    #: Frames written less than this many seconds before a handle arrived are not
    #: taken as covered by it (the handle may have been issued before they arrived).
    #: None: twice the slowest setup round trip seen, at least 0.2 s, at most 1 s.
    handle_guard: float | None = None

    def __post_init__(self) -> None:
        non_negative("audio_seconds", self.audio_seconds)
        non_negative_int("video_frames", self.video_frames)
        if self.handle_guard is not None:
            non_negative("handle_guard", self.handle_guard)


#: One client frame on its way out, kept until a handle covers it: a plain tuple of
#: bytes and numbers, so the garbage collector stops tracking it (a full re-send window
#: holds hundreds of them per session). Fields, by index:
_Rec = tuple[bytes, int, int, bool, float, tuple[str, ...], float, int]
_F: Final = 0  # the frame
_K: Final = 1  # int(Kind)
_SEQ: Final = 2  # submission order
_TE: Final = 3  # ends a user turn
_AS: Final = 4  # seconds of audio
_TI: Final = 5  # tool-call ids answered
_WA: Final = 6  # when it was handed out (caller's clock)
_IX: Final = 7  # index on its connection (transparent resumption)


def _rec(
    frame: bytes,
    kind: Kind,
    seq: int,
    turn_end: bool,
    audio_s: float = 0.0,
    tool_ids: tuple[str, ...] = (),
) -> _Rec:
    return (frame, int(kind), seq, turn_end, audio_s, tool_ids, 0.0, 0)


class ClientProtocol:
    """The client side of one Live session across any number of connections.

    ``api`` selects endpoint rules ("gemini" refuses Vertex-only fields). With
    ``transparent`` resumption (Vertex) the window is pruned by the server's
    ``lastConsumedClientMessageIndex``; otherwise by handles (see the module docstring).
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
        if normalize_model is not None and isinstance(setup, Setup) and setup.model:
            model = normalize_model(setup.model)
            if model != setup.model:
                setup = msgspec.structs.replace(setup, model=model)
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
        self._conn: Connection | None = None
        self.ever_open = False
        # -- send side
        self._audio = AudioFrameEncoder(input_rate)
        self._audio_by_rate: dict[int, AudioFrameEncoder] = {input_rate: self._audio}
        self._offline_limit = offline_buffer_bytes
        self._max_frame = max_frame_bytes
        self._resend = resend or ResendWindow()
        self._margin = go_away_margin
        self._hold_while_draining = hold_while_draining
        self._seq = 0
        self._pending: deque[_Rec] = deque()
        self._pending_bytes = 0
        self._unconfirmed: deque[_Rec] = deque()
        self._last_direct: _Rec | None = None
        self._window: deque[_Rec] = deque()
        self._window_audio_s = 0.0
        self._window_video = 0
        self._window_bytes = 0
        # -- conversation tracking (for coverage and the rotation decision)
        self._generating = False
        self._last_turn_end_seq = 0
        self._awaiting_response = False
        self._responded_seq = 0
        self._max_setup_rtt = 0.0
        self._rotation_requested = False
        self._rotating = False
        self._seed_setup: Setup | None = None
        self._seed: list[_Rec] = []
        self._seed_turns = 0
        #: Set by the I/O layer while it can write a frame synchronously: ``send_*`` then
        #: hands a frame out at once (returned) when nothing is queued before it.
        self.direct_writes = False
        # -- tool calls
        #: Tool call ids the model is waiting on (id -> function name).
        self.pending_tool_calls: dict[str, str] = {}
        self._call_epoch: dict[str, int] = {}
        self._handle_epoch = 0
        self._non_blocking_names: set[str] = set()
        self._stale_tool_ids: set[str] = set()
        self._cancelled_ids: set[str] = set()
        self._note_blocking(setup)

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
    def go_away_deadline(self) -> float | None:
        """Time (in the caller's clock) when the server will cut the connection."""
        return self._conn.go_away_deadline if self._conn is not None else None

    @property
    def draining(self) -> bool:
        """A goAway (or a setup change) asked for a rotation that has not happened yet."""
        return self._conn is not None and self._conn.go_away_deadline is not None

    @property
    def generating(self) -> bool:
        """The model's turn (or interaction) is in progress."""
        return self._generating

    @property
    def has_pending_blocking_call(self) -> bool:
        """True if a call to a BLOCKING function is still unanswered (the one rule).

        Only a function declared ``NON_BLOCKING`` does not block: explicitly, or by an
        unset behaviour on a model family whose default is ``NON_BLOCKING`` (3.8). Unknown
        behaviour (an undeclared function, an unknown model) counts as blocking, the safe
        choice. The session hands the protocol the setup after the model table adapted it.
        """
        return any(
            name not in self._non_blocking_names for name in self.pending_tool_calls.values()
        )

    @property
    def unacknowledged(self) -> int:
        """Frames written and not yet covered by a handle (kept for re-sending)."""
        return len(self._window)

    @property
    def queued(self) -> int:
        """Frames waiting to be written (offline buffer and frames not yet handed out)."""
        return len(self._pending)

    @property
    def handle_guard(self) -> float:
        guard = self._resend.handle_guard
        if guard is not None:
            return guard
        return min(1.0, max(0.2, 2.0 * self._max_setup_rtt))

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
        out = []
        if self.has_pending_blocking_call:
            out.append("a pending blocking tool call")
        if self._generating:
            out.append("the model's turn in progress")
        epoch = self._handle_epoch
        if any(self._call_epoch.get(i, -1) >= epoch for i in self.pending_tool_calls):
            out.append("a tool call newer than the last handle")
        if any(o[_TE] for o in self._window) or self._unconfirmed:
            out.append("input not yet covered by a resumption handle")
        return out

    def rotation_due(self, now: float) -> bool:
        """After goAway: rotate now? At a clean point, or at ``deadline - margin``."""
        conn = self._conn
        if conn is None or conn.go_away_deadline is None or conn.state is not State.OPEN:
            return False
        if (
            self._rotating
            or self._rotation_requested
            or now >= conn.go_away_deadline - self._margin
            or self.at_clean_point
        ):
            # From now on nothing more is handed out on this connection: new input waits
            # for the next one, so the clean point cannot slip away.
            self._rotating = True
            return True
        return False

    def rotation_deadline(self) -> float | None:
        """When the rotation happens at the latest (caller's clock), or None."""
        d = self.go_away_deadline
        return None if d is None else d - self._margin

    def request_rotation(self, now: float) -> None:
        """Rotate as soon as possible (a setup change): like a goAway with no time left."""
        self._rotation_requested = True
        if self._conn is not None and self._conn.go_away_deadline is None:
            self._conn.go_away_deadline = now

    def connection_healthy(self, now: float, healthy_after: float) -> bool:
        """The current connection stayed open long enough, or completed a model turn."""
        conn = self._conn
        if conn is None or conn.opened_at is None:
            return False
        return conn.turns_completed > 0 or now - conn.opened_at >= healthy_after

    def update_setup(self, setup: Setup) -> None:
        """Use ``setup`` for the next connection (everything but the model may change)."""
        if self._normalize is not None and isinstance(setup, Setup) and setup.model:
            model = self._normalize(setup.model)
            if model != setup.model:
                setup = msgspec.structs.replace(setup, model=model)
        validate_setup(setup, self.api)
        if setup.model != self._setup.model:
            raise ConfigError("the model cannot change within a session")
        self._setup = setup
        self._note_blocking(setup)

    def _note_blocking(self, setup: Setup) -> None:
        # An unset behaviour is the model family's default (what the service applies);
        # tools sent in a contextUpdate are not adapted by the model table.
        family = family_of(setup.model)
        default = family.default_behavior if family is not None else None
        names: set[str] = set()
        for tool in setup.tools if setup.tools is not UNSET else []:
            for decl in (
                tool.function_declarations if tool.function_declarations is not UNSET else []
            ):
                behavior = decl.behavior if isinstance(decl.behavior, str) else default
                if behavior == "NON_BLOCKING":
                    names.add(decl.name)
        self._non_blocking_names = names

    # -- connection lifecycle -------------------------------------------------------------

    def connection_made(self) -> None:
        """A new socket is open (the previous one, if any, must be closed)."""
        if self._conn is not None and self._conn.state is not State.CLOSED:
            raise ProtocolStateError("previous connection is not closed yet")
        self._conn = Connection()
        self._rotation_requested = False
        self._rotating = False
        self.stats.connections += 1

    def _setup_frame(self, conn: Connection) -> bytes:
        setup = self._seed_setup if self._seed_setup is not None else self._setup
        if self.resumption_enabled:
            sr = setup.session_resumption
            base = sr if sr is not UNSET else SessionResumptionConfig()
            new_sr = SessionResumptionConfig(
                handle=self.resume_handle if self.resume_handle else UNSET,
                transparent=base.transparent,
            )
            setup = msgspec.structs.replace(setup, session_resumption=new_sr)
            conn.resuming = self.resume_handle is not None
        return encode_client(ClientMessage(setup=setup))

    def data_to_send(self, now: float) -> list[bytes]:
        """The frames to write now, in order; confirm them with :meth:`written`.

        While connecting this is the setup frame. Once the connection is open: the frames
        re-sent after a reconnect, the offline buffer, then new sends. Nothing while
        closed, or while draining with ``hold_while_draining``.
        """
        conn = self._conn
        if conn is None:
            return []
        if conn.state is State.CONNECTING:
            frame = self._setup_frame(conn)
            conn.state = State.SETUP_SENT
            conn.setup_sent_at = now
            return [frame]
        if conn.state is not State.OPEN or not self._pending:
            return []
        if self._holds_input(conn):
            return []
        frames = []
        pending = self._pending
        while pending:
            out = pending.popleft()
            self._pending_bytes -= len(out[_F])
            self._hand_out(conn, out, now)
            frames.append(out[_F])
        return frames

    def written(self, count: int = 1) -> None:
        """``count`` frames handed out (oldest first) were written to the socket."""
        unconfirmed = self._unconfirmed
        for _ in range(min(count, len(unconfirmed))):
            unconfirmed.popleft()

    def direct_failed(self) -> None:
        """The frame just returned by a ``send_*`` could not be written synchronously: it
        goes to the head of the queue (to be written by :meth:`data_to_send`)."""
        out, self._last_direct = self._last_direct, None
        if out is None:
            return
        self._unconfirmed.append(out)
        self.unwritten()

    def unwritten(self) -> None:
        """Frames handed out but not written go back to the head of the queue, in order."""
        unconfirmed = self._unconfirmed
        if not unconfirmed:
            return
        handed = list(unconfirmed)
        unconfirmed.clear()
        # A frame no longer in the window was acknowledged while its write was pending:
        # the service has it, so it is not written again.
        in_window = {id(out) for out in self._window}
        back = [out for out in handed if id(out) in in_window]
        if back:
            ids = {id(out) for out in back}
            kept: deque[_Rec] = deque()
            for out in self._window:
                if id(out) in ids:
                    self._window_forget(out)
                else:
                    kept.append(out)
            self._window = kept
        if self._conn is not None:
            # The requeued frames are the latest handed out: their indices are free again.
            self._conn.next_index -= len(back)
        for out in reversed(back):
            self._pending.appendleft(out)
            self._pending_bytes += len(out[_F])
        self.stats.frames_sent -= len(back)

    def _hand_out(self, conn: Connection, out: _Rec, now: float, direct: bool = False) -> _Rec:
        idx = conn.next_index
        conn.next_index = idx + 1
        out = (out[0], out[1], out[2], out[3], out[4], out[5], now, idx)
        self.stats.frames_sent += 1
        if direct:
            self._last_direct = out
        else:
            self._unconfirmed.append(out)
        if out[_TE]:
            self._last_turn_end_seq = out[_SEQ]
            self._awaiting_response = True
        self._window_add(out)
        return out

    # -- the re-send window ---------------------------------------------------------------

    def _window_add(self, out: _Rec) -> None:
        kind = out[_K]
        if kind == _SEED:
            return
        self._window.append(out)
        self._window_bytes += len(out[_F])
        if kind == _AUDIO:
            self._window_audio_s += out[_AS]
            if self._window_audio_s > self._resend.audio_seconds:
                self._evict(_AUDIO)
        elif kind == _VIDEO:
            self._window_video += 1
            if self._window_video > self._resend.video_frames:
                self._evict(_VIDEO)
        if self._window_bytes > self._offline_limit:
            self._evict(None)

    def _window_forget(self, out: _Rec) -> None:
        self._window_bytes -= len(out[_F])
        kind = out[_K]
        if kind == _AUDIO:
            self._window_audio_s -= out[_AS]
        elif kind == _VIDEO:
            self._window_video -= 1

    def _evict(self, kind: int | None) -> None:
        """Drop the oldest frames of ``kind`` (any kind if None) beyond the window's bound."""
        window = self._window
        if kind is None:
            while window and self._window_bytes > self._offline_limit:
                out = window.popleft()
                self._window_forget(out)
                self.stats.frames_at_risk += 1
                logger.warning(
                    "re-send window over %d bytes: dropped a %s frame",
                    self._offline_limit,
                    Kind(out[_K]).name,
                )
            return
        for i, out in enumerate(window):
            if out[_K] == kind:
                del window[i]
                self._window_forget(out)
                self.stats.frames_at_risk += 1
                return

    def _cover(self, up_to_seq: int) -> None:
        window = self._window
        while window and window[0][_SEQ] <= up_to_seq:
            self._window_forget(window.popleft())

    def _cover_by_handle(self, now: float) -> None:
        """A resumable handle arrived: drop what its checkpoint certainly holds."""
        cutoff = now - self.handle_guard
        covered = self._responded_seq
        for out in self._window:
            if out[_WA] <= cutoff:
                covered = max(covered, out[_SEQ])
            else:
                break
        self._cover(covered)

    def _acknowledge_index(self, index: int) -> None:
        window = self._window
        while window and window[0][_IX] <= index:
            self._window_forget(window.popleft())

    # -- sending --------------------------------------------------------------------------

    def _direct_ok(self, conn: Connection) -> bool:
        """A new frame may go straight to the socket: the caller writes synchronously, the
        connection is open, nothing is queued or unconfirmed before it, no rotation holds
        input."""
        return (
            self.direct_writes
            and conn.state is State.OPEN
            and not self._pending
            and not self._unconfirmed
            and not self._holds_input(conn)
        )

    def _holds_input(self, conn: Connection) -> bool:
        """A rotation is decided, or input is held while draining (``drain_input="hold"``)."""
        return self._rotating or (self._hold_while_draining and conn.go_away_deadline is not None)

    def _submit(
        self,
        frame: bytes,
        kind: Kind,
        now: float,
        turn_end: bool | None = None,
        audio_s: float = 0.0,
        tool_ids: tuple[str, ...] = (),
    ) -> bytes | None:
        if len(frame) > self._max_frame:
            raise MessageTooLargeError(
                f"a {kind.name.lower()} message of {len(frame)} bytes is above the "
                f"{self._max_frame}-byte message limit; nothing was sent"
            )
        self._seq += 1
        out = _rec(
            frame,
            kind,
            self._seq,
            kind in _TURN_END_KINDS if turn_end is None else turn_end,
            audio_s,
            tool_ids,
        )
        conn = self._conn
        if conn is not None and self._direct_ok(conn):
            # Written synchronously by the caller right now; direct_failed() if it was not.
            self._hand_out(conn, out, now, direct=True)
            return frame
        size = len(frame)
        if self._pending_bytes + size > self._offline_limit:
            self._seq -= 1
            raise QueueFullError(
                f"offline send buffer full ({self._pending_bytes} of {self._offline_limit} "
                "bytes) while reconnecting; message not queued"
            )
        self._pending.append(out)
        self._pending_bytes += size
        if conn is None or conn.state is not State.OPEN:
            self.stats.frames_queued_offline += 1
        return None

    def send_audio(self, pcm: object, now: float, sample_rate: int | None = None) -> bytes | None:
        """Queue one PCM16 chunk; returns the frame when it is to be written right now."""
        if sample_rate is None:
            enc = self._audio
        else:
            found = self._audio_by_rate.get(sample_rate)
            if found is None:
                found = AudioFrameEncoder(sample_rate)  # validates the rate
                self._audio_by_rate[sample_rate] = found
            enc = found
        frame = enc.encode(pcm)
        payload = len(frame) - enc.empty_frame_size
        if payload == 0:
            raise ConfigError("audio chunk is empty")
        seconds = _b64_len(frame, payload) / (2 * enc.rate)  # PCM16: 2 bytes per sample
        conn = self._conn
        size = len(frame)
        if conn is not None and size <= self._max_frame and self._direct_ok(conn):
            # The hot path (one chunk, open connection, nothing queued): _submit and
            # _hand_out inlined for audio.
            seq = self._seq = self._seq + 1
            idx = conn.next_index
            conn.next_index = idx + 1
            out: _Rec = (frame, _AUDIO, seq, False, seconds, (), now, idx)
            self.stats.frames_sent += 1
            self._last_direct = out
            window = self._window
            window.append(out)
            self._window_bytes += size
            held = self._window_audio_s + seconds
            if held > self._resend.audio_seconds and window[0][_K] == _AUDIO:
                first = window.popleft()
                held -= first[_AS]
                self._window_bytes -= len(first[_F])
                self.stats.frames_at_risk += 1
            self._window_audio_s = held
            if held > self._resend.audio_seconds:
                self._evict(_AUDIO)
            if self._window_bytes > self._offline_limit:
                self._evict(None)
            return frame
        return self._submit(frame, Kind.AUDIO, now, audio_s=seconds)

    def send_video(self, frame: object, now: float, mime_type: str = "image/jpeg") -> bytes | None:
        """Queue one still frame (JPEG/PNG/WebP)."""
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            raise InvalidMessageError(
                f"a video frame must be encoded image bytes, got {type(frame).__name__}"
            )
        if mime_type not in IMAGE_MIME_TYPES:
            raise ConfigError(f"video frames must be one of {', '.join(IMAGE_MIME_TYPES)}")
        if not len(frame):
            raise ConfigError("video frame is empty")
        msg = ClientMessage(realtime_input=RealtimeInput(video=Blob.of(frame, mime_type)))
        return self._submit(encode_client(msg), Kind.VIDEO, now)

    def send_text(self, text: object, now: float) -> bytes | None:
        """Queue typed user text (realtime input)."""
        if not isinstance(text, str):
            raise InvalidMessageError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ConfigError("text is empty")
        msg = text_message(self._setup.model, text, vertex=self.api == "vertex")
        if msg.client_content is not UNSET:
            return self._submit(encode_client(msg), Kind.CLIENT_CONTENT, now, turn_end=True)
        return self._submit(encode_client(msg), Kind.TEXT, now)

    def send_activity_start(self, now: float) -> bytes | None:
        msg = ClientMessage(realtime_input=RealtimeInput(activity_start=ActivityStart()))
        return self._submit(encode_client(msg), Kind.ACTIVITY_START, now)

    def send_activity_end(self, now: float) -> bytes | None:
        msg = ClientMessage(realtime_input=RealtimeInput(activity_end=ActivityEnd()))
        return self._submit(encode_client(msg), Kind.ACTIVITY_END, now)

    def send_audio_stream_end(self, now: float) -> bytes | None:
        msg = ClientMessage(realtime_input=RealtimeInput(audio_stream_end=True))
        return self._submit(encode_client(msg), Kind.AUDIO_STREAM_END, now)

    def send_client_content(
        self,
        turns: Content | str | Sequence[Content] | None,
        now: float,
        *,
        turn_complete: bool = True,
    ) -> bytes | None:
        """Queue turns for the conversation history; ``turn_complete`` starts generation."""
        if not isinstance(turn_complete, bool):
            raise InvalidMessageError("turn_complete must be a bool")
        items: list[Content] | None
        if turns is None:
            items = None
        elif isinstance(turns, str):
            if not turns:
                raise ConfigError("text is empty")
            items = [Content.text(turns)]
        elif isinstance(turns, Content):
            items = [turns]
        elif not_a_list(turns):
            raise InvalidMessageError(
                f"turns must be a str, a Content or a list of Content, got {type(turns).__name__}"
            )
        else:
            items = list(turns)
        msg = ClientMessage(
            client_content=ClientContent(
                turns=items if items is not None else UNSET, turn_complete=turn_complete
            )
        )
        return self.send_message(msg, now)

    def send_tool_response(
        self, responses: FunctionResponse | Iterable[FunctionResponse], now: float
    ) -> bytes | None:
        """Queue answers to tool calls: each id must belong to a pending call."""
        if isinstance(responses, FunctionResponse):
            items = [responses]
        elif not not_a_list(responses):
            items = list(responses)
        else:
            raise InvalidMessageError(
                f"expected FunctionResponse objects, got {type(responses).__name__}"
            )
        if not items:
            raise ConfigError("no function responses given")
        for r in items:
            if not isinstance(r, FunctionResponse):
                raise InvalidMessageError(
                    f"expected FunctionResponse objects, got {type(r).__name__}"
                )
        return self.send_message(
            ClientMessage(tool_response=ToolResponse(function_responses=items)), now
        )

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
        if system_instruction is None and tools is None:
            raise ConfigError("send_context_update needs system_instruction and/or tools")
        fam = family_of(self._setup.model)
        if fam is not None and not fam.context_update and "context_update" not in fam.unverified:
            raise ConfigError(
                f"model {self._setup.model!r} ({fam.title}) does not take contextUpdate; "
                "change the setup with update_setup() (it resumes with the new setup)"
            )
        si: Content | None = None
        if isinstance(system_instruction, str):
            si = Content(parts=[Part(text=system_instruction)])
        elif isinstance(system_instruction, Content):
            si = system_instruction
        elif system_instruction is not None:
            raise InvalidMessageError(
                "system_instruction must be a str or a Content, got "
                f"{type(system_instruction).__name__}"
            )
        tool_list: list[Tool] | None = None
        if tools is not None:
            if not_a_list(tools):
                raise InvalidMessageError(
                    f"tools must be a list of Tool, got {type(tools).__name__}"
                )
            tool_list = list(tools)
            bad = [t for t in tool_list if not isinstance(t, Tool)]
            if bad:
                raise InvalidMessageError(
                    f"tools must be Tool objects, got {type(bad[0]).__name__}"
                )
        msg = ClientMessage(
            context_update=ContextUpdate(
                system_instruction=si if si is not None else UNSET,
                tools=ToolsUpdate(tools=tool_list) if tool_list is not None else UNSET,
            )
        )
        new = self._setup
        if tool_list is not None:
            new = msgspec.structs.replace(new, tools=tool_list if tool_list else UNSET)
        if si is not None:
            new = msgspec.structs.replace(new, system_instruction=si)
        frame = self.send_message(msg, now)
        self._setup = new
        self._note_blocking(new)
        return frame

    def send_message(self, message: ClientMessage, now: float) -> bytes | None:
        """Queue any client message (checked: types, one field, one realtime payload)."""
        if not isinstance(message, ClientMessage):
            raise InvalidMessageError(
                f"expected a types.ClientMessage, got {type(message).__name__}"
            )
        if message.setup is not UNSET:
            raise ConfigError("setup is sent by the session itself; use update_setup()")
        field = check_client_message(message)
        check_types(message, ClientMessage, field)
        turn_end: bool | None = None
        audio_s = 0.0
        tool_ids: tuple[str, ...] = ()
        if field == "realtime_input":
            ri = message.realtime_input
            assert ri is not UNSET
            payload = next(k for k in _REALTIME_KINDS if getattr(ri, k) is not UNSET)
            kind = _REALTIME_KINDS[payload]
            if kind is Kind.AUDIO:
                blob = ri.audio
                assert blob is not UNSET
                mime = blob.mime_type if blob.mime_type is not UNSET else ""
                rate = parse_pcm_rate(mime, INPUT_RATE)
                audio_s = len(blob.data) * 3 / 4 / (2 * rate)
        elif field == "client_content":
            kind = Kind.CLIENT_CONTENT
            cc = message.client_content
            assert cc is not UNSET
            turn_end = cc.turn_complete is True
        elif field == "tool_response":
            kind = Kind.TOOL_RESPONSE
            tr = message.tool_response
            assert tr is not UNSET
            checked = self._check_tool_response(tr)
            if checked is None:
                return None
            if checked is not tr:
                message = ClientMessage(tool_response=checked)
            tool_ids = tuple(r.id for r in checked.function_responses if isinstance(r.id, str))
        else:
            kind = Kind.CONTEXT_UPDATE
        return self._submit(encode_client(message), kind, now, turn_end, audio_s, tool_ids)

    def _check_tool_response(self, msg: ToolResponse) -> ToolResponse | None:
        """Every id answers a pending call, once; answers to forgotten calls are dropped.

        Returns the message to send (possibly with fewer responses, or adapted to the
        endpoint), or None if nothing is left. Answers clear their ids.
        """
        keep: list[FunctionResponse] = []
        seen: set[str] = set()
        changed = False
        for resp in msg.function_responses:
            rid = resp.id if resp.id is not UNSET and resp.id else None
            if rid is None:
                if self.api == "gemini":
                    raise ConfigError(f"function response for {resp.name!r} has no id")
                keep.append(resp)
                continue
            if rid in self._stale_tool_ids or rid in self._cancelled_ids:
                self.stats.stale_tool_responses_dropped += 1
                logger.warning(
                    "not sending the tool response for call %s (%s): the call was %s",
                    rid,
                    resp.name,
                    "cancelled by the server"
                    if rid in self._cancelled_ids
                    else "made in a session state the service no longer has",
                )
                changed = True
                continue
            if rid in seen:
                raise UnknownToolCallError(f"tool call {rid!r} is answered twice in one message")
            if rid not in self.pending_tool_calls:
                raise UnknownToolCallError(
                    f"no pending tool call has id {rid!r} (unknown or already answered); "
                    "nothing was sent"
                )
            seen.add(rid)
            # Endpoint and model rules (e.g. no willContinue / scheduling on Vertex).
            adapted = adapt_function_response(self._setup.model, resp, vertex=self.api == "vertex")
            if adapted is not resp:
                resp = adapted
                changed = True
            keep.append(resp)
        for resp in keep:
            rid = resp.id if resp.id is not UNSET and resp.id else None
            if rid is not None and resp.will_continue is not True:
                # The epoch stays until a handle covers the call: a resume from an older
                # handle must still know the call (and its answer) are gone.
                self.pending_tool_calls.pop(rid, None)
        if not keep:
            return None
        return ToolResponse(function_responses=keep) if changed else msg

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
                self._model_started()
            return fast
        msg, events = decode_frame(data)
        sc = msg.server_content
        if sc is not UNSET:
            if (
                sc.model_turn is not UNSET or sc.output_transcription is not UNSET
            ) and not self._generating:
                self._model_started()
            if sc.interrupted is True:
                self._generating = False
            if sc.turn_complete is True:
                self._generating = sc.interaction_status == "IN_PROGRESS"
                conn.turns_completed += 1
                if not self.resumption_enabled:
                    # No handles will come: a completed turn is the only acknowledgement.
                    self._cover_by_handle(now)
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
                self._model_started()
            # The model now waits for the answer: what comes after it is a new response.
            self._generating = False
            for call in tc.function_calls if tc.function_calls is not UNSET else ():
                if call.id is not UNSET:
                    self.pending_tool_calls[call.id] = call.name if call.name is not UNSET else ""
                    self._call_epoch[call.id] = self._handle_epoch
        tcc = msg.tool_call_cancellation
        if tcc is not UNSET:
            for i in tcc.ids if tcc.ids is not UNSET else ():
                if self.pending_tool_calls.pop(i, None) is not None:
                    self._cancelled_ids.add(i)
                self._call_epoch.pop(i, None)
        sru = msg.session_resumption_update
        if sru is not UNSET and sru.resumable is True and sru.new_handle:
            self.resume_handle = sru.new_handle
            self._handle_epoch += 1
            pending = self.pending_tool_calls
            self._call_epoch = {i: e for i, e in self._call_epoch.items() if i in pending}
            idx = sru.last_consumed_client_message_index
            if self.transparent and idx is not UNSET:
                self._acknowledge_index(idx)
            elif not self.transparent:
                self._cover_by_handle(now)
        ga = msg.go_away
        if ga is not UNSET:
            for ev in events:
                left = getattr(ev, "time_left", None)
                if isinstance(left, float):
                    conn.go_away_deadline = now + left
                    logger.info("goAway: the service ends this connection in %.1f s", left)
        if msg.setup_complete is not UNSET:
            return self._on_setup_complete(conn, events, now)
        return events

    def _model_started(self) -> None:
        self._generating = True
        if self._awaiting_response:
            # A new model turn after the latest user turn: the service read that turn.
            self._awaiting_response = False
            self._responded_seq = self._last_turn_end_seq

    def _on_setup_complete(self, conn: Connection, events: list[Event], now: float) -> list[Event]:
        if conn.state is not State.SETUP_SENT:
            logger.warning("setupComplete received in state %s; ignored", conn.state.value)
            return [e for e in events if not isinstance(e, SetupComplete)]
        conn.state = State.OPEN
        conn.opened_at = now
        if conn.setup_sent_at is not None:
            self._max_setup_rtt = max(self._max_setup_rtt, now - conn.setup_sent_at)
        for ev in events:
            if isinstance(ev, SetupComplete) and ev.session_id:
                self.session_id = ev.session_id
        reconnected = self.ever_open
        restored = conn.resuming
        if conn.resuming:
            self.stats.resumed += 1
            # Calls made after the handle we resumed from are gone with the rest.
            stale = [i for i, e in self._call_epoch.items() if e >= self._handle_epoch]
        elif reconnected:
            # A fresh session after a loss: the server knows nothing of earlier calls.
            self.stats.fresh_sessions_after_loss += 1
            stale = list(self.pending_tool_calls)
        else:
            stale = []
        for i in stale:
            self.pending_tool_calls.pop(i, None)
            self._call_epoch.pop(i, None)
            self._stale_tool_ids.add(i)
        self.ever_open = True
        self.stats.opens += 1
        self._generating = False
        self._awaiting_response = False
        if reconnected:
            self._requeue_window()
        seed, turns = self._seed, self._seed_turns
        self._seed, self._seed_setup, self._seed_turns = [], None, 0
        for out in reversed(seed):
            self._pending.appendleft(out)
            self._pending_bytes += len(out[_F])
        if reconnected:
            at = next(
                (k for k, e in enumerate(events) if isinstance(e, SetupComplete)), len(events) - 1
            )
            resumed = Resumed(restored, reseeded=bool(seed), turns=turns if seed else 0)
            events = [*events[: at + 1], resumed, *events[at + 1 :]]
        return events

    def _requeue_window(self) -> None:
        """Put every written, uncovered frame back in front of the queue (re-send)."""
        resend: list[_Rec] = []
        for out in self._window:
            if (
                out[_K] == _TOOL_RESPONSE
                and out[_TI]
                and all(i in self._stale_tool_ids for i in out[_TI])
            ):
                self.stats.stale_tool_responses_dropped += 1
                continue
            resend.append(out)
        self._window.clear()
        self._window_audio_s = 0.0
        self._window_video = 0
        self._window_bytes = 0
        if not resend:
            return
        self.stats.replayed_frames += len(resend)
        for out in reversed(resend):
            self._pending.appendleft(out)
            self._pending_bytes += len(out[_F])
        logger.info("re-sending %d frames written after the last acknowledged point", len(resend))

    def will_resume(self) -> bool:
        """Whether the next setup resumes (a handle is known and resumption is on)."""
        return self.resumption_enabled and self.resume_handle is not None

    def set_seed(self, setup: Setup | None, messages: Sequence[ClientMessage], turns: int) -> None:
        """History for the next connection, a fresh session: ``setup`` replaces the setup
        of that connection (e.g. with ``historyConfig``), ``messages`` go out right after
        its ``setupComplete``, before anything else."""
        self._seed_setup = setup
        self._seed = []
        for msg in messages:
            self._seq += 1
            self._seed.append(_rec(encode_client(msg), Kind.SEED, self._seq, False))
        self._seed_turns = turns

    def resend_texts(self) -> list[str]:
        """Texts that the next connection writes again (window and queue), oldest first."""
        out = []
        for item in (*self._window, *self._unconfirmed, *self._pending):
            if item[_K] == _TEXT:
                obj = msgspec.json.decode(item[_F])
                text = obj.get("realtimeInput", {}).get("text")
                if isinstance(text, str):
                    out.append(text)
        return out

    def resume_rejected(self) -> None:
        """The last resume attempt failed (stale handle): the next setup starts fresh."""
        self.resume_handle = None

    def start_closing(self) -> None:
        """We are closing the current connection on purpose (rotation or close())."""
        if self._conn is not None and self._conn.state is not State.CLOSED:
            self._conn.state = State.CLOSING

    def connection_lost(self, code: int, reason: str, *, local: bool = False) -> ServiceError:
        """The socket ended. Returns the typed error describing why (never raises it).

        Frames handed out but not confirmed go back to the queue.
        """
        phase = self.phase
        self.unwritten()
        if self._conn is not None:
            self._conn.state = State.CLOSED
        return classify_close(code, reason, phase=phase, session_id=self.session_id, local=local)

    def discard_queue(self) -> int:
        """The session is over: forget what was never written; returns how many frames."""
        n = len(self._pending) + len(self._unconfirmed)
        self._pending.clear()
        self._unconfirmed.clear()
        self._pending_bytes = 0
        return n


# The kinds as plain ints, as the records hold them.
_AUDIO: Final = int(Kind.AUDIO)
_VIDEO: Final = int(Kind.VIDEO)
_TEXT: Final = int(Kind.TEXT)
_TOOL_RESPONSE: Final = int(Kind.TOOL_RESPONSE)
_SEED: Final = int(Kind.SEED)


def _b64_len(frame: bytes, payload: int) -> int:
    """Decoded size of the base64 payload that ends 4 bytes before the frame's end."""
    end = len(frame) - 4
    pad = (frame[end - 1] == 0x3D) + (frame[end - 2] == 0x3D)  # '='
    return payload // 4 * 3 - pad


_TURN_END_KINDS: Final = frozenset(
    (Kind.TEXT, Kind.ACTIVITY_END, Kind.AUDIO_STREAM_END, Kind.TOOL_RESPONSE)
)
