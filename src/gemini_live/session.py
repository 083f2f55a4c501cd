"""The asyncio shell around :class:`~gemini_live.protocol.ClientProtocol`.

Every protocol rule (what may be sent, what a handle covers, what is re-sent, when to
rotate, when to reconnect) lives in the sans-I/O protocol. The session is the public
object and does I/O:

* one *runner* task (:mod:`gemini_live._connector`) with one connection loop: connect,
  write the setup, wait for ``setupComplete``, flush, serve the connection until it ends
  or a planned rotation is due, then do what the reconnect rules say;
* one :meth:`Session._flush` that writes what the protocol hands out and is the only place
  that handles a failed write (the frames go back to the protocol, nothing is lost);
* subscribers: received frames are decoded synchronously in the transport's callback and
  fanned out to every subscriber's bounded queue (``Lagged(count)`` when one falls behind)
  and to ``on_event`` callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from gemini_live import events as ev
from gemini_live._connector import Connector, resolve_backend
from gemini_live._observe import SessionRecord
from gemini_live._stream import _Subscriber
from gemini_live.config import ReconnectPolicy, SessionConfig, TransportConfig, check_credentials
from gemini_live.errors import (
    ConfigError,
    GeminiLiveError,
    SessionClosedError,
)
from gemini_live.history import History
from gemini_live.metrics import (
    LatencyTracker,
    UsageMeter,
)
from gemini_live.models import adapt_setup
from gemini_live.protocol import ClientProtocol, ProtocolSnapshot, SessionStats
from gemini_live.transport.base import DirectSend, DirectWriter
from gemini_live.types import (
    UNSET,
    ClientMessage,
    Content,
    FunctionResponse,
    Setup,
    Tool,
)

if TYPE_CHECKING:
    from gemini_live._conversation import ConversationLink
    from gemini_live._observe import _Link
    from gemini_live.media import StreamStats
    from gemini_live.tools import ToolRegistry, ToolRunner

__all__ = [
    "ReconnectPolicy",
    "Session",
    "SessionConfig",
    "SessionStats",
    "TransportConfig",
]

logger = logging.getLogger("gemini_live.session")
_monotonic = time.monotonic
#: Events after which a stored conversation is saved (besides user text and tool answers).
_SAVE_ON = frozenset(
    (ev.SessionResumptionUpdate, ev.TurnComplete, ev.ToolCall, ev.ToolCallCancellation)
)
_local_ids = itertools.count(1)


class _SessionLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every record with the session id and sets ``record.session_id``."""

    def __init__(self, session: Session) -> None:
        super().__init__(logger, {})
        self._session = session

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        sid = self._session.session_id or self._session._local_id
        kwargs.setdefault("extra", {})["session_id"] = sid
        return f"[{sid}] {msg}", kwargs


class Session:
    """A Live API session that survives reconnects.

    Create with ``await Session.connect(config)`` (or :func:`gemini_live.connect`). Iterate
    it for events from one task; call ``send_*`` from any task. ``close()`` is idempotent.
    Every ``send_*`` validates its input first (a bad value raises a
    :class:`~gemini_live.errors.ConfigError` and nothing is sent), then writes or queues
    the frame; cancelling a send after it started never loses or duplicates the frame.
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        _link: ConversationLink | None = None,
        _snapshot: ProtocolSnapshot | None = None,
    ) -> None:
        if not isinstance(config, SessionConfig):
            raise ConfigError(f"expected a SessionConfig, got {type(config).__name__}")
        tc = config.transport
        self.config = config
        setup = config.setup
        if config.adapt_to_model:
            setup = adapt_setup(setup, vertex=tc.endpoint.api == "vertex")
        #: The stored conversation this session continues and saves (None: not stored;
        #: see :mod:`gemini_live.store`).
        self.conversation: ConversationLink | None = _link
        self._pending_error: GeminiLiveError | None = None
        self._fail_task: asyncio.Task[None] | None = None
        if _snapshot is not None:
            from gemini_live._conversation import ConversationLink

            self.protocol = ConversationLink.restored(_snapshot, tc.endpoint.model_name)
        else:
            self.protocol = self._new_protocol(config, setup)
            if _link is not None and _link.from_store:
                self.protocol.expect_resume = True  # a stored conversation, reseeded
        #: Counters for monitoring (the protocol's, one object).
        self.stats: SessionStats = self.protocol.stats
        #: The rate of the audio hot path (``send_audio`` at another rate goes the general way).
        self._input_rate = config.input_rate
        self._init_rest(config)

    @staticmethod
    def _new_protocol(config: SessionConfig, setup: Setup) -> ClientProtocol:
        tc = config.transport
        return ClientProtocol(
            setup,
            api=tc.endpoint.api,
            request_resumption=config.resumption,
            normalize_model=tc.endpoint.model_name,
            input_rate=config.input_rate,
            offline_buffer_bytes=config.offline_buffer_bytes,
            max_frame_bytes=tc.max_message_size,
            resend=config.resend,
            go_away_margin=config.go_away_margin,
            hold_while_draining=config.drain_input == "hold",
        )

    def _init_rest(self, config: SessionConfig) -> None:
        tc = config.transport
        self.error: GeminiLiveError | None = None
        self._local_id = f"local-{next(_local_ids)}"
        self.log = _SessionLog(self)
        self._connector = Connector(self, self.protocol, config, resolve_backend(tc.backend))
        # Extra subscribers are held weakly: one whose iterator the app dropped goes away.
        # A tuple of weak references (rebuilt when one is added or collected) keeps the
        # per-event check cheap when there are none.
        self._subscribers: tuple[weakref.ref[_Subscriber], ...] = ()
        self._try_send: Callable[[bytes], bool] | None = None  # set via _set_direct
        #: The transport's writer without a check per write, when it has one (set with
        #: ``_try_send``; see _writes_changed).
        self._direct: DirectWriter | None = None
        self._closing = False
        #: None until connect(), then False until _finish ran (a flag: nothing waits on it,
        #: so no Event per session).
        self._finished: bool | None = None
        self._runner: asyncio.Task[None] | None = None
        self._first_ready: asyncio.Future[None] | None = None
        self._main: _Subscriber | None = self._new_subscriber() if config.main_stream else None
        self._listeners: tuple[Callable[[ev.Event], object], ...] = ()
        self._tool_runner: ToolRunner | None = None
        self._record = SessionRecord(
            config,
            self.protocol,
            emit=self._emit,
            lifecycle=self._on_events,
            debug=self._connector,
            log=self.log,
        )
        #: The audio hot path of the current connection (set with ``_try_send``). Set
        #: right after ``_record``: the two attributes a chunk reads sit side by side in
        #: the instance's values (one cache line, not two; issue 24).
        self._write_audio: Callable[[object, float], bool] | None = None
        self._route_events()
        self._watchdog = self._record.watchdog
        #: The conversation so far, bounded (None when ``config.reseed`` is off). A fresh
        #: session after a failed resume is seeded with it.
        self.history: History | None = self._record.history
        #: Token usage per turn and per session (None when ``config.metrics`` is off).
        self.usage: UsageMeter | None = self._record.usage
        #: Latency of each turn: end of user input to first audio/text/turnComplete.
        self.latency: LatencyTracker | None = self._record.latency

    # -- construction -------------------------------------------------------------------

    @classmethod
    async def connect(cls, config: SessionConfig) -> Session:
        """Open the session; returns after the first ``setupComplete``.

        With ``config.conversation`` the conversation is leased and continued from its
        store (see :mod:`gemini_live.store`).
        """
        session = await cls._create(config)
        await session._start()
        return session

    @classmethod
    async def _create(cls, config: SessionConfig) -> Session:
        """A session not yet started; a stored conversation is leased and loaded first."""
        if not isinstance(config, SessionConfig):
            raise ConfigError(f"expected a SessionConfig, got {type(config).__name__}")
        check_credentials(config)  # no key for Google's endpoint: refused, not dialed
        if config.conversation is None:
            return cls(config)
        # Imported here: the store's modules load only for a stored conversation.
        from gemini_live._conversation import ConversationLink

        link = await ConversationLink.open(config)
        try:
            built, snapshot = link.prepare(config)
            return cls(built, _link=link, _snapshot=snapshot)
        except BaseException:
            await link.close(save=False)
            raise

    async def _start(self) -> None:
        if self.config.conversation is not None and self.conversation is None:
            raise ConfigError(
                "a session with conversation= is opened with Session.connect() or "
                "gemini_live.connect() (the conversation is loaded first)"
            )
        loop = asyncio.get_running_loop()
        if self.conversation is not None:
            self.conversation.attach(self)
        self._finished = False
        self._first_ready = loop.create_future()
        self._connector.start()
        self._runner = self._connector.task
        try:
            await asyncio.shield(self._first_ready)
        except BaseException:
            await self.close()
            raise
        self._first_ready = None  # done: not held for the session's life

    async def __aenter__(self) -> Session:
        if self._runner is None:
            await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- status -------------------------------------------------------------------------

    @property
    def status(self) -> Literal["connecting", "open", "reconnecting", "closed"]:
        """``connecting`` before the first setupComplete, ``open`` while frames go out
        directly, ``reconnecting`` between connections (sends are queued), ``closed``."""
        if self._is_closing() or (self._runner is not None and self._runner.done()):
            return "closed"
        if self._connector.open:
            return "open"
        return "connecting" if self.stats.connects == 0 else "reconnecting"

    @property
    def session_id(self) -> str | None:
        """The id the service gave in ``setupComplete`` (None before, or if it gave none)."""
        return self.protocol.session_id

    @property
    def setup(self) -> Setup:
        """The setup the next connection sends (after the model table adapted it, and with
        every ``update_setup`` / ``send_context_update`` applied). Read-only."""
        return self.protocol.setup

    @property
    def resume_handle(self) -> str | None:
        """The latest resumable handle (where a reconnect resumes from)."""
        return self.protocol.resume_handle

    @property
    def closed(self) -> bool:
        """True once the session ended (``close()`` or a fatal error, see ``error``)."""
        return self.status == "closed"

    def __repr__(self) -> str:
        return (
            f"<Session {self.status} model={self.protocol.setup.model!r}"
            f" id={self.session_id!r} api={self.protocol.api}>"
        )

    # -- receiving ----------------------------------------------------------------------

    def _new_subscriber(self) -> _Subscriber:
        sub = _Subscriber(self.stats, self._get_error, self.config.subscriber_queue)
        if self.status == "closed" and self._runner is not None:
            sub.end()
        return sub

    def _get_error(self) -> GeminiLiveError | None:
        return self.error

    def events(self) -> AsyncIterator[ev.Event]:
        """A new independent subscriber that sees every event from now on.

        It lives as long as the returned iterator is referenced.
        """
        sub = self._new_subscriber()
        this = weakref.ref(self)

        def gone(ref: weakref.ref[_Subscriber]) -> None:
            session = this()
            if session is not None:
                session._subscribers = tuple(r for r in session._subscribers if r is not ref)
                session._route_events()

        self._subscribers = (*self._subscribers, weakref.ref(sub, gone))
        self._route_events()
        return sub

    def _main_stream(self) -> _Subscriber:
        if self._main is None:
            raise ConfigError("this session was created with main_stream=False")
        return self._main

    def __aiter__(self) -> AsyncIterator[ev.Event]:
        # The main stream: a loop over it that breaks leaves it subscribed, and the next
        # ``async for`` continues where the last one stopped.
        return self._main_stream()

    async def next_event(self) -> ev.Event | None:
        """The next event of the main stream; None once the session has ended."""
        try:
            return await self._main_stream().__anext__()
        except StopAsyncIteration:
            return None

    def on_event(self, callback: Callable[[ev.Event], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, in stream order, on the event loop.

        Lossless and the cheapest way to consume events: it runs inside the frame
        callback, with no task wake-up per event, so it must be quick and must not block.
        An exception it raises is logged and counted (``stats.callback_errors``); the
        callback stays registered. Returns a function that unregisters it.
        """
        self._listeners = (*self._listeners, callback)
        self._route_events()

        def remove() -> None:
            self._listeners = tuple(cb for cb in self._listeners if cb is not callback)
            self._route_events()

        return remove

    def _route_events(self) -> None:
        """The frame paths hand events straight to the only consumer (the one ``on_event``
        callback, or the main stream) when there is one, else to :meth:`_emit`."""
        listeners = self._listeners
        main = self._main
        emit: Callable[[ev.Event], object] = self._emit
        if not self._subscribers:
            if main is None and len(listeners) == 1:
                emit = listeners[0]
            elif main is not None and not listeners:
                emit = main.push
        self._record.set_emit(emit)  # type: ignore[arg-type]

    def _emit(self, event: ev.Event) -> None:
        main = self._main
        if main is not None:
            main.push(event)
        if self._subscribers:
            for ref in self._subscribers:
                sub = ref()
                if sub is not None:
                    sub.push(event)
        if self._listeners:
            for callback in self._listeners:
                try:
                    callback(event)
                except Exception:
                    self.stats.callback_errors += 1
                    self.log.exception("an on_event callback raised")

    def _on_events(self, events: list[ev.Event], now: float) -> None:
        """The lifecycle of a general-path frame (after its bookkeeping): the setup
        waiter, the log of a reconnect, the fan-out, and the rotation decision."""
        if self._watchdog.armed:
            self._poke()  # the runner keeps the watchdog's timer
        for event in events:
            t = type(event)
            if t is ev.SetupComplete:
                self._connector.setup_completed(event)  # type: ignore[arg-type]
            elif isinstance(event, ev.Resumed):
                link = self.conversation
                if link is not None:
                    event = link.annotate(event)
                self.log.info(
                    "reconnected: %s",
                    "state restored from the resumption handle"
                    if event.state_restored
                    else "FRESH session"
                    + (f", reseeded with {event.turns} turns" if event.reseeded else ""),
                )
            elif t in _SAVE_ON and self.conversation is not None:
                if isinstance(event, ev.SessionResumptionUpdate):
                    if event.resumable:
                        self.conversation.handle_arrived()
                elif t is ev.TurnComplete:
                    self.conversation.turn_ended()
                else:
                    self.conversation.mark()
            self._emit(event)
        protocol = self.protocol
        if protocol.draining:
            if protocol.rotation_due(now):
                protocol.begin_rotation()
                self._set_direct(None)  # rotate at this clean point: new sends wait for it
            self._poke()

    def _set_direct(
        self, try_send: Callable[[bytes], bool] | None, direct: DirectWriter | None = None
    ) -> None:
        old = self._direct
        if old is not None and old is not direct:
            old.writes_changed = None
        self._try_send = try_send
        self._direct = direct if try_send is not None else None
        self.protocol.direct_writes = try_send is not None
        if self._direct is not None:
            self._direct.writes_changed = self._writes_changed
        self._writes_changed()

    def _writes_changed(self) -> None:
        """(Re)build the audio hot path of the current connection: with the transport's
        direct writer while it offers one (no check per write: the transport calls this
        when closing or backpressure starts or ends), else with ``try_send``."""
        try_send = self._try_send
        if try_send is None or self._closing or self.error is not None:
            self._write_audio = None
            return
        direct = self._direct
        if isinstance(direct, DirectSend):
            send = direct.direct_send()
            if send is not None:
                self._write_audio = self.protocol.audio_writer(*send)
                return
        write = direct.direct_writer() if direct is not None else None
        self._write_audio = self.protocol.audio_writer(write if write is not None else try_send)

    def _is_closing(self) -> bool:
        # A method, not the attribute, so mypy does not narrow the flag across awaits.
        return self._closing

    def _on_frame(self, data: bytes, now: float) -> None:
        """One frame of the current connection (see SessionRecord.on_frame)."""
        self._record.on_frame(data, now)

    def _receiver(self, handler: _Link) -> Callable[[bytes], None]:
        """The frame callback of one connection (see SessionRecord.receiver): methods,
        not attributes holding the record's bound methods (objects for the collector)."""
        return self._record.receiver(handler)

    def _poke(self) -> None:
        self._connector.poke()

    # -- sending ------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._runner is None:
            raise SessionClosedError("session is not connected: use await Session.connect()")
        if self._is_closing() or self.error is not None:
            raise SessionClosedError("session is closed") from self.error

    async def _submitted(self, frame: bytes | None) -> None:
        """After a ``protocol.send_*``: write a frame handed out directly, or flush."""
        if frame is not None:
            try_send = self._try_send
            if try_send is not None and try_send(frame):
                return
            self.protocol.direct_failed()
        await self._flush()

    async def _flush(self) -> None:
        """Write everything the protocol hands out; the one place that handles write errors.

        A failed write gives the frames back to the protocol (they go out again after the
        reconnect) and leaves the connection to the runner.
        """
        connector = self._connector
        lock = connector.lock
        if lock is None:
            return
        async with lock:
            protocol = self.protocol
            while connector.open:
                transport = connector.transport
                if transport is None:
                    return
                conn = protocol.connection_number
                frames = protocol.data_to_send(time.monotonic())
                if not frames:
                    return
                for frame in frames:
                    if connector.transport is not transport or protocol.connection_number != conn:
                        protocol.unwritten()
                        return
                    try:
                        await transport.send(frame)
                    except (GeminiLiveError, OSError) as exc:
                        if protocol.connection_number == conn:
                            protocol.unwritten()
                        self.log.info("write failed (%s); the frames will be re-sent", exc)
                        connector.lost()
                        return
                    if protocol.connection_number == conn:
                        protocol.written(1)
                    if connector.debug:
                        self.log.debug("wrote a %d-byte frame", len(frame))

    async def send_audio(self, pcm: object, *, sample_rate: int | None = None) -> None:
        """Stream a PCM16 chunk (bytes, memoryview, array('h'), numpy int16/float32)."""
        write_audio = self._write_audio
        if write_audio is not None and (sample_rate is None or sample_rate == self._input_rate):
            # The hot path: encoded, written and kept for re-sending in one call. It is
            # only set while the session is usable (see _set_direct and close).
            now = _monotonic()
            # The writer also leaves ``now`` as the latest input for the meters (in the
            # outbox, which it touches anyway; SessionRecord._take_input).
            if not write_audio(pcm, now):
                await self._flush()
            return
        if self._closing or self.error is not None or self._runner is None:
            self._check_usable()
        now = _monotonic()
        frame = self.protocol.send_audio(pcm, now, sample_rate)
        if self.usage is not None:
            self._record.input_at = now
        if frame is not None:
            # The hot path: written synchronously, no coroutine below this one.
            try_send = self._try_send
            if try_send is not None and try_send(frame):
                return
            self.protocol.direct_failed()
        await self._flush()

    #: The write a :meth:`send_audio_nowait` chunk that had to queue still waits for.
    _nowait_flush: asyncio.Task[None] | None = None

    def send_audio_nowait(self, pcm: object, *, sample_rate: int | None = None) -> bool:
        """Stream a PCM16 chunk, as :meth:`send_audio` does, if that needs no waiting.

        For callers that cannot await (a server's read callback). True: the chunk was
        taken: written at once by the audio hot path, or, when the connection refused
        the write just then, queued in order and written by the session itself. False:
        nothing was done (not connected yet, reconnecting, closed, another rate than the
        session's ``input_rate``, or an earlier chunk still waits for its write): send
        it with ``await send_audio(pcm)``. Never drops a chunk; bad input raises as
        :meth:`send_audio` does.
        """
        write_audio = self._write_audio
        if (
            write_audio is None
            or (sample_rate is not None and sample_rate != self._input_rate)
            or self._nowait_flush is not None
        ):
            return False
        now = _monotonic()
        written = write_audio(pcm, now)  # and the latest input for the meters (as above)
        if not written:
            # Queued (the transport is under backpressure, or something waits before
            # it): written by a flush. Until it ends, callers take the awaited path.
            task = asyncio.get_running_loop().create_task(self._flush())
            self._nowait_flush = task
            task.add_done_callback(self._nowait_flushed)
        return True

    def _nowait_flushed(self, task: asyncio.Task[None]) -> None:
        if self._nowait_flush is task:
            self._nowait_flush = None
        if not task.cancelled() and task.exception() is not None:
            self.log.error("writing queued audio failed", exc_info=task.exception())

    async def send_video(self, frame: object, *, mime_type: str = "image/jpeg") -> None:
        """Send one still frame, about one per second.

        ``frame`` is encoded image bytes (JPEG/PNG/WebP, as ``mime_type`` says), or a PIL
        image or numpy array, which is encoded as a JPEG bounded in size and quality
        (:func:`gemini_live.media.encode_jpeg`; the ``media`` extra). For a frame-rate cap
        and pause/resume use :class:`gemini_live.media.VideoSender`.
        """
        self._check_usable()
        if _is_picture(frame):
            from gemini_live.media import encode_jpeg

            frame, mime_type = encode_jpeg(frame), "image/jpeg"
        await self._submitted(self.protocol.send_video(frame, time.monotonic(), mime_type))

    async def stream_audio(
        self,
        source: object,
        *,
        realtime: bool = True,
        chunk_ms: int = 20,
        end_of_stream: bool = False,
    ) -> StreamStats:
        """Send PCM from ``source`` (bytes, or an iterable / async iterable of chunks) in
        ``chunk_ms`` chunks at the session's input rate, paced like a live microphone by
        default, with backpressure; ``end_of_stream`` sends ``audioStreamEnd`` after it
        (see :func:`gemini_live.media.stream_audio`)."""
        from gemini_live.media import stream_audio

        return await stream_audio(
            self,
            source,
            sample_rate=self.config.input_rate,
            chunk_ms=chunk_ms,
            realtime=realtime,
            end_of_stream=end_of_stream,
        )

    async def send_text(self, text: str, *, text_id: str | None = None) -> None:
        """Send typed user text as realtime input (turn end is inferred by the server).

        ``text_id`` (with a stored conversation): the client's id of this text, saved
        with the conversation in the same record as the text itself, so a client that
        re-sends it after a crash can be told it arrived
        (``session.conversation.has_text(text_id)``).
        """
        self._check_usable()
        if text_id is not None:
            from gemini_live._conversation import check_text_id

            check_text_id(text_id)
        now = time.monotonic()
        frame = self.protocol.send_text(text, now)
        if text_id is not None and self.conversation is not None:
            # No await since the text was queued: any save holds both or neither.
            self.conversation.accept_text(text_id)
        await self._submitted(frame)
        self._record.user_text(text)
        self._record.user_input(now)
        if self.conversation is not None:
            self.conversation.mark()

    async def send_activity_start(self) -> None:
        """Mark the start of user speech (only with automatic activity detection off)."""
        self._check_usable()
        await self._submitted(self.protocol.send_activity_start(time.monotonic()))

    async def send_activity_end(self) -> None:
        """Mark the end of user speech: the model answers what it heard."""
        self._check_usable()
        now = time.monotonic()
        await self._submitted(self.protocol.send_activity_end(now))
        self._record.user_input(now)

    async def send_audio_stream_end(self) -> None:
        """Tell the service the microphone stopped (it flushes what it buffered)."""
        self._check_usable()
        now = time.monotonic()
        await self._submitted(self.protocol.send_audio_stream_end(now))
        self._record.user_input(now)

    async def send_client_content(
        self, turns: Content | str | Sequence[Content] | None = None, *, turn_complete: bool = True
    ) -> None:
        """Append turns to the history; ``turn_complete`` starts generation."""
        self._check_usable()
        now = time.monotonic()
        await self._submitted(
            self.protocol.send_client_content(turns, now, turn_complete=turn_complete)
        )
        self._record.client_content(turns)
        self._record.user_input(now)
        if self.conversation is not None:
            self.conversation.mark()

    async def send_tool_response(
        self, responses: FunctionResponse | Iterable[FunctionResponse]
    ) -> None:
        """Answer tool calls: each response names a pending call's ``id``, once.

        An unknown or already answered id raises
        :class:`~gemini_live.errors.UnknownToolCallError` (nothing is sent); an answer to
        a call the service forgot (cancelled, or made in a state a reconnect could not
        restore) is dropped with a warning and counted.
        """
        self._check_usable()
        items = [responses] if isinstance(responses, FunctionResponse) else list(responses)
        await self._submitted(self.protocol.send_tool_response(items, time.monotonic()))
        self._record.tool_results(items)
        self._poke()
        if self.conversation is not None:
            self.conversation.mark()

    async def send_context_update(
        self,
        *,
        system_instruction: Content | str | None = None,
        tools: Sequence[Tool] | None = None,
    ) -> None:
        """Change the system instruction and/or tools mid-session (``tools=[]`` clears)."""
        self._check_usable()
        await self._submitted(
            self.protocol.send_context_update(
                time.monotonic(), system_instruction=system_instruction, tools=tools
            )
        )

    async def send_message(self, message: ClientMessage) -> None:
        """Send any client message (checked: types, one field, one realtime payload)."""
        self._check_usable()
        now = time.monotonic()
        await self._submitted(self.protocol.send_message(message, now))
        if message.realtime_input is not UNSET or message.client_content is not UNSET:
            self._record.user_input(now)

    #: The same as :meth:`send_message`.
    send_raw = send_message

    def run_tools(self, registry: ToolRegistry, **options: Any) -> ToolRunner:
        """Answer this session's tool calls from ``registry`` (see :mod:`gemini_live.tools`).

        Returns the started :class:`~gemini_live.tools.ToolRunner`; use it as an async
        context manager or ``await runner.aclose()``.
        """
        from gemini_live.tools import run_tools

        # Vertex AI takes no partial results (willContinue).
        options.setdefault("partial_responses", self.protocol.api != "vertex")
        return run_tools(self, registry, **options)

    def _attach_tools(self, registry: ToolRegistry) -> None:
        """``connect(tools=registry)``: answer calls from the very first frame."""
        self._tool_runner = self.run_tools(registry)

    async def update_setup(self, setup: Setup) -> None:
        """Apply a new setup by resuming with it (everything but the model may change)."""
        self.protocol.update_setup(setup)
        self.protocol.request_rotation(time.monotonic())
        self._poke()

    # -- closing ------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection and end every subscriber. Idempotent; awaits the runner."""
        if not self._is_closing():
            self._closing = True
            self._write_audio = None  # the audio hot path ends with the session
            self._poke()
        runner = self._tool_runner
        if runner is not None:
            self._tool_runner = None
            with contextlib.suppress(Exception):
                await runner.aclose()
        runner_task = self._runner
        if runner_task is not None and not runner_task.done() and not self._connector.open:
            # Still connecting or backing off: nothing to close gracefully.
            runner_task.cancel()
        if (
            runner_task is not None
            and not runner_task.done()
            and runner_task is not asyncio.current_task()
        ):
            _, pending = await asyncio.wait({runner_task}, timeout=5.0)
            if pending:
                runner_task.cancel()
                await asyncio.wait({runner_task}, timeout=1.0)
        self._finish()
        link = self.conversation
        if link is not None:
            # The last save and the lease's release (bounded by the store calls' own
            # timeouts); a lost lease saves nothing.
            await asyncio.shield(link.close())

    def _fail(self, error: GeminiLiveError) -> None:
        """End the session with ``error`` (from outside the runner: a lost lease)."""
        if self._pending_error is None:
            self._pending_error = error
        if not self._is_closing() and self._fail_task is None:
            self._fail_task = asyncio.get_running_loop().create_task(
                self.close(), name="gemini-live-close"
            )

    def _finish(self, error: GeminiLiveError | None = None) -> None:
        if error is None:
            error = self._pending_error
        if error is not None and self.error is None:
            self.error = error
            self.stats.last_error = str(error)
        if self._finished:
            return
        self._connector.open = False
        self._set_direct(None)
        self._closing = True
        code, reason = self._connector.close_info
        code = getattr(error, "code", code)
        reason = getattr(error, "reason", None) or (str(error) if error is not None else reason)
        self._emit(ev.Closed(code, reason))
        if self._main is not None:
            self._main.end()
        for ref in self._subscribers:
            sub = ref()
            if sub is not None:
                sub.end()
        unsent = self.protocol.discard_queue()
        if unsent:
            self.log.warning("session closed with %d frames never written", unsent)
        if self._finished is not None:
            self._finished = True
        if self.conversation is not None:
            self.conversation.close()  # last save and release, in a task (close() awaits it)
        fr = self._first_ready
        if fr is not None and not fr.done():
            fr.set_exception(error or SessionClosedError("session closed before it was ready"))
            fr.exception()  # retrieved here: connect() may have been cancelled

    # -- the rest of the connection loop's Host (gemini_live._connector) ----------------

    def _ready(self) -> None:
        fr = self._first_ready
        if fr is not None and not fr.done():
            fr.set_result(None)

    def _timer_deadline(self) -> float | None:
        return self._watchdog.deadline()

    def _timer_fired(self, now: float) -> None:
        self._record.timer_fired(now)

    def _prepare_seed(self) -> None:
        self._record.prepare_seed()


def _is_picture(frame: object) -> bool:
    """A PIL image or a numpy array (encoded bytes are sent as they are)."""
    kind = type(frame)
    return kind.__module__.startswith(("PIL.", "numpy")) and kind.__name__ != "bytes_"
