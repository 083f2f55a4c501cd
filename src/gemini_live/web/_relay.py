"""The browser relay: one browser WebSocket <-> one :class:`gemini_live.Session`.

The wire protocol between the page and the relay is documented in ``docs/web-relay.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import logging
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec

import gemini_live as gl
from gemini_live import events as ev
from gemini_live._asgi import Message, Notifier, Receive, Scope, Send
from gemini_live.audio import INPUT_RATE, OUTPUT_RATE, Resampler
from gemini_live.errors import ConfigError, GeminiLiveError
from gemini_live.types import UNSET, AutomaticActivityDetection, RealtimeInputConfig
from gemini_live.vad import ActivityDetector, ActivitySender, VadAction

__all__ = [
    "PROTOCOL_VERSION",
    "ConnectionInfo",
    "PlaybackReport",
    "Relay",
    "RelayLimits",
    "RelayRejected",
    "RelayStats",
    "TurnDetection",
    "with_client_activity",
]

logger = logging.getLogger("gemini_live.web")

#: Version of the browser <-> relay message protocol (docs/web-relay.md).
PROTOCOL_VERSION: Final = 1
#: Who decides when the user's turn ends: the relay's VAD, the service, or the page.
TurnDetection = Literal["vad", "server", "manual"]


# Close codes sent to the browser (RFC 6455 and the 4000-4999 private range).
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_UNSUPPORTED: Final = 1003
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_INTERNAL: Final = 1011
CLOSE_TRY_AGAIN: Final = 1013
CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_FORBIDDEN_ORIGIN: Final = 4403
CLOSE_RATE_LIMITED: Final = 4429
CLOSE_UPSTREAM: Final = 4502


class RelayRejected(Exception):
    """Raise from an ``authorize`` or ``config`` hook to refuse a browser with a reason.

    The reason is shown to the browser (keep it short, at most 120 bytes, no secrets).
    """

    def __init__(self, reason: str, code: int = CLOSE_UNAUTHORIZED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class RelayLimits:
    """Per-process and per-connection limits; every one closes with a reason when hit."""

    #: Browser connections one relay serves at once; more are closed 1013.
    max_connections: int = 100
    #: Largest message from the browser (bytes); bigger ones close 1009.
    max_message_bytes: int = 64 * 1024
    #: Sustained messages per second per connection (token bucket), and its burst.
    messages_per_second: float = 200.0
    message_burst: int = 400
    #: Sustained audio bytes per second per connection (default: 4x real time at 16 kHz).
    audio_bytes_per_second: float = 4 * INPUT_RATE * 2
    audio_burst_bytes: int = 4 * INPUT_RATE * 2
    #: Longest text message (characters).
    max_text_chars: int = 4096
    #: Seconds to wait for the upstream session to open.
    connect_timeout: float = 15.0
    #: Close a connection after this many seconds without a browser message (None: never).
    idle_timeout: float | None = 300.0


@dataclass(frozen=True)
class PlaybackReport:
    """What the page reported about playing the model's audio."""

    state: Literal["playing", "stopped", "drained"]
    played_ms: float
    at: float


@dataclass
class ConnectionInfo:
    """One browser connection, as the hooks see it."""

    id: int
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    client: tuple[str, int] | None
    origin: str | None
    #: Whatever ``authorize`` returned (a user id, a claims dict...).
    identity: object = None
    opened_at: float = field(default_factory=time.monotonic)
    session_id: str | None = None
    #: PCM16 bytes received from the browser.
    audio_in_bytes: int = 0
    #: PCM16 bytes of model audio sent to the browser.
    audio_out_bytes: int = 0
    #: Audio bytes not forwarded (push-to-talk released, or outside an utterance).
    audio_not_forwarded_bytes: int = 0
    #: Utterances the relay's VAD detected (turn_detection="vad").
    utterances: int = 0
    interruptions: int = 0
    turns: int = 0
    playback: list[PlaybackReport] = field(default_factory=list)
    #: Close code and reason sent to the browser.
    close: tuple[int, str] | None = None


@dataclass
class RelayStats:
    """Counters of a :class:`Relay` (connections accepted, rejected, active, ...)."""

    accepted: int = 0
    rejected: int = 0
    active: int = 0
    peak_active: int = 0
    closes: dict[str, int] = field(default_factory=dict)


# -- browser -> relay messages ---------------------------------------------------------


class _Text(msgspec.Struct, tag="text", forbid_unknown_fields=True):
    text: str


class _ActivityStart(msgspec.Struct, tag="activity_start", forbid_unknown_fields=True):
    pass


class _ActivityEnd(msgspec.Struct, tag="activity_end", forbid_unknown_fields=True):
    pass


class _AudioEnd(msgspec.Struct, tag="audio_end", forbid_unknown_fields=True):
    pass


class _Playback(msgspec.Struct, tag="playback", forbid_unknown_fields=True):
    state: Literal["playing", "stopped", "drained"]
    played_ms: float = 0.0


class _Ping(msgspec.Struct, tag="ping", forbid_unknown_fields=True):
    id: int | str | None = None


_Inbound = _Text | _ActivityStart | _ActivityEnd | _AudioEnd | _Playback | _Ping
_decoder: Final = msgspec.json.Decoder(_Inbound)
_encode: Final = msgspec.json.Encoder().encode


class _Gone(Exception):
    """The browser disconnected; nothing more to send or log."""


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Bucket:
    __slots__ = ("burst", "level", "rate", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst
        self.stamp = time.monotonic()

    def take(self, n: float, now: float) -> bool:
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level < n:
            return False
        self.level -= n
        return True


ConfigHook = Callable[[ConnectionInfo], "gl.SessionConfig | Awaitable[gl.SessionConfig]"]
AuthorizeHook = Callable[[ConnectionInfo], object]
SessionHook = Callable[["gl.Session", ConnectionInfo], object]
CloseHook = Callable[[ConnectionInfo], object]


def with_client_activity(config: gl.SessionConfig) -> gl.SessionConfig:
    """Return ``config`` with the service's automatic activity detection disabled.

    The client then brackets each utterance with ``activityStart``/``activityEnd``.
    """
    setup = config.setup
    ric = setup.realtime_input_config
    if ric is UNSET:
        ric = RealtimeInputConfig()
    aad = ric.automatic_activity_detection
    if aad is UNSET:
        aad = AutomaticActivityDetection()
    if aad.disabled is True:
        return config
    aad = msgspec.structs.replace(aad, disabled=True)
    ric = msgspec.structs.replace(ric, automatic_activity_detection=aad)
    return dataclasses.replace(
        config, setup=msgspec.structs.replace(setup, realtime_input_config=ric)
    )


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _host_origin(headers: Mapping[str, str], scheme: str) -> set[str]:
    host = headers.get("host", "")
    if not host:
        return set()
    http = "https" if scheme in ("wss", "https") else "http"
    return {f"{http}://{host}".lower()}


Origins = frozenset[str] | Literal["*"] | None


def parse_origins(allowed_origins: Sequence[str] | Literal["*"] | None) -> Origins:
    if allowed_origins is None:
        return None
    if isinstance(allowed_origins, str):
        if allowed_origins != "*":
            raise ConfigError("allowed_origins must be a list of origins, '*' or None")
        return "*"
    return frozenset(o.rstrip("/").lower() for o in allowed_origins)


def origin_allowed(
    origins: Origins,
    allow_no_origin: bool,
    origin: str | None,
    headers: Mapping[str, str],
    scheme: str,
) -> bool:
    """The origin check shared by the relay and the token endpoint."""
    if origin is None:
        return allow_no_origin
    if origins == "*":
        return True
    allowed = origins if origins is not None else _host_origin(headers, scheme)
    return origin.rstrip("/").lower() in allowed


class Relay:
    """An ASGI WebSocket app that puts a browser in front of a Live API session.

    Each browser connection gets its own :class:`~gemini_live.Session` (with its
    reconnects and resumption: a ``goAway`` never reaches the browser). The API key stays
    in the ``config`` hook on the server. Mount it in a Starlette or FastAPI app::

        relay = Relay(lambda conn: gl.build_config(api_key=KEY, voice="Puck"))
        app.router.routes.append(WebSocketRoute("/live", relay))  # Starlette/FastAPI

    Args:
        config: ``config(conn) -> SessionConfig`` (sync or async), called per connection:
            system instruction, tools, voice, credentials. Raise :class:`RelayRejected` to
            refuse.
        authorize: ``authorize(conn)`` (sync or async) decides who may connect: return
            an identity (stored in ``conn.identity``) or ``None``/``False`` to refuse
            with 4401; raise :class:`RelayRejected` for another code or reason. ``None``
            (the default) lets everyone in who passes the origin check.
        allowed_origins: Browser origins allowed to connect (``"https://app.example"``).
            ``None`` (default): only the relay's own origin (the ``Host`` header).
            ``"*"`` allows any origin. A request without an ``Origin`` header (not a
            browser) is refused unless ``allow_no_origin`` is true.
        turn_detection: ``"vad"`` (default): the relay's VAD (:mod:`gemini_live.vad`)
            sends ``activityStart``/``activityEnd`` and the setup's automatic detection
            is disabled for you. ``"server"``: the setup is left alone and all audio is
            streamed; the page's ``audio_end`` sends ``audioStreamEnd``, and with
            ``stream_end_on_silence`` the relay's VAD sends it after each utterance.
            ``"manual"``: push-to-talk from the page (``activity_start``/``activity_end``).
        detector: Factory for the per-connection :class:`~gemini_live.vad.ActivityDetector`.
        on_session: ``on_session(session, conn)`` (sync or async) runs once the upstream
            session is open, e.g. to start ``session.run_tools(registry)``. The relay
            reads the session's main event stream; hooks that want events too use
            ``session.events()`` or ``session.on_event``.
        on_close: ``on_close(conn)`` after the browser connection ended.
        limits: See :class:`RelayLimits`.
    """

    def __init__(
        self,
        config: ConfigHook,
        *,
        authorize: AuthorizeHook | None = None,
        allowed_origins: Sequence[str] | Literal["*"] | None = None,
        allow_no_origin: bool = False,
        turn_detection: TurnDetection = "vad",
        stream_end_on_silence: bool = False,
        detector: Callable[[], ActivityDetector] | None = None,
        on_session: SessionHook | None = None,
        on_close: CloseHook | None = None,
        limits: RelayLimits | None = None,
        keep_finished: int = 100,
    ) -> None:
        if turn_detection not in ("vad", "server", "manual"):
            raise ConfigError(
                f"turn_detection must be 'vad', 'server' or 'manual', got {turn_detection!r}"
            )
        self._config = config
        self._authorize = authorize
        self._origins = parse_origins(allowed_origins)
        self._allow_no_origin = allow_no_origin
        self.turn_detection: TurnDetection = turn_detection
        self.stream_end_on_silence = stream_end_on_silence
        self._detector = detector or ActivityDetector
        self._on_session = on_session
        self._on_close = on_close
        self.limits = limits or RelayLimits()
        self.stats = RelayStats()
        #: Open connections by id.
        self.connections: dict[int, ConnectionInfo] = {}
        #: The most recent finished connections (newest last).
        self.finished: deque[ConnectionInfo] = deque(maxlen=keep_finished)
        self._ids = itertools.count(1)
        self._notifier = Notifier()

    def __repr__(self) -> str:
        return f"<Relay turn_detection={self.turn_detection!r} active={self.stats.active}>"

    # -- observation ------------------------------------------------------------------

    def _notify(self) -> None:
        self._notifier.notify()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked after every relay state change)."""
        await self._notifier.wait_for(predicate, within)

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        if scope["type"] == "http":
            body = b"this endpoint speaks WebSocket only"
            await send(
                {
                    "type": "http.response.start",
                    "status": 426,
                    "headers": [(b"content-type", b"text/plain"), (b"upgrade", b"websocket")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "websocket":
            return
        await _Connection(self, scope, receive, send).run()

    # -- helpers used by _Connection ---------------------------------------------------

    def _origin_ok(self, origin: str | None, headers: Mapping[str, str], scheme: str) -> bool:
        return origin_allowed(self._origins, self._allow_no_origin, origin, headers, scheme)

    def _count_close(self, reason: str) -> None:
        key = reason.split(":", 1)[0]
        self.stats.closes[key] = self.stats.closes.get(key, 0) + 1


class _Connection:
    def __init__(
        self,
        relay: Relay,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        self.relay = relay
        self.scope = scope
        self._receive = receive
        self._send = send
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        query = dict(
            urllib.parse.parse_qsl(
                scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
            )
        )
        client = scope.get("client")
        self.info = ConnectionInfo(
            id=next(relay._ids),
            path=str(scope.get("path", "")),
            headers=headers,
            query=query,
            client=(str(client[0]), int(client[1])) if client else None,
            origin=headers.get("origin"),
        )
        self.session: gl.Session | None = None
        self.sender: ActivitySender | None = None
        self.ptt_pressed = False
        self._accepted = False
        self._closed = False
        lim = relay.limits
        self._msgs = _Bucket(lim.messages_per_second, lim.message_burst)
        self._bytes = _Bucket(lim.audio_bytes_per_second, lim.audio_burst_bytes)
        self._resampler: Resampler | None = None
        self._send_lock = asyncio.Lock()
        self._last_rx = time.monotonic()

    # -- low-level ASGI ------------------------------------------------------------------

    async def _accept(self) -> None:
        msg = await self._receive()
        if msg["type"] != "websocket.connect":
            raise _Close(CLOSE_POLICY, "expected a WebSocket handshake")
        await self._send({"type": "websocket.accept"})
        self._accepted = True

    async def send_json(self, obj: dict[str, Any]) -> None:
        await self._send_message({"type": "websocket.send", "text": _encode(obj).decode()})

    async def send_bytes(self, data: bytes) -> None:
        await self._send_message({"type": "websocket.send", "bytes": data})

    async def _send_message(self, message: Message) -> None:
        if self._closed:
            return
        async with self._send_lock:
            try:
                await self._send(message)
            except Exception:
                # The browser went away mid-send (the server raises its own error type).
                self._closed = True
                if self.info.close is None:
                    self.info.close = (CLOSE_GOING_AWAY, "browser disconnected")
                    self.relay._count_close("browser disconnected")
                raise _Gone() from None

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        reason = reason.encode()[:120].decode("utf-8", "ignore")
        self.info.close = (code, reason)
        self.relay._count_close(reason)
        with contextlib.suppress(Exception):
            async with self._send_lock:
                await self._send({"type": "websocket.close", "code": code, "reason": reason})

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        relay = self.relay
        stats = relay.stats
        info = self.info
        try:
            await self._accept()
        except Exception:
            return
        registered = admitted = False
        try:
            scheme = str(self.scope.get("scheme", "ws"))
            if not relay._origin_ok(info.origin, info.headers, scheme):
                raise _Close(CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
            if stats.active >= relay.limits.max_connections:
                raise _Close(CLOSE_TRY_AGAIN, "server busy: too many connections")
            stats.active += 1
            stats.peak_active = max(stats.peak_active, stats.active)
            relay.connections[info.id] = info
            registered = True
            await self._authorize()
            admitted = True
            stats.accepted += 1
            relay._notify()
            await self._serve()
        except _Gone:
            pass
        except _Close as exc:
            await self.close(exc.code, exc.reason)
        except RelayRejected as exc:
            await self.close(exc.code, exc.reason)
        except GeminiLiveError as exc:
            logger.warning("relay connection %d: upstream error: %s", info.id, exc)
            await self.close(CLOSE_UPSTREAM, f"upstream error: {type(exc).__name__}")
        except Exception:
            logger.exception("relay connection %d failed", info.id)
            await self.close(CLOSE_INTERNAL, "internal error")
        finally:
            if not admitted:
                stats.rejected += 1
            if registered:
                stats.active -= 1
                relay.connections.pop(info.id, None)
            if self.session is not None:
                with contextlib.suppress(Exception):
                    await self.session.close()
            if not self._closed:
                await self.close(CLOSE_NORMAL, "bye")
            if relay._on_close is not None:
                try:
                    await _maybe_await(relay._on_close(info))
                except Exception:
                    logger.exception("relay on_close hook raised")
            relay.finished.append(info)
            relay._notify()

    async def _authorize(self) -> None:
        hook = self.relay._authorize
        if hook is None:
            return
        identity = await _maybe_await(hook(self.info))
        if identity is None or identity is False:
            raise _Close(CLOSE_UNAUTHORIZED, "unauthorized")
        self.info.identity = identity

    async def _open_session(self) -> gl.Session:
        relay = self.relay
        config = await _maybe_await(relay._config(self.info))
        if not isinstance(config, gl.SessionConfig):
            raise TypeError(f"the relay's config hook returned {type(config).__name__}")
        if relay.turn_detection in ("vad", "manual"):
            config = with_client_activity(config)
        try:
            async with asyncio.timeout(relay.limits.connect_timeout):
                session = await gl.connect(config=config)
        except TimeoutError:
            raise _Close(CLOSE_UPSTREAM, "upstream connect timed out") from None
        except GeminiLiveError as exc:
            logger.warning("relay %d: upstream connect failed: %s", self.info.id, exc)
            raise _Close(CLOSE_UPSTREAM, f"upstream connect failed: {type(exc).__name__}") from None
        return session

    async def _serve(self) -> None:
        relay = self.relay
        session = self.session = await self._open_session()
        self.info.session_id = session.session_id
        if relay.turn_detection == "vad" or (
            relay.turn_detection == "server" and relay.stream_end_on_silence
        ):
            mode: Literal["activity", "stream_end"] = (
                "activity" if relay.turn_detection == "vad" else "stream_end"
            )
            self.sender = ActivitySender(session, relay._detector(), mode=mode)
        await self.send_json(
            {
                "type": "ready",
                "protocol": PROTOCOL_VERSION,
                "session_id": self.info.session_id,
                "input_rate": INPUT_RATE,
                "output_rate": OUTPUT_RATE,
                "turn_detection": relay.turn_detection,
            }
        )
        if relay._on_session is not None:
            await _maybe_await(relay._on_session(session, self.info))
        tasks = {
            asyncio.create_task(self._downstream(session), name="relay-down"),
            asyncio.create_task(self._upstream(session), name="relay-up"),
        }
        if relay.limits.idle_timeout is not None:
            tasks.add(asyncio.create_task(self._idle_watchdog(relay.limits.idle_timeout)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            exc = t.exception()
            if exc is not None:
                raise exc

    # -- browser -> session ------------------------------------------------------------

    async def _idle_watchdog(self, idle: float) -> None:
        # One timer per connection instead of a timeout around every receive.
        while True:
            left = self._last_rx + idle - time.monotonic()
            if left <= 0:
                raise _Close(CLOSE_POLICY, "idle timeout")
            await asyncio.sleep(left)  # a timer: re-checked against the last message

    async def _upstream(self, session: gl.Session) -> None:
        lim = self.relay.limits
        while True:
            msg = await self._receive()
            kind = msg["type"]
            if kind == "websocket.disconnect":
                self._closed = True
                code = int(msg.get("code", CLOSE_NORMAL))
                self.info.close = (code, "closed by the browser")
                self.relay._count_close("closed by the browser")
                return
            if kind != "websocket.receive":
                continue
            now = self._last_rx = time.monotonic()
            data = msg.get("bytes")
            text = msg.get("text")
            size = len(data) if data is not None else len(text.encode()) if text else 0
            if size > lim.max_message_bytes:
                raise _Close(
                    CLOSE_TOO_BIG, f"message too big: {size} bytes > {lim.max_message_bytes}"
                )
            if not self._msgs.take(1, now):
                raise _Close(CLOSE_RATE_LIMITED, "rate limit: too many messages")
            if data is not None:
                if not self._bytes.take(len(data), now):
                    raise _Close(CLOSE_RATE_LIMITED, "rate limit: audio faster than real time")
                await self._audio(session, data)
            elif text is not None:
                await self._control(session, text)

    async def _audio(self, session: gl.Session, data: bytes) -> None:
        if not data:
            raise _Close(CLOSE_UNSUPPORTED, "empty audio message")
        if len(data) & 1:
            raise _Close(CLOSE_UNSUPPORTED, "audio must be 16-bit PCM (odd byte count)")
        self.info.audio_in_bytes += len(data)
        td = self.relay.turn_detection
        if td == "manual":
            if self.ptt_pressed:
                await session.send_audio(data, sample_rate=INPUT_RATE)
            else:
                self.info.audio_not_forwarded_bytes += len(data)
            return
        sender = self.sender
        if sender is None:
            await session.send_audio(data, sample_rate=INPUT_RATE)
            return
        actions = await sender.feed(data)
        await self._report_vad(actions)

    async def _report_vad(self, actions: list[VadAction]) -> None:
        for a in actions:
            if a.kind == "start":
                self.info.utterances += 1
                await self.send_json({"type": "vad", "speaking": True, "source": "relay"})
                self.relay._notify()
            elif a.kind == "end":
                await self.send_json({"type": "vad", "speaking": False, "source": "relay"})
                self.relay._notify()
            elif a.kind == "silence" and self.relay.turn_detection == "vad":
                self.info.audio_not_forwarded_bytes += len(a.audio)

    async def _control(self, session: gl.Session, text: str) -> None:
        try:
            msg = _decoder.decode(text)
        except msgspec.ValidationError as exc:
            raise _Close(CLOSE_UNSUPPORTED, f"bad message: {exc}") from None
        except msgspec.DecodeError:
            raise _Close(CLOSE_UNSUPPORTED, "bad message: not JSON") from None
        td = self.relay.turn_detection
        if isinstance(msg, _Text):
            if not msg.text.strip():
                raise _Close(CLOSE_UNSUPPORTED, "bad message: empty text")
            if len(msg.text) > self.relay.limits.max_text_chars:
                raise _Close(CLOSE_TOO_BIG, "text too long")
            await session.send_text(msg.text)
        elif isinstance(msg, (_ActivityStart, _ActivityEnd)):
            if td != "manual":
                raise _Close(
                    CLOSE_UNSUPPORTED, "activity_start/activity_end need turn_detection 'manual'"
                )
            if isinstance(msg, _ActivityStart) and not self.ptt_pressed:
                self.ptt_pressed = True
                await session.send_activity_start()
            elif isinstance(msg, _ActivityEnd) and self.ptt_pressed:
                self.ptt_pressed = False
                await session.send_activity_end()
        elif isinstance(msg, _AudioEnd):
            if td == "server":
                await session.send_audio_stream_end()
            elif td == "vad" and self.sender is not None:
                await self._report_vad(await self.sender.finish())
            elif td == "manual" and self.ptt_pressed:
                self.ptt_pressed = False
                await session.send_activity_end()
        elif isinstance(msg, _Playback):
            self.info.playback.append(
                PlaybackReport(msg.state, max(0.0, float(msg.played_ms)), time.monotonic())
            )
            self.relay._notify()
        else:
            await self.send_json({"type": "pong", "id": msg.id})

    # -- session -> browser -------------------------------------------------------------

    async def _downstream(self, session: gl.Session) -> None:
        info = self.info
        async for event in session:
            match event:
                case ev.ModelAudio(data=data, sample_rate=rate):
                    if rate != OUTPUT_RATE:
                        if self._resampler is None or self._resampler.from_rate != rate:
                            self._resampler = Resampler(rate, OUTPUT_RATE)
                        data = self._resampler.process(data)
                    if data:
                        info.audio_out_bytes += len(data)
                        await self.send_bytes(data)
                case ev.ModelText(text=text, thought=False):
                    await self.send_json({"type": "text", "text": text})
                case ev.InputTranscription(text=text, finished=finished, interim=interim):
                    await self.send_json(
                        {
                            "type": "input_transcript",
                            "text": text,
                            "finished": finished,
                            "interim": interim,
                        }
                    )
                case ev.OutputTranscription(text=text, finished=finished):
                    await self.send_json(
                        {"type": "output_transcript", "text": text, "finished": finished}
                    )
                case ev.Interrupted():
                    info.interruptions += 1
                    await self.send_json({"type": "interrupted"})
                    self.relay._notify()
                case ev.GenerationComplete():
                    await self.send_json({"type": "generation_complete"})
                case ev.TurnComplete():
                    info.turns += 1
                    await self.send_json({"type": "turn_complete"})
                    self.relay._notify()
                case ev.ToolCall(calls=calls):
                    await self.send_json(
                        {"type": "tool_call", "names": [str(c.name) for c in calls]}
                    )
                case ev.ToolCallCancellation(ids=ids):
                    await self.send_json({"type": "tool_cancelled", "count": len(ids)})
                case ev.VoiceActivity(kind=kind):
                    await self.send_json(
                        {"type": "vad", "speaking": kind.endswith("START"), "source": "server"}
                    )
                case ev.Reconnecting():
                    await self.send_json({"type": "state", "state": "reconnecting"})
                case ev.Resumed(state_restored=restored):
                    await self.send_json({"type": "state", "state": "open", "restored": restored})
                case ev.Lagged(count=count):
                    logger.warning("relay %d: the browser fell behind by %d events", info.id, count)
                case ev.Closed(code=code, reason=reason):
                    logger.info("relay %d: upstream closed %s %s", info.id, code, reason)
                    raise _Close(CLOSE_UPSTREAM, f"upstream closed: {code} {reason}".strip())
                case _:
                    pass
        raise _Close(CLOSE_UPSTREAM, "upstream closed")
