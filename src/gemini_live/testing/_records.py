"""What the fake server remembers and what tests read: options, sessions, connections."""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypedDict, overload

from gemini_live._limits import MAX_MESSAGE_SIZE
from gemini_live.testing._canned import CANCELLED, EndpointKind
from gemini_live.testing._cassette_read import Cassette
from gemini_live.testing.script import Script
from gemini_live.types import ClientMessage, Setup

__all__ = [
    "DEFAULT_MAX_RECORDED_AUDIO",
    "DEFAULT_MAX_RECORDED_FRAMES",
    "ConnectionRecord",
    "Conversation",
    "FrameLog",
    "ServerOptions",
    "ServerOptionsKw",
    "SessionState",
    "ToolScript",
]


#: Frames kept per direction per connection when the server records frames.
DEFAULT_MAX_RECORDED_FRAMES: Final = 10_000
#: Bytes of decoded input audio kept per connection (about 35 min of 16 kHz PCM16).
DEFAULT_MAX_RECORDED_AUDIO: Final = 64 * 1024 * 1024


class FrameLog(Sequence[bytes]):
    """The most recent frames of one direction, at most ``maxlen`` (a ring).

    Reads like a list (``len``, indexes, slices, iteration); :attr:`dropped` counts the
    older frames that made room, :attr:`total` every frame ever appended.
    """

    __slots__ = ("_frames", "dropped", "total")

    def __init__(self, maxlen: int | None = DEFAULT_MAX_RECORDED_FRAMES) -> None:
        self._frames: deque[bytes] = deque(maxlen=maxlen)
        #: Frames pushed out of the ring so far.
        self.dropped = 0
        #: Frames appended so far (kept or not).
        self.total = 0

    @property
    def maxlen(self) -> int | None:
        return self._frames.maxlen

    def append(self, frame: bytes) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)
        self.total += 1

    def clear(self) -> None:
        self._frames.clear()

    def __len__(self) -> int:
        return len(self._frames)

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return list(self._frames)[index]
        return self._frames[index]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._frames)

    def __repr__(self) -> str:
        return f"FrameLog({len(self)} frames, dropped={self.dropped}, maxlen={self.maxlen})"


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


@dataclass(frozen=True)
class ServerOptions:
    """Every option of :class:`~gemini_live.testing.FakeLiveServer` (see its docstring)."""

    require_api_key: str | None = None
    require_token: str | None = None
    require_bearer: str | None = None
    resumable: bool = True
    transparent: bool = False
    setup_delay: float = 0.0
    send_setup_complete: bool = True
    reject_setup: tuple[int, str] | None = None
    reply_chunks: int = 3
    #: Seconds between two reply audio chunks; > 0 generates replies in the background.
    chunk_interval: float = 0.0
    go_away_after_messages: int | None = None
    go_away_after_seconds: float | None = None
    go_away_time_left: float = 1.0
    #: How the connection ends when a ``goAway`` deadline runs out.
    go_away_close: tuple[int, str] = (1000, CANCELLED)
    #: Refuse a resume while another connection of the session is still open.
    reject_resume_while_open: bool = False
    tool_triggers: Mapping[str, ToolScript] = field(default_factory=dict)
    #: Scripted turns (tried before ``tool_triggers``).
    script: Script | None = None
    auto_reply: bool = True
    validate_frames: bool = False
    record_frames: bool = True
    #: With ``record_frames``: frames kept per direction per connection (oldest dropped).
    max_recorded_frames: int = DEFAULT_MAX_RECORDED_FRAMES
    #: Bytes of decoded input audio kept per connection on ``record.audio`` (oldest
    #: dropped; 0 keeps none).
    max_recorded_audio: int = DEFAULT_MAX_RECORDED_AUDIO
    #: Keep the audio payloads of messages in ``received`` (off: audio-only messages are
    #: stored as one shared payload-less message, so long streams do not grow memory).
    keep_audio_payloads: bool = True
    auth_on_connect: bool = False
    ack_every: int = 1
    int64_as_string: bool = True
    #: Server-side activity detection (energy-based, on audio time).
    vad: bool = True
    #: Send ``voiceActivity`` ACTIVITY_START / ACTIVITY_END events.
    voice_activity: bool = False
    #: Pace reply audio by the client's input audio (one 40 ms chunk per 40 ms heard).
    paced_by_input: bool = False
    #: Hold ``turnComplete`` until the reply's audio would have played (wall clock).
    assumed_playback: bool = False
    #: Extra seconds before every server frame (``--latency``).
    latency: float = 0.0
    #: Replay this cassette's server side instead of playing a model.
    cassette: Cassette | None = None
    #: Keep the recorded gaps between server frames (capped at 2 s) when replaying.
    replay_timing: bool = False
    #: How a replay matches client messages: ``"kind"`` (kind and order) or ``"strict"``
    #: (payloads of non-streamed messages too, a diff when they differ).
    cassette_match: Literal["kind", "strict"] = "kind"
    compression: bool = False
    max_size: int | None = MAX_MESSAGE_SIZE
    #: TCP port to listen on (0: any free port).
    port: int = 0


class ServerOptionsKw(TypedDict, total=False):
    """Keyword form of :class:`ServerOptions` (for ``FakeLiveServer(**options)``)."""

    require_api_key: str | None
    require_token: str | None
    require_bearer: str | None
    resumable: bool
    transparent: bool
    setup_delay: float
    send_setup_complete: bool
    reject_setup: tuple[int, str] | None
    reply_chunks: int
    chunk_interval: float
    go_away_after_messages: int | None
    go_away_after_seconds: float | None
    go_away_time_left: float
    go_away_close: tuple[int, str]
    reject_resume_while_open: bool
    tool_triggers: Mapping[str, ToolScript]
    script: Script | None
    auto_reply: bool
    validate_frames: bool
    record_frames: bool
    max_recorded_frames: int
    max_recorded_audio: int
    keep_audio_payloads: bool
    auth_on_connect: bool
    ack_every: int
    int64_as_string: bool
    vad: bool
    voice_activity: bool
    paced_by_input: bool
    assumed_playback: bool
    latency: float
    cassette: Cassette | None
    replay_timing: bool
    cassette_match: Literal["kind", "strict"]
    compression: bool
    max_size: int | None
    port: int


@dataclass(slots=True)
class PendingCall:
    id: str
    name: str
    group: int
    non_blocking: bool
    partials: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The model's conversation state at the moment a resumption handle was issued."""

    log_len: int
    history_len: int
    user_texts_len: int
    answers_len: int
    audio_ms: float
    pending_audio_ms: float
    utterances: int
    user_turns: int
    fired: dict[int, int]
    turns: int
    prompt_tokens: int
    response_tokens: int
    pending_calls: dict[str, PendingCall]
    cancelled_calls: frozenset[str]
    results: dict[int, list[tuple[str, Any, str | None]]]


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the fake model's conversation state holds for one logical session.

    Read it with :meth:`FakeLiveServer.conversation`. It is the state a resumption
    restores: input consumed after the handle a client resumed from is not in it, so a
    test can see exactly what a client lost (or sent twice).
    """

    session_id: str
    #: User texts the model consumed, in order (``realtimeInput.text`` and the text of
    #: user turns in ``clientContent``).
    user_texts: tuple[str, ...]
    #: Milliseconds of input audio the model consumed (answered or not yet).
    audio_ms: float
    #: What the model answered, one entry per reply turn: an interrupted reply holds only
    #: the part the user got (sent, or with ``assumed_playback`` played by the time of the
    #: barge-in), not the whole sentence.
    answers: tuple[str, ...]
    #: ``(role, text)`` per turn, user and model, in order.
    history: tuple[tuple[str, str], ...]
    #: Every client message in the state (setup excluded), in the order consumed.
    messages: tuple[ClientMessage, ...]
    #: Completed model turns.
    turns: int
    #: What the model generated, one entry per reply turn, whole even when a barge-in cut
    #: it (same length as :attr:`answers`).
    generated: tuple[str, ...] = ()


@dataclass(eq=False)
class SessionState:
    """Server-side state of one logical session (survives resumption)."""

    session_id: str
    #: ``(role, text)`` per turn, user and model, in order.
    history: list[tuple[str, str]] = field(default_factory=list)
    user_texts: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    #: The whole text of each answer (``answers`` holds what the user got of it).
    generated: list[str] = field(default_factory=list)
    #: All input audio consumed, ms.
    audio_ms: float = 0.0
    #: Input audio consumed since the last user turn ended, ms.
    pending_audio_ms: float = 0.0
    #: User utterances (audio turns) so far.
    utterances: int = 0
    #: User turns (text or audio) so far.
    user_turns: int = 0
    #: How often each script rule fired (rule index -> count).
    fired: dict[int, int] = field(default_factory=dict)
    #: Completed model turns.
    turns: int = 0
    prompt_tokens: int = 0
    response_tokens: int = 0
    #: Every handle issued for this session, oldest first.
    handles: list[str] = field(default_factory=list)
    #: Indexes into ``FakeLiveServer.connections`` of the connections that served it.
    connections: list[int] = field(default_factory=list)
    pending_calls: dict[str, PendingCall] = field(default_factory=dict)
    cancelled_calls: set[str] = field(default_factory=set)
    #: ``(connection index, message index)`` of every client message in the session state.
    log: list[tuple[int, int]] = field(default_factory=list)
    #: Tool results collected per call group until the group is complete.
    results: dict[int, list[tuple[str, Any, str | None]]] = field(default_factory=dict)

    def blocking_pending(self) -> bool:
        return any(not c.non_blocking for c in self.pending_calls.values())

    def snapshot(self) -> Snapshot:
        return Snapshot(
            log_len=len(self.log),
            history_len=len(self.history),
            user_texts_len=len(self.user_texts),
            answers_len=len(self.answers),
            audio_ms=self.audio_ms,
            pending_audio_ms=self.pending_audio_ms,
            utterances=self.utterances,
            user_turns=self.user_turns,
            fired=dict(self.fired),
            turns=self.turns,
            prompt_tokens=self.prompt_tokens,
            response_tokens=self.response_tokens,
            pending_calls=copy.deepcopy(self.pending_calls),
            cancelled_calls=frozenset(self.cancelled_calls),
            results=copy.deepcopy(self.results),
        )

    def restore(self, snap: Snapshot) -> list[tuple[int, int]]:
        """Go back to ``snap``; return the log entries (messages) that were forgotten."""
        forgotten = self.log[snap.log_len :]
        del self.log[snap.log_len :]
        del self.history[snap.history_len :]
        del self.user_texts[snap.user_texts_len :]
        del self.answers[snap.answers_len :]
        del self.generated[snap.answers_len :]
        self.audio_ms = snap.audio_ms
        self.pending_audio_ms = snap.pending_audio_ms
        self.utterances = snap.utterances
        self.user_turns = snap.user_turns
        self.fired = dict(snap.fired)
        self.turns = snap.turns
        self.prompt_tokens = snap.prompt_tokens
        self.response_tokens = snap.response_tokens
        self.pending_calls = copy.deepcopy(snap.pending_calls)
        self.cancelled_calls = set(snap.cancelled_calls)
        self.results = copy.deepcopy(snap.results)
        return forgotten


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
    #: The raw client frames (when the server records frames; the most recent
    #: ``max_recorded_frames``, ``raw_received.dropped`` counts the others).
    raw_received: FrameLog = field(default_factory=FrameLog)
    #: The frames the server sent (when the server records frames; a ring as above).
    sent: FrameLog = field(default_factory=FrameLog)
    #: Realtime input audio, decoded (the most recent ``max_recorded_audio`` bytes;
    #: :attr:`audio_dropped` counts the others).
    audio: bytearray = field(default_factory=bytearray)
    #: Bytes of realtime input audio received, kept or not.
    audio_bytes: int = 0
    #: Bytes of input audio dropped from :attr:`audio` by its bound.
    audio_dropped: int = 0
    setup: Setup | None = None
    session_id: str | None = None
    #: The handle this connection resumed from, or None for a fresh session.
    resumed_from: str | None = None
    setup_completed: bool = False
    #: When a ``goAway`` was sent (loop time), or None.
    go_away_at: float | None = None
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
    def frames_dropped(self) -> int:
        """Frames (both directions) pushed out of :attr:`raw_received` / :attr:`sent`."""
        return self.raw_received.dropped + self.sent.dropped

    def add_audio(self, data: bytes, limit: int) -> None:
        """Count ``data`` and keep it in :attr:`audio`, dropping the oldest bytes beyond
        ``limit`` (a quarter of ``limit`` more at once, so the buffer is moved rarely)."""
        self.audio_bytes += len(data)
        if limit <= 0:
            self.audio_dropped += len(data)
            return
        audio = self.audio
        audio += data
        if len(audio) > limit:
            cut = min(len(audio), len(audio) - limit + limit // 4)
            del audio[:cut]
            self.audio_dropped += cut

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

    def mark_closed(self, code: int, reason: str) -> None:
        """Book the end of the connection (once) and wake :meth:`wait_closed`."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.processed = len(self.received)
        self._closed.set()

    async def wait_closed(self, within: float = 5.0) -> tuple[int, str]:
        """Wait (bounded) until the connection ended; return ``(code, reason)``."""
        async with asyncio.timeout(within):
            await self._closed.wait()
        assert self.close_code is not None
        return self.close_code, self.close_reason or ""
