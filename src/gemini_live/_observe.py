"""The session's bookkeeping: usage, latency, history and the interaction watchdog.

One :class:`SessionRecord` per session sees every frame the current connection delivers
and everything the app sends, and keeps the meters (:mod:`gemini_live.metrics`), the
bounded conversation history (:mod:`gemini_live.history`) and the watchdog
(:mod:`gemini_live.watchdog`) up to date. Frames take one of three paths (ADR 31), all
here, tested against each other (``tests/session/test_frame_paths.py``):

1. the *hot* path: a frame that is one audio chunk (most frames of a spoken reply) —
   counted and emitted, nothing else can change;
2. the *stream* path: audio and output transcription only — the same bookkeeping per
   event, without the lifecycle checks (nothing here can end a turn, arm the watchdog or
   change a rotation);
3. the *general* path: everything else — bookkeeping, then the session's lifecycle
   handling (``setupComplete``, ``Resumed``, the rotation) and the fan-out.

It also chooses the seed of a fresh session (:meth:`SessionRecord.prepare_seed`): the
history, without the texts the next connection writes again anyway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from gemini_live import events as ev
from gemini_live._pcm import OUTPUT_RATE
from gemini_live.codec import _fast_parts
from gemini_live.config import SessionConfig
from gemini_live.errors import GeminiLiveError
from gemini_live.history import History
from gemini_live.metrics import (
    LatencyTracker,
    TurnLatency,
    UsageMeter,
    observe,
    observe_audio,
    observe_input,
    observe_transcript,
)
from gemini_live.protocol import ClientProtocol
from gemini_live.protocol._state import SessionStats, State
from gemini_live.types import UNSET, Content, FunctionResponse
from gemini_live.watchdog import InteractionWatchdog

__all__ = ["SessionRecord"]

_ModelAudio = ev.ModelAudio
_OutputTranscription = ev.OutputTranscription
_OPEN = State.OPEN
_monotonic = time.monotonic
_OUTPUT_RATE = OUTPUT_RATE
#: Event types a frame may hold and still take the stream path.
_STREAM_TYPES = frozenset((ev.ModelAudio, ev.OutputTranscription))


def _is_stream(events: list[ev.Event]) -> bool:
    for event in events:
        if type(event) not in _STREAM_TYPES:
            return False
    return bool(events)


class _Link(Protocol):
    """A connection's handler, as its frame callback sees it (:meth:`SessionRecord.receiver`)."""

    last_rx: float

    @property
    def info(self) -> object | None: ...


class _Debug(Protocol):
    """Whether frames are logged at DEBUG (read once per connection by its owner)."""

    debug: bool


class SessionRecord:
    """Usage, latency, history and watchdog of one session, fed by every frame and send.

    ``emit`` hands an event to the session's consumers; ``lifecycle(events, now)`` is the
    session's handling of a general-path frame (it emits those events itself).
    """

    # Not sorted: what a reply's hot path reads (and ``input_at``, which every input sent
    # writes) first, next to the object's header: fewer cache lines per message where
    # hundreds of sessions take turns (issue 24).
    __slots__ = (  # noqa: RUF023
        "_answering",
        "usage",
        "watchdog",
        "_emit",
        "input_at",
        "history",
        "_debug",
        "latency",
        "_config",
        "_lifecycle",
        "_log",
        "_protocol",
        "_receive_stream",
        "_stats",
        "_outbox",
    )

    def __init__(
        self,
        config: SessionConfig,
        protocol: ClientProtocol,
        *,
        emit: Callable[[ev.Event], None],
        lifecycle: Callable[[list[ev.Event], float], None],
        debug: _Debug,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self._config = config
        self._protocol = protocol
        self._receive_stream = protocol.receive_stream
        self._stats = protocol.stats
        self._emit = emit
        self._lifecycle = lifecycle
        self._debug = debug
        self._log = log
        #: When the latest user input was sent; the meters get it just before the next
        #: server frame is counted. Audio chunks written by the protocol's audio writer
        #: leave their time in the outbox's ``input_at`` instead (the object that chunk
        #: touches anyway): the later of the two is the latest input (:meth:`_take_input`).
        self.input_at: float | None = None
        self._outbox = protocol._outbox
        self.history: History | None = None
        if config.reseed or config.history:
            options: dict[str, Any] = {
                "max_entries": config.history_max_entries,
                "max_chars": config.history_max_chars,
                "summarizer": config.summarizer,
            }
            self.history = (
                History.from_messages(config.history, **options)  # type: ignore[arg-type]
                if config.history
                else History(**options)
            )
        self.watchdog = InteractionWatchdog(config.interaction_timeout)
        self.usage: UsageMeter | None = UsageMeter() if config.metrics else None
        self.latency: LatencyTracker | None = LatencyTracker() if config.metrics else None
        #: The pending turn while the model answers it (see _meters_settled).
        self._answering: TurnLatency | None = None

    # -- received frames ------------------------------------------------------------------

    def receiver(self, link: _Link) -> Callable[[bytes], None]:
        """The frame callback of one connection, whose handler is ``link``: it stamps
        ``link.last_rx`` and, while ``link.info`` is None (the connection is current),
        does :meth:`on_frame` at the arrival time.

        It fuses the connection handler (the clock read, the check), the protocol's
        :meth:`~ClientProtocol.receive_stream` and :meth:`on_frame`'s hot paths (a frame
        that is one audio chunk, or audio and its transcript as :meth:`_on_audio_words`),
        whose lines it repeats and must equal (the frame path tests feed both); every other
        frame goes on to :meth:`_on_parts`. Whether frames are logged is read once, when
        the callback is made: the connection's owner sets it before (see ``_Debug``).
        """

        # Bound as defaults, not a closure (one tuple instead of a cell per name: fewer
        # objects for the garbage collector per connection). Callers pass ``data`` only.
        def on_data(
            data: bytes,
            self: SessionRecord = self,
            link: _Link = link,
            protocol: ClientProtocol = self._protocol,
            stats: SessionStats = self._stats,
            debug: bool = self._debug.debug,  # fixed per connection (set before it)
        ) -> None:
            link.last_rx = now = _monotonic()
            if link.info is not None:
                return
            # ClientProtocol.receive_stream, inlined: keep the two the same.
            conn = protocol._conn
            if conn is None or conn.state is not _OPEN:
                self._on_parts(data, now, None)
                return
            parts = _fast_parts(data)
            if parts is None:
                self._on_parts(data, now, None)
                return
            stats.frames_received += 1
            if not protocol._generating:
                protocol._model_started(now)
            pcm, text = parts
            if text is not None and debug:  # _on_parts logs the frame first
                self._on_parts(data, now, parts)
                return
            # _on_parts' hot path and _on_audio_words, inlined (the transcript's half as
            # _on_words): keep them the same.
            audio = _ModelAudio(pcm, _OUTPUT_RATE)
            answering = self._answering
            if answering is not None:
                answering.audio_bytes += len(pcm)
            elif self.usage is not None:
                self._meter_audio(audio, now)
            watchdog = self.watchdog
            if watchdog._deadline is not None:
                watchdog.observe(audio, now)
            try:
                self._emit(audio)
            except Exception:
                self._callback_failed()
            if not text:
                return
            words = _OutputTranscription(text)
            answering = self._answering  # the callback may have moved the meters on
            if answering is not None:
                if answering.first_text is None:
                    self.latency.on_event(words, now)  # type: ignore[union-attr]
            elif self.usage is not None:
                self._meter_words(words, now)
            history = self.history
            if history is not None:
                history.observe_words(text)
            if watchdog._deadline is not None:
                watchdog.observe(words, now)
            try:
                self._emit(words)
            except Exception:
                self._callback_failed()

        return on_data

    def on_frame(self, data: bytes, now: float) -> None:
        """One frame of the current connection: apply, count, emit (the three paths)."""
        # The receive hot path: a frame of model audio (and its output transcript) on an
        # open connection, decoded and applied by the protocol in one call.
        self._on_parts(data, now, self._receive_stream(data, now))

    def _on_parts(self, data: bytes, now: float, parts: tuple[bytes, str | None] | None) -> None:
        """:meth:`on_frame` once the protocol's stream path looked at the frame: ``parts``
        is what :meth:`ClientProtocol.receive_stream` returned for it."""
        if parts is not None:
            pcm, text = parts
            if text is None:
                # The hot path: a frame that is one audio chunk needs no lifecycle handling.
                audio = _ModelAudio(pcm, _OUTPUT_RATE)
                answering = self._answering
                if answering is not None:
                    # The turn is answering: the meters' whole work is this counter (an
                    # input sent meanwhile waits in input_at; see _meters_settled).
                    answering.audio_bytes += len(pcm)
                elif self.usage is not None:
                    self._meter_audio(audio, now)
                watchdog = self.watchdog
                if watchdog._deadline is not None:  # armed (the property, read inline)
                    watchdog.observe(audio, now)
                try:
                    self._emit(audio)
                except Exception:
                    self._callback_failed()
                return
            if self._debug.debug:
                kinds = "ModelAudio, OutputTranscription" if text else "ModelAudio"
                self._log.debug("received a %d-byte frame: %s", len(data), kinds)
            self._on_audio_words(pcm, text, now)
            return
        try:
            events = self._protocol.receive(data, now)
        except GeminiLiveError as exc:
            self._stats.malformed_frames += 1
            self._log.warning("ignoring a frame from the server: %s", exc)
            return
        usage = self.usage
        if usage is not None:
            input_at = self._take_input()
            if input_at is not None:
                observe_input(usage, self.latency, input_at)
        if len(events) == 1 and type(events[0]) is ev.ModelAudio:
            # One audio chunk the stream path did not take: no lifecycle handling.
            if usage is not None:
                observe_audio(usage, self.latency, events[0], now)
                self._answering = self._meters_settled()
            if self.watchdog.armed:
                self.watchdog.observe(events[0], now)
            try:
                self._emit(events[0])
            except Exception:
                self._callback_failed()
            return
        if self._debug.debug:
            kinds = ", ".join(type(e).__name__ for e in events)
            self._log.debug("received a %d-byte frame: %s", len(data), kinds)
        if _is_stream(events):
            self._on_stream(events, now)
            return
        if usage is not None:
            for event in events:
                observe(usage, self.latency, event, now)
            self._answering = self._meters_settled()
        history = self.history
        watchdog = self.watchdog
        for event in events:
            if history is not None:
                history.observe(event)
            watchdog.observe(event, now)
        self._lifecycle(events, now)

    def _on_audio_words(self, pcm: bytes, text: str, now: float) -> None:
        """:meth:`_on_stream` for a frame of audio and its output transcript (an empty
        transcript gives no event), without the event list: the most frequent frame of a
        spoken reply after audio alone."""
        audio = _ModelAudio(pcm, _OUTPUT_RATE)
        usage = self.usage
        answering = self._answering
        if answering is not None:
            answering.audio_bytes += len(pcm)
        elif usage is not None:
            self._meter_audio(audio, now)
        watchdog = self.watchdog
        if watchdog._deadline is not None:
            watchdog.observe(audio, now)
        try:
            self._emit(audio)
        except Exception:
            self._callback_failed()
        if text:
            self._on_words(text, now)

    def _on_words(self, text: str, now: float) -> None:
        """The output transcript that came with a frame's audio (after the audio's event):
        the meters, the history, the watchdog, then its event."""
        words = _OutputTranscription(text)
        answering = self._answering
        if answering is not None:
            if answering.first_text is None:
                self.latency.on_event(words, now)  # type: ignore[union-attr]
        elif self.usage is not None:
            self._meter_words(words, now)
        history = self.history
        if history is not None:
            history.observe_words(text)
        watchdog = self.watchdog
        if watchdog._deadline is not None:
            watchdog.observe(words, now)
        try:
            self._emit(words)
        except Exception:
            self._callback_failed()

    def _meter_words(self, words: ev.OutputTranscription, now: float) -> None:
        """The meters' full work for an output transcript (not answering yet)."""
        usage = self.usage
        assert usage is not None
        observe_transcript(usage, self.latency, words, now)
        self._answering = self._meters_settled()

    def _meters_settled(self) -> TurnLatency | None:
        """The latency tracker's pending turn when the model is answering it and the usage
        meter's turn is open (not inside a completed turn's grace window), else None.

        In that state the meters' work for an audio frame is adding its bytes to that turn,
        a transcript only stamps the turn's first text, and a user input only marks the
        start of the next turn (``_next_input``, the latest input wins): the hot paths do
        just that and leave ``input_at`` for the next frame that takes a full path, which
        applies it first, as it would have been applied at once. Recomputed after every
        frame that fed the meters a full path.
        """
        latency = self.latency
        usage = self.usage
        if latency is None or usage is None:
            return None
        p = latency._pending
        if p is None or p.first_audio is None:
            return None
        current = usage._current
        if current is not None and current.complete and usage._grace:
            return None
        return p

    def _take_input(self) -> float | None:
        """The latest user input not applied yet (None: none), now applied: the later of
        :attr:`input_at` and the outbox's (the audio writer's chunks)."""
        input_at = self.input_at
        outbox = self._outbox
        written = outbox.input_at
        if written is not None:
            outbox.input_at = None
            if input_at is None or written > input_at:
                input_at = written
        self.input_at = None
        return input_at

    def _meter_audio(self, audio: ev.ModelAudio, now: float) -> None:
        """The meters' full work for one audio frame (not answering yet: a turn starts)."""
        usage = self.usage
        assert usage is not None
        input_at = self._take_input()
        if input_at is not None:
            observe_input(usage, self.latency, input_at)
        observe_audio(usage, self.latency, audio, now)
        self._answering = self._meters_settled()

    def _callback_failed(self) -> None:
        """The consumer the hot path handed an event to directly raised (see set_emit)."""
        self._stats.callback_errors += 1
        self._log.exception("an on_event callback raised")

    def set_emit(self, emit: Callable[[ev.Event], None]) -> None:
        """Where events go: the session's fan-out, or its only ``on_event`` callback when
        that is the only consumer (the paths here then count and log what it raises)."""
        self._emit = emit

    def _on_stream(self, events: list[ev.Event], now: float) -> None:
        """A frame of audio and output transcription only (most frames of a spoken reply):
        the same bookkeeping as the general path, without its lifecycle checks."""
        usage = self.usage
        answering = self._answering
        if usage is not None and answering is None:
            input_at = self._take_input()
            if input_at is not None:
                observe_input(usage, self.latency, input_at)
        latency = self.latency
        history = self.history
        watchdog = self.watchdog
        emit = self._emit
        for event in events:
            if type(event) is ev.ModelAudio:
                if answering is not None:
                    answering.audio_bytes += len(event.data)
                elif usage is not None:
                    observe_audio(usage, latency, event, now)
            else:
                words: ev.OutputTranscription = event  # type: ignore[assignment]
                if answering is not None:
                    if answering.first_text is None and words.text:
                        latency.on_event(words, now)  # type: ignore[union-attr]
                elif usage is not None:
                    observe_transcript(usage, latency, words, now)
                if history is not None:
                    history.observe(words)
            if watchdog._deadline is not None:
                watchdog.observe(event, now)
            try:
                emit(event)
            except Exception:
                self._callback_failed()
        if usage is not None and answering is None:
            self._answering = self._meters_settled()

    def timer_fired(self, now: float) -> None:
        """The watchdog's deadline may have passed: emit ``InteractionTimeout`` if so."""
        expired = self.watchdog.expired(now)
        if expired is not None:
            self._log.warning("the interaction is still in progress after %.0f s", expired.seconds)
            if self.history is not None:
                self.history.observe(expired)
            try:
                self._emit(expired)
            except Exception:
                self._callback_failed()

    # -- what the app sent ----------------------------------------------------------------

    def user_input(self, now: float) -> None:
        """User input went out at ``now`` (for the latency of the next reply)."""
        if self.usage is not None:
            self.input_at = now

    def user_text(self, text: str) -> None:
        if self.history is not None:
            self.history.add_user_text(text)

    def client_content(self, turns: object) -> None:
        if self.history is not None:
            for text in _user_texts(turns):
                self.history.add_user_text(text)

    def tool_results(self, responses: list[FunctionResponse]) -> None:
        if self.history is not None:
            for response in responses:
                self.history.add_tool_result(response)

    # -- a fresh session's seed -----------------------------------------------------------

    def prepare_seed(self) -> None:
        """The next connection is a fresh session: give it the conversation so far."""
        history = self.history
        protocol = self._protocol
        if history is None or not len(history):
            return
        if protocol.ever_open and not self._config.reseed:
            return
        # What the next connection writes again anyway is left out of the seed.
        again = protocol.resend_texts()
        entries = list(history.entries)
        for i in range(len(entries) - 1, -1, -1):
            if not again:
                break
            e = entries[i]
            if e.role == "user" and e.kind == "text" and e.text == again[-1]:
                again.pop()
                del entries[i]
        source = History.from_messages(entries) if len(entries) != len(history) else history
        setup = protocol.setup
        try:
            seed = source.seed(setup.model, vertex=protocol.api == "vertex")
        except GeminiLiveError as exc:
            self._log.warning("cannot reseed the fresh session: %s", exc)
            return
        if not seed.messages:
            return
        seeded = seed.apply(setup)
        protocol.set_seed(seeded if seeded is not setup else None, seed.messages, seed.turns)
        self._log.info("seeding the fresh session with %d history turns", seed.turns)


def _user_texts(turns: object) -> list[str]:
    """The user text in what ``send_client_content`` took (for the history)."""
    if isinstance(turns, str):
        return [turns]
    items = [turns] if isinstance(turns, Content) else list(turns or ())  # type: ignore[call-overload]
    out: list[str] = []
    for content in items:
        if isinstance(content, Content) and content.role in ("user", UNSET):
            parts = content.parts if content.parts is not UNSET else []
            out.extend(p.text for p in parts if isinstance(p.text, str) and p.text)
    return out
