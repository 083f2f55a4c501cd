"""The asyncio session: one logical conversation over any number of WebSocket connections.

A background *runner* task owns the connection lifecycle: connect, setup, wait for
``setupComplete``, flush what was queued while offline, then watch for the end of the
connection (drop, close, goAway) and reconnect with the latest resumption handle.

Received frames are decoded synchronously in the transport's callback and fanned out to
every subscriber's bounded queue; a subscriber that falls behind gets ``Lagged(count)``.
Sends encode immediately (bad input raises before anything is sent) and then either go
straight to the socket or, while disconnected, into a bounded, ordered offline buffer that
is flushed exactly once after the next ``setupComplete``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from gemini_live import events as ev
from gemini_live.auth import Auth, Endpoint
from gemini_live.codec import AudioFrameEncoder, encode_client
from gemini_live.errors import (
    ConfigError,
    ConnectError,
    GeminiLiveError,
    QueueFullError,
    ServiceError,
    SessionClosedError,
    SessionNotFound,
    SetupTimeout,
)
from gemini_live.metrics import (
    LatencyTracker,
    UsageMeter,
    observe,
    observe_audio,
    observe_input,
)
from gemini_live.protocol import ClientProtocol
from gemini_live.transport.base import (
    Backend,
    CloseInfo,
    ConnectOptions,
    SyncSender,
    Transport,
    TransportClosed,
)
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
    Setup,
    Tool,
    ToolResponse,
    ToolsUpdate,
)

if TYPE_CHECKING:
    from gemini_live.tools import ToolRegistry, ToolRunner

__all__ = [
    "ReconnectPolicy",
    "Session",
    "SessionConfig",
    "SessionStats",
    "TransportConfig",
]

logger = logging.getLogger("gemini_live.session")

_IMAGE_MIME = ("image/jpeg", "image/png", "image/webp")


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """How to reach the service: endpoint, credential and WebSocket options."""

    endpoint: Endpoint = field(default_factory=Endpoint.gemini)
    auth: Auth = field(default_factory=Auth.none)
    #: "picows" (fast), "websockets" (reference) or any object implementing Backend.
    backend: str | Backend = "picows"
    ssl_context: ssl.SSLContext | None = None
    proxy: str | None = None
    open_timeout: float = 10.0
    #: Client WebSocket pings; None (default) disables them (Gemini pongs can take 30 s).
    ping_interval: float | None = None
    ping_timeout: float | None = None
    max_message_size: int = 16 * 1024 * 1024
    headers: tuple[tuple[str, str], ...] = ()
    #: Application-level watchdog: no frame for this many seconds while open -> reconnect.
    idle_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Exponential backoff with jitter; only errors marked retryable are retried."""

    enabled: bool = True
    base_backoff: float = 0.5
    max_backoff: float = 5.0
    #: Attempts per outage (reset after every successful setup). None: unlimited.
    max_attempts: int | None = 10
    jitter: float = 0.2
    #: Also retry when the very first connection fails (default: fail fast).
    retry_initial: bool = False

    def delay(self, attempt: int) -> float:
        """Delay before attempt ``attempt`` (1-based), jittered by ±``jitter``."""
        if attempt <= 1:
            base = 0.0 if self.base_backoff <= 0 else self.base_backoff
            base = min(base, self.max_backoff)
        else:
            base = min(self.max_backoff, self.base_backoff * (2 ** (attempt - 1)))
        if self.jitter and base:
            base *= 1.0 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, base)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything a :class:`Session` needs. Only ``setup`` is required."""

    setup: Setup
    transport: TransportConfig = field(default_factory=TransportConfig)
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    setup_timeout: float = 10.0
    #: Ask for resumption handles (adds ``sessionResumption: {}`` if the setup has none).
    resumption: bool = True
    #: Bytes of client frames kept while disconnected; beyond it sends raise QueueFullError.
    offline_buffer_bytes: int = 4 * 1024 * 1024
    #: Events buffered per subscriber before it starts lagging.
    subscriber_queue: int = 4096
    #: Rotate this many seconds before a goAway deadline.
    go_away_margin: float = 0.25
    #: Input sample rate for send_audio.
    input_rate: int = 16000
    #: Keep ``session.usage`` (token meter) and ``session.latency`` (per-turn timings).
    metrics: bool = True
    #: Buffer events for ``async for event in session`` / ``next_event()``. Turn it off
    #: when the app consumes events only through ``on_event`` callbacks or ``events()``.
    main_stream: bool = True


@dataclass
class SessionStats:
    """Counters for monitoring; all monotonic over the session's life.

    Frame counts (sent, received) live in ``session.protocol.stats``.
    """

    connects: int = 0
    reconnects: int = 0
    resumed: int = 0
    fresh_sessions_after_loss: int = 0
    go_away_rotations: int = 0
    abrupt_drops: int = 0
    #: Frames written on connections the server or network then cut, after the last
    #: frame received on them: the ones that may not have reached the service (plain
    #: resumption has no acknowledgements; transparent resumption replays instead).
    frames_at_risk: int = 0
    frames_queued_offline: int = 0
    replayed_frames: int = 0
    malformed_frames: int = 0
    lagged_events: int = 0
    callback_errors: int = 0
    last_error: str | None = None


class _Subscriber:
    """One consumer's view of the event stream: a bounded queue with a lag counter.

    It is its own async iterator. On overflow the oldest event is dropped and counted; the
    consumer then receives ``Lagged(count)`` before the events that are left. After the
    session ends it drains what is queued, then stops (raising the session's error if it
    failed).
    """

    __slots__ = ("__weakref__", "_buf", "_ended", "_lag", "_max", "_session", "_waiter")

    def __init__(self, session: Session, maxlen: int) -> None:
        self._buf: deque[ev.Event] = deque()
        self._max = maxlen
        self._lag = 0
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._session = session

    def push(self, event: ev.Event) -> None:
        buf = self._buf
        if len(buf) >= self._max:
            buf.popleft()
            self._lag += 1
            self._session.stats.lagged_events += 1
        buf.append(event)
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def end(self) -> None:
        self._ended = True
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def __aiter__(self) -> _Subscriber:
        return self

    async def __anext__(self) -> ev.Event:
        # Hot path: one coroutine, and a Future only when the queue is empty.
        while True:
            if self._lag:
                n, self._lag = self._lag, 0
                return ev.Lagged(n)
            buf = self._buf
            if buf:
                return buf.popleft()
            if self._ended:
                err = self._session.error
                if err is not None:
                    raise err
                raise StopAsyncIteration
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter


class _ConnHandler:
    """FrameHandler for one connection: forwards to the session with its identity."""

    __slots__ = ("closed", "info", "last_rx", "session", "tx_since_rx")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.closed: asyncio.Future[CloseInfo] = asyncio.get_running_loop().create_future()
        self.info: CloseInfo | None = None
        self.last_rx = time.monotonic()
        self.tx_since_rx = 0

    def on_frame(self, data: bytes) -> None:
        self.last_rx = now = time.monotonic()
        self.tx_since_rx = 0
        if self.info is None:
            self.session._on_frame(data, now)

    def on_close(self, info: CloseInfo) -> None:
        if self.info is None:
            self.info = info
            if self.session._handler is self:
                self.session._open = False
                self.session._poke()
            if not self.closed.done():
                self.closed.set_result(info)


class Session:
    """A Live API session that survives reconnects.

    Create with ``await Session.connect(config)`` (or :func:`gemini_live.connect`). Iterate
    it for events; call ``send_*`` from any task. ``close()`` is idempotent.
    """

    def __init__(self, config: SessionConfig) -> None:
        tc = config.transport
        setup = config.setup
        model = tc.endpoint.model_name(setup.model)
        if model != setup.model:
            setup = msgspec.structs.replace(setup, model=model)
        self.config = config
        self.protocol = ClientProtocol(
            setup, api=tc.endpoint.api, request_resumption=config.resumption
        )
        self.stats = SessionStats()
        self.error: GeminiLiveError | None = None
        self._backend = _resolve_backend(tc.backend)
        self._audio = AudioFrameEncoder(config.input_rate)
        self._audio_by_rate: dict[int, AudioFrameEncoder] = {config.input_rate: self._audio}
        # Extra subscribers are held weakly: one whose iterator the app dropped goes away.
        self._subscribers: weakref.WeakSet[_Subscriber] = weakref.WeakSet()
        self._transport: Transport | None = None
        self._try_send: Callable[[bytes], bool] | None = None
        self._handler: _ConnHandler | None = None
        self._open = False  # direct sends allowed
        self._closing = False
        self._closed_event: asyncio.Event | None = None
        self._queue: deque[bytes] = deque()
        self._queue_bytes = 0
        self._runner: asyncio.Task[None] | None = None
        self._setup_waiter: asyncio.Future[ev.SetupComplete] | None = None
        self._wake: asyncio.Event | None = None
        self._go_away = False
        self._close_info: tuple[int | None, str] = (None, "")
        self._first_ready: asyncio.Future[None] | None = None
        self._main: _Subscriber | None = self._new_subscriber() if config.main_stream else None
        self._listeners: tuple[Callable[[ev.Event], object], ...] = ()
        self._input_at: float | None = None
        #: Token usage per turn and per session (None when ``config.metrics`` is off).
        self.usage: UsageMeter | None = UsageMeter() if config.metrics else None
        #: Latency of each turn: end of user input to first audio/text/turnComplete.
        self.latency: LatencyTracker | None = LatencyTracker() if config.metrics else None

    # -- construction -------------------------------------------------------------------

    @classmethod
    async def connect(cls, config: SessionConfig) -> Session:
        """Open the session; returns after the first ``setupComplete``."""
        session = cls(config)
        await session._start()
        return session

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._closed_event = asyncio.Event()
        self._first_ready = loop.create_future()
        self._runner = loop.create_task(self._run(), name="gemini-live-session")
        try:
            await asyncio.shield(self._first_ready)
        except BaseException:
            await self.close()
            raise

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
        if self._is_closing() or (self._runner is not None and self._runner.done()):
            return "closed"
        if self._open:
            return "open"
        return "connecting" if self.stats.connects == 0 else "reconnecting"

    @property
    def session_id(self) -> str | None:
        return self.protocol.session_id

    @property
    def resume_handle(self) -> str | None:
        return self.protocol.resume_handle

    @property
    def closed(self) -> bool:
        return self.status == "closed"

    def __repr__(self) -> str:
        return (
            f"<Session {self.status} model={self.protocol.setup.model!r}"
            f" id={self.session_id!r} auth={self.config.transport.auth!r}>"
        )

    # -- receiving ----------------------------------------------------------------------

    def _new_subscriber(self) -> _Subscriber:
        sub = _Subscriber(self, self.config.subscriber_queue)
        if self.status == "closed" and self._runner is not None:
            sub.end()
        return sub

    def events(self) -> AsyncIterator[ev.Event]:
        """A new independent subscriber that sees every event from now on.

        It lives as long as the returned iterator is referenced.
        """
        sub = self._new_subscriber()
        self._subscribers.add(sub)
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

        The cheapest way to consume events: it runs inside the frame callback, with no
        task wake-up per event, so it must be quick and must not block. An exception it
        raises is logged and counted (``stats.callback_errors``); the callback stays
        registered. Returns a function that unregisters it.
        """
        self._listeners = (*self._listeners, callback)

        def remove() -> None:
            self._listeners = tuple(cb for cb in self._listeners if cb is not callback)

        return remove

    def _emit(self, event: ev.Event) -> None:
        main = self._main
        if main is not None:
            main.push(event)
        if self._subscribers:
            for sub in self._subscribers:
                sub.push(event)
        if self._listeners:
            for callback in self._listeners:
                try:
                    callback(event)
                except Exception:
                    self.stats.callback_errors += 1
                    logger.exception("an on_event callback raised")

    def _on_frame(self, data: bytes, now: float) -> None:
        try:
            events = self.protocol.receive(data, now)
        except GeminiLiveError as exc:
            self.stats.malformed_frames += 1
            logger.warning("ignoring a frame from the server: %s", exc)
            return
        usage = self.usage
        if usage is not None and self._input_at is not None:
            observe_input(usage, self.latency, self._input_at)
            self._input_at = None
        if len(events) == 1 and type(events[0]) is ev.ModelAudio:
            # The hot path: a frame that is one audio chunk needs no lifecycle handling.
            if usage is not None:
                observe_audio(usage, self.latency, events[0], now)
            self._emit(events[0])
            return
        if usage is not None:
            for event in events:
                observe(usage, self.latency, event, now)
        for event in events:
            if isinstance(event, ev.SetupComplete):
                w = self._setup_waiter
                if w is not None and not w.done():
                    w.set_result(event)
                self._emit(event)
                if self.protocol.ever_reconnected:
                    restored = self.protocol.state_restored
                    if restored:
                        self.stats.resumed += 1
                    else:
                        self.stats.fresh_sessions_after_loss += 1
                    self._emit(ev.Resumed(restored))
                continue
            elif isinstance(event, ev.GoAway):
                self._go_away = True
                self._poke()
            elif isinstance(event, ev.SessionResumptionUpdate) and event.resumable and event.handle:
                self._poke()
            self._emit(event)

    def _wait_before_rotating(self) -> bool:
        return self.protocol.should_wait_before_rotating

    def _is_closing(self) -> bool:
        return self._closing

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- sending ------------------------------------------------------------------------

    async def send_audio(self, pcm: object, *, sample_rate: int | None = None) -> None:
        """Stream a PCM16 chunk (bytes, memoryview, array('h'), numpy int16/float32)."""
        if sample_rate is None:
            enc = self._audio
        else:
            found = self._audio_by_rate.get(sample_rate)
            if found is None:
                found = self._audio_by_rate[sample_rate] = AudioFrameEncoder(sample_rate)
            enc = found
        frame = enc.encode(pcm)
        if len(frame) == enc.empty_frame_size:
            raise ConfigError("audio chunk is empty")
        if not self._send_now(frame):
            await self._send_frame(frame)
        self._user_input()

    async def send_video(self, frame: bytes, *, mime_type: str = "image/jpeg") -> None:
        """Send one still frame (JPEG/PNG/WebP), about one per second."""
        if mime_type not in _IMAGE_MIME:
            raise ConfigError(f"video frames must be one of {', '.join(_IMAGE_MIME)}")
        if not frame:
            raise ConfigError("video frame is empty")
        await self.send_raw(
            ClientMessage(realtime_input=RealtimeInput(video=Blob.of(frame, mime_type)))
        )

    async def send_text(self, text: str) -> None:
        """Send typed user text as realtime input (turn end is inferred by the server)."""
        if not text:
            raise ConfigError("text is empty")
        await self.send_raw(ClientMessage(realtime_input=RealtimeInput(text=text)))

    async def send_activity_start(self) -> None:
        await self.send_raw(
            ClientMessage(realtime_input=RealtimeInput(activity_start=ActivityStart()))
        )

    async def send_activity_end(self) -> None:
        await self.send_raw(ClientMessage(realtime_input=RealtimeInput(activity_end=ActivityEnd())))

    async def send_audio_stream_end(self) -> None:
        await self.send_raw(ClientMessage(realtime_input=RealtimeInput(audio_stream_end=True)))

    async def send_client_content(
        self, turns: Content | str | Sequence[Content] | None = None, *, turn_complete: bool = True
    ) -> None:
        """Append turns to the history; ``turn_complete`` starts generation."""
        if turns is None:
            items: list[Content] | Any = UNSET
        elif isinstance(turns, str):
            items = [Content.text(turns)]
        elif isinstance(turns, Content):
            items = [turns]
        else:
            items = list(turns)
        await self.send_raw(
            ClientMessage(client_content=ClientContent(turns=items, turn_complete=turn_complete))
        )

    async def send_tool_response(
        self, responses: FunctionResponse | Iterable[FunctionResponse]
    ) -> None:
        """Answer tool calls. Every response needs the call's ``id`` on the Gemini API."""
        items = [responses] if isinstance(responses, FunctionResponse) else list(responses)
        if not items:
            raise ConfigError("no function responses given")
        if self.protocol.api == "gemini":
            for r in items:
                if r.id is UNSET or not r.id:
                    raise ConfigError(f"function response for {r.name!r} has no id")
        await self.send_raw(ClientMessage(tool_response=ToolResponse(function_responses=items)))

    async def send_context_update(
        self,
        *,
        system_instruction: Content | str | None = None,
        tools: Sequence[Tool] | None = None,
    ) -> None:
        """Change the system instruction and/or tools mid-session (``tools=[]`` clears)."""
        if system_instruction is None and tools is None:
            raise ConfigError("send_context_update needs system_instruction and/or tools")
        si: Content | Any = UNSET
        if isinstance(system_instruction, str):
            si = Content(parts=[Part(text=system_instruction)])
        elif system_instruction is not None:
            si = system_instruction
        tu: ToolsUpdate | Any = UNSET if tools is None else ToolsUpdate(tools=list(tools))
        await self.send_raw(
            ClientMessage(context_update=ContextUpdate(system_instruction=si, tools=tu))
        )
        # A later resume sends the setup again: it must carry the updated context.
        new = self.protocol.setup
        if tools is not None:
            new = msgspec.structs.replace(new, tools=list(tools) if tools else UNSET)
        if si is not UNSET:
            new = msgspec.structs.replace(new, system_instruction=si)
        self.protocol.update_setup(new)

    async def send_raw(self, message: ClientMessage) -> None:
        """Send any client message (checked: one field, one realtime payload)."""
        if message.setup is not UNSET:
            raise ConfigError("setup is sent by the session itself; use update_setup()")
        frame = encode_client(message)
        if message.tool_response is not UNSET:
            filtered = self.protocol.filter_tool_response(message.tool_response)
            if filtered is None:
                return
            if filtered is not message.tool_response:
                frame = encode_client(ClientMessage(tool_response=filtered))
            self._poke()
        if not self._send_now(frame):
            await self._send_frame(frame)
        if message.realtime_input is not UNSET or message.client_content is not UNSET:
            self._user_input()

    def _user_input(self) -> None:
        # Only the time is kept here (this runs for every audio chunk); the metrics get the
        # latest input time just before the next server frame is counted.
        if self.usage is not None:
            self._input_at = time.monotonic()

    def run_tools(self, registry: ToolRegistry, **options: Any) -> ToolRunner:
        """Answer this session's tool calls from ``registry`` (see :mod:`gemini_live.tools`).

        Returns the started :class:`~gemini_live.tools.ToolRunner`; use it as an async
        context manager or ``await runner.aclose()``.
        """
        from gemini_live.tools import run_tools

        return run_tools(self, registry, **options)

    def _sent(self, frame: bytes) -> None:
        """Book a frame written on the open connection (numbering, at-risk accounting)."""
        self.protocol.frame_sent(frame)
        h = self._handler
        if h is not None:
            h.tx_since_rx += 1

    def _send_now(self, frame: bytes) -> bool:
        """Hot path: write ``frame`` synchronously if the connection allows it right now."""
        try_send = self._try_send
        if (
            try_send is not None
            and self._open
            and not self._queue
            and not self._closing
            and try_send(frame)
        ):
            self._sent(frame)
            return True
        return False

    async def _send_frame(self, frame: bytes) -> None:
        if self._is_closing() or self.error is not None or self._runner is None:
            if self._runner is None:
                raise SessionClosedError("session is not connected: use await Session.connect()")
            raise SessionClosedError("session is closed") from self.error
        transport = self._transport
        if self._open and not self._queue and transport is not None and not transport.closed:
            self._sent(frame)
            try:
                await transport.send(frame)
            except TransportClosed:
                # The socket died between the check and the write: count it as at risk.
                self.stats.frames_at_risk += 1
                logger.warning("a frame was written to a connection that had just closed")
            return
        size = len(frame)
        if self._queue_bytes + size > self.config.offline_buffer_bytes:
            raise QueueFullError(
                f"offline send buffer full ({self._queue_bytes} of "
                f"{self.config.offline_buffer_bytes} bytes) while reconnecting; "
                "message not queued"
            )
        self._queue.append(frame)
        self._queue_bytes += size
        self.stats.frames_queued_offline += 1

    async def update_setup(self, setup: Setup) -> None:
        """Apply a new setup by resuming with it (everything but the model may change)."""
        model = self.config.transport.endpoint.model_name(setup.model)
        if model != setup.model:
            setup = msgspec.structs.replace(setup, model=model)
        self.protocol.update_setup(setup)
        self._go_away = True  # rotate now, resuming with the new setup
        self._poke()

    # -- closing ------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection and end every subscriber. Idempotent; awaits the runner."""
        if not self._is_closing():
            self._closing = True
            self._poke()
        runner = self._runner
        if runner is not None and not runner.done() and not self._open:
            # Still connecting or backing off: nothing to close gracefully.
            runner.cancel()
        if runner is not None and not runner.done() and runner is not asyncio.current_task():
            _, pending = await asyncio.wait({runner}, timeout=5.0)
            if pending:
                runner.cancel()
                await asyncio.wait({runner}, timeout=1.0)
        self._finish()

    def _finish(self, error: GeminiLiveError | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
            self.stats.last_error = str(error)
        if self._closed_event is not None and self._closed_event.is_set():
            return
        self._open = False
        self._closing = True
        code, reason = self._close_info
        if isinstance(error, ServiceError):
            code, reason = error.code, error.reason
        self._emit(ev.Closed(code, reason))
        if self._main is not None:
            self._main.end()
        for sub in list(self._subscribers):
            sub.end()
        if self._queue:
            logger.warning("session closed with %d queued frames unsent", len(self._queue))
        if self._closed_event is not None:
            self._closed_event.set()
        fr = self._first_ready
        if fr is not None and not fr.done():
            fr.set_exception(error or SessionClosedError("session closed before it was ready"))

    # -- the runner ---------------------------------------------------------------------

    async def _run(self) -> None:
        error: GeminiLiveError | None = None
        try:
            await self._run_connections()
        except GeminiLiveError as exc:
            error = exc
        except asyncio.CancelledError:
            error = None
            raise
        except Exception as exc:  # pragma: no cover - a bug; keep the app informed
            logger.exception("session runner crashed")
            error = GeminiLiveError(f"session runner crashed: {exc!r}")
        finally:
            await self._drop_transport(graceful=True)
            self._finish(error)

    async def _run_connections(self) -> None:
        policy = self.config.reconnect
        attempt = 0
        first = True
        while not self._is_closing():
            try:
                await self._open_connection()
            except GeminiLiveError as exc:
                if self._is_closing():
                    return
                if isinstance(exc, SessionNotFound) and self.protocol.resume_handle:
                    # Stale handle: start a fresh session at once.
                    logger.info("resume rejected (%s); starting a fresh session", exc)
                    self.protocol.resume_rejected()
                    continue
                if first and not policy.retry_initial:
                    raise
                if not (policy.enabled and exc.retryable):
                    raise
                attempt += 1
                if policy.max_attempts is not None and attempt > policy.max_attempts:
                    raise
                delay = policy.delay(attempt)
                self.stats.last_error = str(exc)
                self._emit(ev.Reconnecting(attempt, delay, str(exc)))
                await self._sleep(delay)
                continue
            attempt = 0
            if first:
                first = False
                fr = self._first_ready
                if fr is not None and not fr.done():
                    fr.set_result(None)
            outcome = await self._serve_connection()
            if self._is_closing():
                return
            if outcome == "rotate":
                self.stats.go_away_rotations += 1
                self._emit(ev.Reconnecting(1, 0.0, "goAway: rotating connection"))
                continue
            err = outcome
            assert isinstance(err, GeminiLiveError)
            if not (policy.enabled and err.retryable):
                raise err
            attempt += 1
            if policy.max_attempts is not None and attempt > policy.max_attempts:
                raise err
            # The first retry after a working connection goes out at once.
            delay = 0.0 if attempt == 1 else policy.delay(attempt - 1)
            self.stats.last_error = str(err)
            self._emit(ev.Reconnecting(attempt, delay, str(err)))
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        if delay <= 0:
            return
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                while not self._is_closing():
                    await self._wake.wait()
                    self._wake.clear()

    async def _open_connection(self) -> bool:
        """Connect, send setup, wait for setupComplete, flush. Returns state_restored."""
        tc = self.config.transport
        url, headers = await tc.auth.apply(tc.endpoint.url)
        options = ConnectOptions(
            headers=(*headers, *tc.headers),
            ssl_context=tc.ssl_context,
            proxy=tc.proxy,
            open_timeout=tc.open_timeout,
            ping_interval=tc.ping_interval,
            ping_timeout=tc.ping_timeout,
            max_message_size=tc.max_message_size,
            user_agent=f"gemini-live/{_version()}",
        )
        loop = asyncio.get_running_loop()
        handler = _ConnHandler(self)
        self._setup_waiter = loop.create_future()
        self.protocol.connection_made()
        try:
            transport = await self._backend.connect(url, handler, options)
        except ConnectError:
            self.protocol.connection_lost(1006, "connect failed", local=True)
            raise
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        self._transport = transport
        self._handler = handler
        sync: SyncSender | None = transport if isinstance(transport, SyncSender) else None
        self._try_send = sync.try_send if sync is not None else None
        try:
            await transport.send(self.protocol.setup_frame())
            waiter = self._setup_waiter
            try:
                async with asyncio.timeout(self.config.setup_timeout):
                    done, _ = await asyncio.wait(
                        (waiter, handler.closed), return_when=asyncio.FIRST_COMPLETED
                    )
            except TimeoutError:
                self.protocol.connection_lost(1006, "setup timeout", local=True)
                raise SetupTimeout(
                    f"no setupComplete within {self.config.setup_timeout:g} s"
                ) from None
            if waiter not in done:
                info = handler.info or CloseInfo(1006)
                raise self.protocol.connection_lost(info.code, info.reason, local=info.local)
        except BaseException:
            await self._drop_transport(graceful=False)
            raise
        restored = self.protocol.state_restored
        # Transparent resume: replay what the server did not acknowledge, then the queue.
        for frame in self.protocol.replay_frames():
            self.stats.replayed_frames += 1
            await transport.send(frame)
        while self._queue:
            frame = self._queue.popleft()
            self._queue_bytes -= len(frame)
            self._sent(frame)
            await transport.send(frame)
        self._open = True
        return restored

    async def _serve_connection(self) -> GeminiLiveError | Literal["rotate"]:
        """Wait until this connection ends; returns the error or "rotate"."""
        handler = self._handler
        transport = self._transport
        assert handler is not None and transport is not None and self._wake is not None
        idle = self.config.transport.idle_timeout
        while True:
            if self._is_closing():
                return SessionClosedError("closing")
            if self._go_away:
                self._go_away = False
                await self._prepare_rotation(handler)
                if handler.info is None:
                    self._open = False
                    self.protocol.start_closing()
                    await self._drop_transport(graceful=True)
                    self.protocol.connection_lost(1000, "rotating after goAway", local=True)
                    return "rotate"
            if handler.info is not None:
                break
            self._wake.clear()
            wake_task = asyncio.ensure_future(self._wake.wait())
            try:
                timeout = None
                if idle is not None:
                    timeout = max(0.0, handler.last_rx + idle - time.monotonic())
                done, _ = await asyncio.wait(
                    (wake_task, handler.closed),
                    timeout=timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                wake_task.cancel()
            if not done and idle is not None and time.monotonic() - handler.last_rx >= idle:
                logger.warning("no frame for %.1f s; reconnecting", idle)
                self._open = False
                info = CloseInfo(1006, "idle timeout", local=True)
                handler.on_close(info)
                transport.abort()
                break
        info = handler.info or CloseInfo(1006)
        self._open = False
        if info.code == 1006:
            self.stats.abrupt_drops += 1
        if not info.local and not self.protocol.transparent:
            # The server (or the network) cut the connection: frames written after its
            # last frame may not have been read.
            self.stats.frames_at_risk += handler.tx_since_rx
        err = self.protocol.connection_lost(info.code, info.reason, local=info.local)
        self._close_info = (info.code, info.reason)
        await self._drop_transport(graceful=False)
        return err

    async def _prepare_rotation(self, handler: _ConnHandler) -> None:
        """Before rotating on goAway: let tool state settle if the deadline allows.

        Waits while a BLOCKING call is unanswered or the newest resumable handle predates
        the latest tool call/answer, until ``go_away_margin`` before the deadline.
        """
        deadline = self.protocol.go_away_deadline
        if deadline is None or not self._wait_before_rotating():
            return
        assert self._wake is not None
        logger.info(
            "goAway with a pending blocking tool call or tool state newer than the last "
            "handle: waiting for the answer and a fresh handle before rotating"
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(_loop_time_at(deadline - self.config.go_away_margin)):
                while (
                    handler.info is None and not self._is_closing() and self._wait_before_rotating()
                ):
                    self._wake.clear()
                    wake_task = asyncio.ensure_future(self._wake.wait())
                    try:
                        await asyncio.wait(
                            (wake_task, handler.closed), return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        wake_task.cancel()

    async def _drop_transport(self, *, graceful: bool) -> None:
        transport, self._transport = self._transport, None
        self._open = False
        self._try_send = None
        if transport is None:
            return
        if graceful and not transport.closed:
            try:
                async with asyncio.timeout(2.0):
                    await transport.close(1000, "")
            except (TimeoutError, GeminiLiveError, OSError):
                transport.abort()
        elif not transport.closed:
            transport.abort()


def _loop_time_at(monotonic_deadline: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


def _version() -> str:
    from gemini_live._version import __version__

    return __version__


def _resolve_backend(backend: str | Backend) -> Backend:
    if not isinstance(backend, str):
        return backend
    from gemini_live.transport import get_backend

    resolved: Backend = get_backend(backend)
    return resolved
