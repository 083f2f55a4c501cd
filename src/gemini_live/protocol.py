"""Sans-I/O client core of the Live protocol. No asyncio, no sockets, no clock.

A :class:`ClientProtocol` lives as long as a *session* and sees a series of *connections*.
The I/O layer (``gemini_live.session``) drives it:

1. :meth:`ClientProtocol.connection_made` when a socket opened;
   :meth:`ClientProtocol.setup_frame` gives the first frame to write.
2. :meth:`ClientProtocol.receive` for every frame read; it returns the events and updates
   the state (``setupComplete`` opens the connection, handles and goAway are recorded).
3. :meth:`ClientProtocol.frame_sent` for every client frame written after the setup (it
   numbers them and keeps them for transparent replay); :meth:`ClientProtocol.check_send`
   refuses a send in the wrong state before anything is written.
4. :meth:`ClientProtocol.connection_lost` when the socket ended; it returns the typed error.

States per connection: ``IDLE -> CONNECTING -> SETUP_SENT -> OPEN -> CLOSING -> CLOSED``.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from dataclasses import dataclass
from typing import Literal

from gemini_live.audio import OUTPUT_RATE
from gemini_live.codec import decode_frame, encode_client, fast_audio
from gemini_live.errors import (
    ConfigError,
    Phase,
    ProtocolStateError,
    ServiceError,
    classify_close,
)
from gemini_live.events import (
    Event,
    GoAway,
    ModelAudio,
    SessionResumptionUpdate,
    SetupComplete,
    ToolCall,
    ToolCallCancellation,
)
from gemini_live.types import (
    UNSET,
    ClientMessage,
    SessionResumptionConfig,
    Setup,
    ToolResponse,
)

__all__ = ["ApiKind", "ClientProtocol", "State", "validate_setup"]

logger = logging.getLogger("gemini_live.protocol")

ApiKind = Literal["gemini", "vertex", "custom"]


class State(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    SETUP_SENT = "setup_sent"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


def validate_setup(setup: Setup, api: ApiKind) -> None:
    """Reject settings the chosen endpoint does not accept, before anything is sent."""
    if not setup.model:
        raise ConfigError("setup.model is required")
    if api == "gemini":
        sr = setup.session_resumption
        if sr is not UNSET and sr.transparent is True:
            raise ConfigError(
                "sessionResumption.transparent is only accepted by Vertex AI, not the Gemini API"
            )
        if setup.explicit_vad_signal is not UNSET:
            raise ConfigError("explicitVadSignal is only accepted by Vertex AI")
        if not setup.model.startswith(("models/", "tunedModels/")):
            raise ConfigError(
                f"on the Gemini API the model must look like 'models/<id>', got {setup.model!r}"
            )
    cwc = setup.context_window_compression
    if cwc is not UNSET:
        if cwc.sliding_window is UNSET:
            raise ConfigError(
                "contextWindowCompression needs slidingWindow (use SlidingWindow() for defaults)"
            )
        target = cwc.sliding_window.target_tokens
        if cwc.trigger_tokens is not UNSET and target is not UNSET and target >= cwc.trigger_tokens:
            raise ConfigError("slidingWindow.targetTokens must be below triggerTokens")
    gc = setup.generation_config
    if gc is not UNSET and gc.response_modalities is not UNSET and len(gc.response_modalities) != 1:
        raise ConfigError("responseModalities takes exactly one modality per session")


@dataclass
class _Connection:
    """Per-connection bookkeeping (reset on every reconnect)."""

    state: State = State.CONNECTING
    resuming: bool = False
    next_index: int = 1  # the setup is index 0
    go_away_deadline: float | None = None


@dataclass
class ProtocolStats:
    connections: int = 0
    opens: int = 0
    resumed: int = 0
    fresh_after_loss: int = 0
    replayed_frames: int = 0
    stale_tool_responses_dropped: int = 0
    frames_sent: int = 0
    frames_received: int = 0


class ClientProtocol:
    """The client side of one Live session across any number of connections.

    ``api`` selects endpoint rules ("gemini" refuses Vertex-only fields). With
    ``transparent=True`` (Vertex) every frame after the setup is kept until the server
    acknowledges it with ``lastConsumedClientMessageIndex`` and replayed after a resume.
    """

    def __init__(
        self,
        setup: Setup,
        *,
        api: ApiKind = "gemini",
        resume_handle: str | None = None,
        request_resumption: bool = True,
    ) -> None:
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
        #: Tool call ids the model is waiting on (id -> function name).
        self.pending_tool_calls: dict[str, str] = {}
        self._blocking_names: set[str] = set()
        self._stale_tool_ids: set[str] = set()
        self._tools_since_handle = False
        #: (index on the current connection, frame) for frames not yet acknowledged.
        self._replay: deque[tuple[int, bytes]] = deque()
        self._conn: _Connection | None = None
        self.stats = ProtocolStats()
        self.ever_open = False
        if setup.tools is not UNSET:
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
    def go_away_deadline(self) -> float | None:
        """Monotonic time (in the caller's clock) when the server will cut the connection."""
        return self._conn.go_away_deadline if self._conn is not None else None

    @property
    def has_pending_blocking_call(self) -> bool:
        """True if a call to a BLOCKING function is still unanswered."""
        if not self.pending_tool_calls:
            return False
        if not self._blocking_names:
            # Behaviour unknown: treat every pending call as blocking (the safe choice).
            return True
        return any(name in self._blocking_names for name in self.pending_tool_calls.values())

    @property
    def should_wait_before_rotating(self) -> bool:
        """True while resuming now would lose tool state.

        That is while a BLOCKING call is unanswered, or while the newest resumable handle
        predates the latest tool call or answer (resuming from it would forget them).
        """
        return self.has_pending_blocking_call or (
            self._tools_since_handle and self.resumption_enabled
        )

    @property
    def unacknowledged(self) -> int:
        """Frames kept for transparent replay."""
        return len(self._replay)

    def update_setup(self, setup: Setup) -> None:
        """Use ``setup`` for the next connection (everything but the model may change)."""
        if setup.model != self._setup.model:
            raise ConfigError("the model cannot change within a session")
        validate_setup(setup, self.api)
        self._setup = setup
        self._note_blocking(setup)

    def _note_blocking(self, setup: Setup) -> None:
        names: set[str] = set()
        for tool in setup.tools if setup.tools is not UNSET else []:
            for decl in (
                tool.function_declarations if tool.function_declarations is not UNSET else []
            ):
                if decl.behavior != "NON_BLOCKING":
                    names.add(decl.name)
        self._blocking_names = names

    # -- connection lifecycle -------------------------------------------------------------

    def connection_made(self) -> None:
        """A new socket is open (the previous one, if any, must be closed)."""
        if self._conn is not None and self._conn.state not in (State.CLOSED,):
            raise ProtocolStateError("previous connection is not closed yet")
        self._conn = _Connection()
        self.stats.connections += 1

    def setup_frame(self) -> bytes:
        """The setup frame for the current connection, with the resume handle injected."""
        conn = self._require(State.CONNECTING)
        setup = self._setup
        if self.resumption_enabled:
            sr = setup.session_resumption
            base = sr if sr is not UNSET else SessionResumptionConfig()
            handle: str | object = self.resume_handle if self.resume_handle else UNSET
            new_sr = SessionResumptionConfig(
                handle=handle if isinstance(handle, str) else UNSET,
                transparent=base.transparent,
            )
            setup = _replace_resumption(setup, new_sr)
            conn.resuming = self.resume_handle is not None
        frame = encode_client(ClientMessage(setup=setup))
        conn.state = State.SETUP_SENT
        return frame

    def receive(self, data: bytes | bytearray | memoryview | str, now: float = 0.0) -> list[Event]:
        """Decode one server frame and apply it. ``now`` is the caller's monotonic time."""
        conn = self._conn
        if conn is None or conn.state in (State.IDLE, State.CONNECTING, State.CLOSED):
            raise ProtocolStateError(f"frame received in state {self.state.value}")
        self.stats.frames_received += 1
        pcm = fast_audio(data)
        if pcm is not None:
            return [ModelAudio(pcm, OUTPUT_RATE)]
        msg, events = decode_frame(data)
        if (
            msg.setup_complete is UNSET
            and msg.session_resumption_update is UNSET
            and msg.go_away is UNSET
            and msg.tool_call is UNSET
            and msg.tool_call_cancellation is UNSET
        ):
            return events  # content only (audio, text, transcripts): no state to update
        for ev in events:
            match ev:
                case SetupComplete(session_id=sid):
                    self._on_setup_complete(conn, sid)
                case SessionResumptionUpdate(handle=h, resumable=r, last_consumed_index=idx):
                    if r and h:
                        self.resume_handle = h
                        self._tools_since_handle = False
                        # The index belongs to this handle's checkpoint: frames after it
                        # are not in the state a resume restores, so they stay for replay.
                        if idx is not None:
                            self._acknowledge(idx)
                case GoAway(time_left=left):
                    conn.go_away_deadline = now + left
                case ToolCall(calls=calls):
                    self._tools_since_handle = True
                    for call in calls:
                        if call.id is not UNSET:
                            self.pending_tool_calls[call.id] = (
                                call.name if call.name is not UNSET else ""
                            )
                case ToolCallCancellation(ids=ids):
                    for i in ids:
                        self.pending_tool_calls.pop(i, None)
                case _:
                    pass
        return events

    def _on_setup_complete(self, conn: _Connection, sid: str | None) -> None:
        if conn.state is not State.SETUP_SENT:
            logger.warning("setupComplete received in state %s; ignored", conn.state.value)
            return
        conn.state = State.OPEN
        if sid:
            self.session_id = sid
        if conn.resuming:
            self.stats.resumed += 1
        elif self.ever_open:
            # A fresh session after a loss: the server knows nothing of earlier calls.
            self.stats.fresh_after_loss += 1
            self._stale_tool_ids.update(self.pending_tool_calls)
            self.pending_tool_calls.clear()
            self._replay.clear()
        self.ever_open = True
        self.stats.opens += 1

    @property
    def ever_reconnected(self) -> bool:
        """True once a connection after the first successful one completed its setup."""
        return self.stats.opens > 1

    @property
    def state_restored(self) -> bool:
        """Whether the current connection resumed the previous session's state."""
        return self._conn is not None and self._conn.resuming

    def resume_rejected(self) -> None:
        """The last resume attempt failed (stale handle): the next setup starts fresh."""
        self.resume_handle = None

    def replay_frames(self) -> list[bytes]:
        """After a transparent resume: the unacknowledged frames, renumbered on this connection.

        The caller writes them in order before anything new; they are kept again until
        acknowledged on this connection.
        """
        conn = self._require(State.OPEN)
        if not self.transparent or not conn.resuming:
            return []
        frames = [frame for _, frame in self._replay]
        self._replay.clear()
        self.stats.replayed_frames += len(frames)
        for frame in frames:
            self._record(conn, frame)
        return frames

    def check_send(self) -> None:
        """Raise ProtocolStateError unless the connection is open for client frames."""
        if self._conn is None or self._conn.state is not State.OPEN:
            raise ProtocolStateError(
                f"cannot send in state {self.state.value}: wait for setupComplete"
            )

    def filter_tool_response(self, msg: ToolResponse) -> ToolResponse | None:
        """Drop answers to calls made before a fresh (non-resumed) session began.

        Returns the message to send (possibly with fewer responses), or None if nothing is
        left. Answers for pending ids clear them.
        """
        keep = []
        for resp in msg.function_responses:
            rid = resp.id if resp.id is not UNSET else None
            if rid is not None and rid in self._stale_tool_ids:
                self.stats.stale_tool_responses_dropped += 1
                logger.warning(
                    "dropping tool response for call %s (%s): the call belongs to a session "
                    "that could not be resumed",
                    rid,
                    resp.name,
                )
                if resp.will_continue is not True:
                    self._stale_tool_ids.discard(rid)
                continue
            if rid is not None and resp.will_continue is not True:
                self.pending_tool_calls.pop(rid, None)
            keep.append(resp)
        if keep:
            self._tools_since_handle = True
        if not keep:
            return None
        if len(keep) == len(msg.function_responses):
            return msg
        return ToolResponse(function_responses=keep)

    def frame_sent(self, frame: bytes) -> None:
        """Record a client frame written on the current (open) connection."""
        conn = self._require(State.OPEN)
        self._record(conn, frame)

    def _record(self, conn: _Connection, frame: bytes) -> None:
        idx = conn.next_index
        conn.next_index = idx + 1
        self.stats.frames_sent += 1
        if self.transparent:
            self._replay.append((idx, frame))

    def _acknowledge(self, index: int) -> None:
        replay = self._replay
        while replay and replay[0][0] <= index:
            replay.popleft()

    def start_closing(self) -> None:
        """We are closing the current connection on purpose (rotation or close())."""
        if self._conn is not None and self._conn.state is not State.CLOSED:
            self._conn.state = State.CLOSING

    def connection_lost(self, code: int, reason: str, *, local: bool = False) -> ServiceError:
        """The socket ended. Returns the typed error describing why (never raises it)."""
        phase = self.phase
        if self._conn is not None:
            self._conn.state = State.CLOSED
        err = classify_close(code, reason, phase=phase, session_id=self.session_id, local=local)
        return err

    def _require(self, state: State) -> _Connection:
        conn = self._conn
        if conn is None or conn.state is not state:
            raise ProtocolStateError(f"expected state {state.value}, in {self.state.value}")
        return conn


def _replace_resumption(setup: Setup, sr: SessionResumptionConfig) -> Setup:
    import msgspec

    return msgspec.structs.replace(setup, session_resumption=sr)
