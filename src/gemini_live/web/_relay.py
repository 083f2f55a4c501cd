"""The browser relay: one browser WebSocket <-> one :class:`gemini_live.Session`.

The wire protocol between the page and the relay is documented in ``docs/web-relay.md``.
The connection's lifecycle (accept, admit, serve, bounded close, cleanup) is the one the
phone bridges share (:mod:`gemini_live._bridge`); this module keeps the page's message
format and turn detection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import itertools
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

import gemini_live as gl
from gemini_live import events as ev
from gemini_live._asgi import Notifier, Receive, Scope, Send
from gemini_live._bridge import (
    EVENT_BACKLOG,
    AudioMeter,
    Bucket,
    EventPump,
    KeyedCounter,
    PeerClose,
    PeerSocket,
    bounded,
    identity_key,
    mask_mapping,
    maybe_await,
    parse_scope,
)
from gemini_live.audio import INPUT_RATE, OUTPUT_RATE, Resampler
from gemini_live.config import with_client_activity
from gemini_live.errors import ConfigError, GeminiLiveError
from gemini_live.store._record import MAX_TEXT_IDS
from gemini_live.vad import ActivityDetector, ActivitySender, VadAction
from gemini_live.vad import _numpy as vad_numpy

if TYPE_CHECKING:
    from gemini_live.store import ConversationStore

__all__ = [
    "ALLOW_ANYONE",
    "CLOSE_MOVED",
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
#: The relay is draining (a deploy): the conversation was saved; reconnect (through the
#: load balancer) with ``?conversation=ID`` and it goes on elsewhere.
CLOSE_MOVED: Final = 4012

#: Seconds the upstream session gets to close when a browser connection ends.
_SESSION_CLOSE_TIMEOUT: Final = 5.0
#: A page's conversation id (``?conversation=``): what the relay hands out, and no more.
_CONVERSATION_ID: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
#: A page's text id (``{"type": "text", "id": ...}``).
_TEXT_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Bound on waiting for the save that holds an accepted text (before its ``text_ack``).
_TEXT_SAVE_TIMEOUT: Final = 5.0
#: Bound on holding a ``turn_complete`` for the save of the handle that follows it.
_TURN_SAVE_TIMEOUT: Final = 2.0
#: Playback reports kept per connection (the totals count them all).
_RECENT_PLAYBACK: Final = 16
#: 16 kHz PCM16: bytes of one second of the page's audio.
_BYTES_PER_SECOND: Final = INPUT_RATE * 2


class RelayRejected(Exception):
    """Raise from an ``authorize`` or ``config`` hook to refuse a browser with a reason.

    The reason is shown to the browser (keep it short, at most 120 bytes, no secrets).
    """

    def __init__(self, reason: str, code: int = CLOSE_UNAUTHORIZED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class _AllowAnyone:
    """The explicit opt-out of the identity check (local development only)."""

    _instance: _AllowAnyone | None = None

    def __new__(cls) -> _AllowAnyone:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Relay.ALLOW_ANYONE"


#: ``Relay(config, authorize=ALLOW_ANYONE)``: no identity check. Anyone who can reach
#: the relay (and passes the origin check, which a script forges) talks to the model on
#: your key. For local development; the relay logs a warning when it is built.
ALLOW_ANYONE: Final = _AllowAnyone()


def _check_positive(name: str, value: float | None, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if value is None or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"RelayLimits.{name} must be > 0{' or None' if optional else ''}")


@dataclass(frozen=True)
class RelayLimits:
    """Per-process, per-address, per-identity and per-connection limits; every one closes
    with a reason when hit (audio over its rate is first dropped and counted)."""

    #: Browser connections one relay serves at once; more are closed 1013.
    max_connections: int = 100
    #: Connections at once from one client address (None: no limit); more are closed
    #: 4429. Behind a reverse proxy every browser shares the proxy's address: raise it.
    max_connections_per_address: int | None = 10
    #: Connections at once for one identity ``authorize`` returned (None: no limit).
    max_connections_per_identity: int | None = 5
    #: Largest message from the browser (bytes); bigger ones close 1009. The library's
    #: server (``web.serve``/``running``) also sets uvicorn's ``ws_max_size`` to it.
    max_message_bytes: int = 64 * 1024
    #: Sustained messages per second per connection (token bucket), and its burst.
    messages_per_second: float = 200.0
    message_burst: int = 400
    #: User turns (text messages, push-to-talk presses, utterances the relay's VAD
    #: detects) per minute per connection (None: no limit); more close 4429.
    turns_per_minute: int | None = 30
    #: Sustained audio bytes per second per connection (default: 1.2x real time at
    #: 16 kHz) and the burst a jittery network may bunch up (default: 2 s of audio).
    audio_bytes_per_second: float = 1.2 * _BYTES_PER_SECOND
    audio_burst_bytes: int = 2 * _BYTES_PER_SECOND
    #: Audio beyond that rate is dropped and counted; after this many dropped bytes the
    #: connection is closed 4429 (None: only drop).
    audio_excess_close_bytes: int | None = 2 * _BYTES_PER_SECOND
    #: Longest text message (characters).
    max_text_chars: int = 4096
    #: Seconds to wait for the upstream session to open (and for ``authorize``).
    connect_timeout: float = 15.0
    #: Close a connection after this many seconds without a browser message (None: never).
    idle_timeout: float | None = 300.0
    #: Close a connection this many seconds after it opened, active or not (None: never).
    max_age: float | None = 3600.0
    #: Seconds to wait for the close frame to be sent (a browser that stopped reading
    #: never takes it); then the relay stops waiting and aborts the transport.
    close_timeout: float = 2.0
    #: Seconds a client gets to finish its HTTP request/upgrade (``web.serve``/``running``
    #: close half-sent requests after it).
    handshake_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_message_bytes", "message_burst", "max_text_chars"):
            _check_positive(name, getattr(self, name), optional=False)
        for name in ("messages_per_second", "audio_bytes_per_second", "audio_burst_bytes"):
            _check_positive(name, getattr(self, name), optional=False)
        for name in ("connect_timeout", "close_timeout", "handshake_timeout"):
            _check_positive(name, getattr(self, name), optional=False)
        for name in (
            "max_connections_per_address",
            "max_connections_per_identity",
            "turns_per_minute",
            "audio_excess_close_bytes",
            "idle_timeout",
            "max_age",
        ):
            _check_positive(name, getattr(self, name))


@dataclass(frozen=True)
class PlaybackReport:
    """What the page reported about playing the model's audio."""

    state: Literal["playing", "stopped", "drained"]
    played_ms: float
    at: float


def _masked_repr(obj: object, masked: tuple[str, ...]) -> str:
    parts = []
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if f.name in masked and isinstance(value, Mapping):
            value = mask_mapping(value)
        parts.append(f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


@dataclass(repr=False)
class ConnectionInfo:
    """One browser connection, as the hooks see it.

    Its ``repr`` masks credentials (cookies, ``Authorization``, token-like query
    parameters); the hooks read the real values from :attr:`headers` and :attr:`query`.
    """

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
    #: The most recent playback reports (bounded); the totals below count them all.
    playback: deque[PlaybackReport] = field(default_factory=lambda: deque(maxlen=_RECENT_PLAYBACK))
    #: Close code and reason sent to (or received from) the browser.
    close: tuple[int, str] | None = None
    #: Audio bytes dropped because they came faster than real time allows.
    audio_dropped_bytes: int = 0
    #: User turns counted against ``turns_per_minute`` (texts, presses, utterances).
    user_turns: int = 0
    #: Playback reports received.
    playback_reports: int = 0
    #: Milliseconds of model audio the page reported played (stopped + drained replies).
    played_ms_total: float = 0.0

    @property
    def last_playback(self) -> PlaybackReport | None:
        """The latest playback report, if any."""
        return self.playback[-1] if self.playback else None

    def __repr__(self) -> str:
        return _masked_repr(self, ("headers", "query"))


@dataclass
class RelayStats:
    """Counters of a :class:`Relay` (connections accepted, rejected, active, ...)."""

    accepted: int = 0
    rejected: int = 0
    active: int = 0
    peak_active: int = 0
    #: Closes by reason (the part before any ``:``).
    closes: dict[str, int] = field(default_factory=dict)
    #: Audio bytes dropped because a browser sent faster than real time allows.
    audio_dropped_bytes: int = 0
    #: Closes whose frame could not be sent in time (the browser stopped reading).
    aborted: int = 0
    #: Connections moved away by :meth:`Relay.drain` (closed 4012).
    moved: int = 0
    #: Of those, the ones whose turn had not ended when the drain's time ran out.
    moved_mid_turn: int = 0
    #: Texts that arrived after the drain began (not forwarded: the page re-sends them).
    not_forwarded_texts: int = 0
    #: Re-sent texts whose id the conversation had accepted already (not sent again).
    duplicate_texts: int = 0
    #: Turn ends forwarded before a save held a handle issued after them (no handle was
    #: saved within 2 s: from then on that connection forwards turn ends at once): a
    #: crash right then may have the turn answered again.
    turns_not_covered: int = 0
    #: Turn ends sent again to a page that rejoined and named a text whose turn end it
    #: had not received (its worker died between the save covering the turn and the
    #: ``turn_complete``): answered from the stored record, the text not sent again.
    turn_ends_replayed: int = 0


# -- browser -> relay messages ---------------------------------------------------------


class _Text(msgspec.Struct, tag="text", forbid_unknown_fields=True):
    text: str
    #: The page's id for this text: acknowledged (``text_ack``) once accepted, and
    #: not sent again when re-sent (with a store: across workers and crashes).
    id: str | None = None


class _AwaitTurns(msgspec.Struct, tag="await_turns", forbid_unknown_fields=True):
    #: Ids of acknowledged texts whose turn end the page has not received.
    ids: list[str]


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


_Inbound = _Text | _AwaitTurns | _ActivityStart | _ActivityEnd | _AudioEnd | _Playback | _Ping
_decoder: Final = msgspec.json.Decoder(_Inbound)
_encode: Final = msgspec.json.Encoder().encode


def _json(obj: dict[str, Any]) -> str:
    return _encode(obj).decode()


# -- relay -> browser messages sent per event, pre-encoded around their values (the same
# text as encoding the dict: keys in this order, compact) -----------------------------------

_OUTPUT_TRANSCRIPT: Final = _json({"type": "output_transcript"})[:-1] + ',"text":'
_INPUT_TRANSCRIPT: Final = _json({"type": "input_transcript"})[:-1] + ',"text":'
_TEXT: Final = _json({"type": "text"})[:-1] + ',"text":'
#: The end of a transcript message by ``finished`` (and an input one's ``interim``).
_FINISHED: Final = (',"finished":false}', ',"finished":true}')
_FINISHED_MORE: Final = (',"finished":false', ',"finished":true')
_INTERIM: Final = (',"interim":false}', ',"interim":true}')
_INTERRUPTED: Final = _json({"type": "interrupted"})
_GENERATION_COMPLETE: Final = _json({"type": "generation_complete"})
_TURN_COMPLETE: Final = _json({"type": "turn_complete"})


def _output_transcript(text: str, finished: bool) -> str:
    """``{"type": "output_transcript", "text": text, "finished": finished}``."""
    return _OUTPUT_TRANSCRIPT + _encode(text).decode() + _FINISHED[finished]


def _input_transcript(text: str, finished: bool, interim: bool) -> str:
    """``{"type": "input_transcript", "text": ..., "finished": ..., "interim": ...}``."""
    return _INPUT_TRANSCRIPT + _encode(text).decode() + _FINISHED_MORE[finished] + _INTERIM[interim]


def _model_text(text: str) -> str:
    """``{"type": "text", "text": text}``."""
    return _TEXT + _encode(text).decode() + "}"


ConfigHook = Callable[[ConnectionInfo], "gl.SessionConfig | Awaitable[gl.SessionConfig]"]
AuthorizeHook = Callable[[ConnectionInfo], object]
SessionHook = Callable[["gl.Session", ConnectionInfo], object]
CloseHook = Callable[[ConnectionInfo], object]

# Kept for callers of the old private helper.
_maybe_await = maybe_await


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

        relay = Relay(config, authorize=check_session_cookie)
        app.router.routes.append(WebSocketRoute("/live", relay))  # Starlette/FastAPI

    The upstream session opens once the browser is authorized *and* does something (its
    first audio, text or push-to-talk message), not when the socket connects.

    Args:
        config: ``config(conn) -> SessionConfig`` (sync or async), called when the
            upstream session opens: system instruction, tools, voice, credentials.
            Raise :class:`RelayRejected` to refuse.
        authorize: Required. ``authorize(conn)`` (sync or async) decides who may
            connect: return an identity (stored in ``conn.identity``) or
            ``None``/``False`` to refuse with 4401; raise :class:`RelayRejected` for
            another code or reason. Check something the client cannot forge: a signed
            session cookie or a bearer token your app issued (docs/web-relay.md).
            ``Relay.ALLOW_ANYONE`` is the explicit opt-out for local development (a
            warning is logged); leaving it out raises :class:`ConfigError`.
        allowed_origins: Browser origins allowed to connect (``"https://app.example"``).
            ``None`` (default): only the relay's own origin (the ``Host`` header).
            ``"*"`` allows any origin. A request without an ``Origin`` header (not a
            browser) is refused unless ``allow_no_origin`` is true. The origin check
            stops other web pages' scripts in a browser, not a script outside one
            (it sets any ``Origin``), nor DNS rebinding (a Host allow-list does).
        turn_detection: ``"vad"`` (default): the relay's VAD (:mod:`gemini_live.vad`)
            sends ``activityStart``/``activityEnd`` and the setup's automatic detection
            is disabled for you. ``"server"``: the setup is left alone and all audio is
            streamed; the page's ``audio_end`` sends ``audioStreamEnd``, and with
            ``stream_end_on_silence`` the relay's VAD sends it after each utterance.
            ``"manual"``: push-to-talk from the page (``activity_start``/``activity_end``).
        detector: Factory for the per-connection :class:`~gemini_live.vad.ActivityDetector`.
        on_session: ``on_session(session, conn)`` (sync or async) runs once the upstream
            session is open, e.g. to start ``session.run_tools(registry)``. The relay
            takes the session's events with ``session.on_event`` and opens it with
            ``main_stream=False``; hooks that want events too use ``session.events()``
            or ``session.on_event``.
        on_close: ``on_close(conn)`` after the browser connection ended.
        limits: See :class:`RelayLimits`.
        store: A :class:`~gemini_live.store.ConversationStore`: each page's conversation
            is stored and continues after a reload, a relay restart or a move to another
            worker sharing the store. The page passes ``?conversation=ID`` (the id the
            relay gave it in ``ready``; a new one is made without it). The stored key is
            the id *and* a hash of the identity ``authorize`` returned, so another user
            who learns or guesses an id gets a conversation of their own, never this one.
    """

    #: The explicit, logged opt-out of the identity check (local development only).
    ALLOW_ANYONE: Final = ALLOW_ANYONE

    def __init__(
        self,
        config: ConfigHook,
        *,
        authorize: AuthorizeHook | _AllowAnyone | None = None,
        allowed_origins: Sequence[str] | Literal["*"] | None = None,
        allow_no_origin: bool = False,
        turn_detection: TurnDetection = "vad",
        stream_end_on_silence: bool = False,
        detector: Callable[[], ActivityDetector] | None = None,
        on_session: SessionHook | None = None,
        on_close: CloseHook | None = None,
        limits: RelayLimits | None = None,
        keep_finished: int = 100,
        store: ConversationStore | None = None,
    ) -> None:
        if turn_detection not in ("vad", "server", "manual"):
            raise ConfigError(
                f"turn_detection must be 'vad', 'server' or 'manual', got {turn_detection!r}"
            )
        if authorize is None:
            raise ConfigError(
                "Relay needs an identity check: authorize=hook (returns who is connecting, "
                "e.g. from a signed session cookie), or authorize=Relay.ALLOW_ANYONE to let "
                "anyone who can reach it use your API key (local development only)"
            )
        if not isinstance(authorize, _AllowAnyone) and not callable(authorize):
            raise ConfigError("authorize must be a callable or Relay.ALLOW_ANYONE")
        if limits is not None and not isinstance(limits, RelayLimits):
            raise ConfigError("limits must be a RelayLimits")
        if store is not None:
            from gemini_live.store import ConversationStore

            if not isinstance(store, ConversationStore):
                raise ConfigError("store must be a gemini_live.store.ConversationStore")
        self.store = store
        self._config = config
        self._authorize: AuthorizeHook | None = (
            None if isinstance(authorize, _AllowAnyone) else authorize
        )
        if self._authorize is None:
            logger.warning(
                "relay built with authorize=Relay.ALLOW_ANYONE: anyone who can reach it "
                "talks to the model on your API key (local development only)"
            )
        self._origins = parse_origins(allowed_origins)
        self._allow_no_origin = allow_no_origin
        self.turn_detection: TurnDetection = turn_detection
        self.stream_end_on_silence = stream_end_on_silence
        self._detector = detector or ActivityDetector
        if turn_detection == "vad" or stream_end_on_silence:
            # The VAD computes levels with numpy when it is installed: imported now, not
            # inside the event loop at the first browser's first frame.
            vad_numpy()
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
        self._per_address = KeyedCounter()
        self._per_identity = KeyedCounter()
        #: True once :meth:`drain` began: new connections are refused 4012.
        self.draining = False
        self._drain_started = asyncio.Event()
        self._drain_deadline = 0.0

    def __repr__(self) -> str:
        return f"<Relay turn_detection={self.turn_detection!r} active={self.stats.active}>"

    # -- observation ------------------------------------------------------------------

    def _notify(self) -> None:
        self._notifier.notify()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked after every relay state change)."""
        await self._notifier.wait_for(predicate, within)

    # -- draining ---------------------------------------------------------------------

    async def drain(self, within: float = 30.0) -> int:
        """Move every conversation off this relay, for a deploy; returns how many moved.

        From now on new browsers are refused with 4012 (and ``create_app``'s ``/readyz``
        answers 503, so a load balancer sends them elsewhere). Each open connection waits
        for its clean point (no user turn waiting for its answer), then its session
        closes (with a store: saved, lease released) and the browser gets close code
        4012 ``moved``: the page reconnects and resumes with ``?conversation=ID``. A text
        that arrives after the drain began is not forwarded (the page re-sends what was
        not answered). A connection whose turn has not ended within ``within`` seconds
        is moved anyway (counted in ``stats.moved_mid_turn``). Idempotent.
        """
        if not within > 0:
            raise ConfigError("drain timeout must be > 0")
        if not self._drain_started.is_set():
            self.draining = True
            self._drain_deadline = time.monotonic() + within
            self._drain_started.set()
            self._notify()
        moved_before = self.stats.moved
        # The connections close themselves; wait (bounded) until they have.
        extra = _SESSION_CLOSE_TIMEOUT + self.limits.close_timeout + 1.0
        left = self._drain_deadline - time.monotonic()
        with contextlib.suppress(TimeoutError):
            await self.wait_until(lambda: self.stats.active == 0, within=max(left, 0) + extra)
        return self.stats.moved - moved_before

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


class _Connection(PeerSocket):
    """One browser: the page's message format and turn detection on the shared lifecycle."""

    inline_checks_itself = True  # see inline

    normal_reason = "bye"

    def __init__(
        self,
        relay: Relay,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        lim = relay.limits
        super().__init__(
            scope,
            receive,
            send,
            close_timeout=lim.close_timeout,
            idle_timeout=lim.idle_timeout,
            max_age=lim.max_age,
        )
        self.relay = relay
        headers, query, client = parse_scope(scope)
        self.info = ConnectionInfo(
            id=next(relay._ids),
            path=str(scope.get("path", "")),
            headers=headers,
            query=query,
            client=client,
            origin=headers.get("origin"),
        )
        self.session: gl.Session | None = None
        self._pump: EventPump | None = None
        self.sender: ActivitySender | None = None
        self.ptt_pressed = False
        self._registered = False
        self._admitted = False
        self._address: str | None = None
        self._identity: Hashable | None = None
        #: The page's conversation id (with a store).
        self.conversation: str | None = None
        #: User turns sent upstream and not answered yet (the drain waits for none).
        self.open_turns = 0
        self._turn_ends = 0
        self._hold_turns = True
        self._moving = False
        self._msgs = Bucket(lim.messages_per_second, lim.message_burst)
        tpm = lim.turns_per_minute
        self._turns = Bucket(tpm / 60.0, tpm) if tpm is not None else None
        self._audio_meter = AudioMeter(
            lim.audio_bytes_per_second, lim.audio_burst_bytes, lim.audio_excess_close_bytes
        )
        self._resampler: Resampler | None = None

    # -- the shared lifecycle's hooks ----------------------------------------------------

    def record_close(self, code: int, reason: str) -> None:
        self.info.close = (code, reason)
        self.relay._count_close(reason)

    peer_closed_reason = "closed by the browser"
    peer_gone_reason = "browser disconnected"

    async def admit(self) -> None:
        relay = self.relay
        stats = relay.stats
        info = self.info
        lim = relay.limits
        scheme = str(self.scope.get("scheme", "ws"))
        if relay.draining:
            raise PeerClose(CLOSE_MOVED, "moved: this server is draining, reconnect")
        if not relay._origin_ok(info.origin, info.headers, scheme):
            raise PeerClose(CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
        if stats.active >= lim.max_connections:
            raise PeerClose(CLOSE_TRY_AGAIN, "server busy: too many connections")
        address = info.client[0] if info.client else None
        if address is not None:
            if not relay._per_address.acquire(address, lim.max_connections_per_address):
                raise PeerClose(CLOSE_RATE_LIMITED, "too many connections from this address")
            self._address = address
        stats.active += 1
        stats.peak_active = max(stats.peak_active, stats.active)
        relay.connections[info.id] = info
        self._registered = True
        await self._authorize()
        if info.identity is not None:
            key = identity_key(info.identity)
            if not relay._per_identity.acquire(key, lim.max_connections_per_identity):
                raise PeerClose(CLOSE_RATE_LIMITED, "too many connections for this identity")
            self._identity = key
        ready: dict[str, Any] = {
            "type": "ready",
            "protocol": PROTOCOL_VERSION,
            "session_id": None,
            "input_rate": INPUT_RATE,
            "output_rate": OUTPUT_RATE,
            "turn_detection": relay.turn_detection,
        }
        if relay.store is not None:
            asked = info.query.get("conversation")
            if asked is not None and not _CONVERSATION_ID.fullmatch(asked):
                raise PeerClose(CLOSE_UNSUPPORTED, "bad conversation id")
            self.conversation = asked or secrets.token_urlsafe(18)
            ready["conversation"] = self.conversation
            ready["await_turns"] = True  # answers ``await_turns`` from the store
        self._admitted = True
        stats.accepted += 1
        relay._notify()
        # Admitted: the upstream session opens at the browser's first action.
        await self.send_json(ready)

    async def serve(self) -> None:
        # Audio while the session is open is handled in the server's read callback
        # (inline) where the server offers it; everything else arrives in _upstream.
        self.receive_inline()
        await self.serve_tasks(("relay-up", self._upstream()), ("relay-drain", self._drain()))

    async def _drain(self) -> None:
        """Wait for the relay's drain; then, at the clean point, save and move away."""
        relay = self.relay
        await relay._drain_started.wait()
        left = relay._drain_deadline - time.monotonic()
        mid_turn = False
        try:
            await relay.wait_until(lambda: self.open_turns == 0, within=max(left, 0.0))
        except TimeoutError:
            mid_turn = True
        self._moving = True
        session, self.session = self.session, None
        if session is not None:
            # Saved and the lease released before the browser is told to go: the next
            # worker takes the conversation over at once.
            await bounded(
                asyncio.shield(session.close()), _SESSION_CLOSE_TIMEOUT, "closing on drain"
            )
        relay.stats.moved += 1
        relay.stats.moved_mid_turn += mid_turn
        raise PeerClose(CLOSE_MOVED, "moved: reconnect")

    def failed(self, exc: Exception) -> tuple[int, str]:
        if isinstance(exc, RelayRejected):
            return exc.code, exc.reason
        if isinstance(exc, GeminiLiveError):
            logger.warning("relay connection %d: upstream error: %s", self.info.id, exc)
            return CLOSE_UPSTREAM, f"upstream error: {type(exc).__name__}"
        logger.error("relay connection %d failed", self.info.id, exc_info=exc)
        return CLOSE_INTERNAL, "internal error"

    async def cleanup(self) -> None:
        relay = self.relay
        stats = relay.stats
        info = self.info
        # Bookkeeping first, with no await before it: it runs however the connection ended.
        if not self._admitted:
            stats.rejected += 1
        if self._registered:
            self._registered = False
            stats.active -= 1
            relay.connections.pop(info.id, None)
        if self._address is not None:
            relay._per_address.release(self._address)
            self._address = None
        if self._identity is not None:
            relay._per_identity.release(self._identity)
            self._identity = None
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.detach()
        session, self.session = self.session, None
        if session is not None:
            await bounded(session.close(), _SESSION_CLOSE_TIMEOUT, "closing the upstream session")

    async def finished(self) -> None:
        relay = self.relay
        if self.aborted:
            relay.stats.aborted += 1
        if relay._on_close is not None:
            try:
                await maybe_await(relay._on_close(self.info))
            except Exception:
                logger.exception("relay on_close hook raised")
        relay.finished.append(self.info)
        relay._notify()

    # -- sending -------------------------------------------------------------------------

    def interrupted(self) -> None:
        """Barge-in, before ``interrupted`` goes to the page: a peer that queues the
        model's audio on its side (WebRTC) drops what is queued. Nothing here."""

    async def send_json(self, obj: dict[str, Any]) -> None:
        await self.send_data(_encode(obj).decode())

    async def send_bytes(self, data: bytes) -> None:
        await self.send_data(data)

    # -- identity and the upstream session ------------------------------------------------

    async def _authorize(self) -> None:
        hook = self.relay._authorize
        if hook is None:
            return  # Relay.ALLOW_ANYONE
        try:
            async with asyncio.timeout(self.relay.limits.connect_timeout):
                identity = await maybe_await(hook(self.info))
        except TimeoutError:
            raise PeerClose(CLOSE_UNAUTHORIZED, "authorization timed out") from None
        if identity is None or identity is False:
            raise PeerClose(CLOSE_UNAUTHORIZED, "unauthorized")
        self.info.identity = identity

    async def _open_session(self, pump: EventPump) -> gl.Session:
        relay = self.relay
        config = await maybe_await(relay._config(self.info))
        if not isinstance(config, gl.SessionConfig):
            raise TypeError(f"the relay's config hook returned {type(config).__name__}")
        if relay.turn_detection in ("vad", "manual"):
            config = with_client_activity(config)
        # The relay takes events with on_event (an EventPump): a main stream nobody reads
        # would only fill up.
        config = dataclasses.replace(config, main_stream=False)
        pump.limit = config.subscriber_queue  # the bound the main stream had
        if relay.store is not None and self.conversation is not None:
            config = dataclasses.replace(
                config, conversation=self._store_key(self.conversation), store=relay.store
            )
        try:
            async with asyncio.timeout(relay.limits.connect_timeout):
                session = await pump.connect(config)
        except TimeoutError:
            raise PeerClose(CLOSE_UPSTREAM, "upstream connect timed out") from None
        except GeminiLiveError as exc:
            logger.warning("relay %d: upstream connect failed: %s", self.info.id, exc)
            raise PeerClose(
                CLOSE_UPSTREAM, f"upstream connect failed: {type(exc).__name__}"
            ) from None
        return session

    def _store_key(self, conversation: str) -> str:
        """The stored conversation's key: the page's id bound to who is connecting."""
        identity = self.info.identity
        who = "anyone" if identity is None else repr(identity_key(identity))
        digest = hashlib.sha256(who.encode("utf-8", "replace")).hexdigest()[:32]
        return f"relay:{digest}:{conversation}"

    async def _session(self) -> gl.Session:
        """The upstream session, opened at the browser's first action."""
        if self.session is not None:
            return self.session
        if self._moving:
            raise PeerClose(CLOSE_MOVED, "moved: reconnect")
        relay = self.relay
        # Subscribed before the first frame: events that arrive while the peer is told
        # about the session (and the on_session hook runs) are held, then delivered.
        pump = self._pump = EventPump(self._deliver, limit=EVENT_BACKLOG, fast=self._deliver_now)
        session = self.session = await self._open_session(pump)
        self.info.session_id = session.session_id
        if relay.turn_detection == "vad" or (
            relay.turn_detection == "server" and relay.stream_end_on_silence
        ):
            mode: Literal["activity", "stream_end"] = (
                "activity" if relay.turn_detection == "vad" else "stream_end"
            )
            detector = relay._detector()
            # One upstream chunk per page message (a 40 ms frame is one chunk, not two).
            detector.merge = True
            self.sender = ActivitySender(session, detector, mode=mode)
        await self.send_json({"type": "state", "state": "open", "session_id": self.info.session_id})
        if relay._on_session is not None:
            await maybe_await(relay._on_session(session, self.info))
        self.spawn("relay-down", pump.run())
        relay._notify()
        return session

    def _count_turn(self) -> None:
        self.info.user_turns += 1
        if self._turns is not None and not self._turns.take(1, time.monotonic()):
            raise PeerClose(CLOSE_RATE_LIMITED, "rate limit: too many turns")

    # -- browser -> session ------------------------------------------------------------

    async def _upstream(self) -> None:
        lim = self.relay.limits
        while True:
            msg = await self.receive()
            if msg is None:
                return
            if msg["type"] != "websocket.receive":
                continue
            self.touch()
            now = self.last_activity
            data = msg.get("bytes")
            text = msg.get("text")
            size = len(data) if data is not None else len(text.encode()) if text else 0
            if size > lim.max_message_bytes:
                raise PeerClose(
                    CLOSE_TOO_BIG, f"message too big: {size} bytes > {lim.max_message_bytes}"
                )
            if not self._msgs.take(1, now):
                raise PeerClose(CLOSE_RATE_LIMITED, "rate limit: too many messages")
            if data is not None:
                await self._audio(data, now)
            elif text is not None:
                await self._control(text)

    def inline(self, data: bytes | str) -> bool:
        """One page message inside the server's read callback: audio once the session
        is open, with what :meth:`_upstream` and :meth:`_audio` do (activity, size and
        rate limits, the audio meter, the VAD, the upstream write), none of it waiting.
        Texts, the first audio, a turn edge the VAD found and a write that has to wait
        go on in :meth:`_upstream`, in order. The server calls it directly
        (:meth:`receive_inline`): it makes the checks of ``_inline_entry`` itself."""
        session = self.session
        if (
            session is None
            or type(data) is not bytes
            or self._moving
            or self.closed
            or self._rest is not None
        ):
            return False
        relay = self.relay
        n = len(data)
        if not n or n & 1 or n > relay.limits.max_message_bytes:
            return False  # _upstream closes the connection, as it always did
        now = self.last_activity = time.monotonic()  # touch(), inlined
        if not self._msgs.take(1, now):
            raise PeerClose(CLOSE_RATE_LIMITED, "rate limit: too many messages")
        info = self.info
        info.audio_in_bytes += n
        if not self._audio_meter.admit(n, now):
            info.audio_dropped_bytes += n
            relay.stats.audio_dropped_bytes += n
            return True
        td = relay.turn_detection
        sender = self.sender
        if td == "manual" or sender is None:
            if td == "manual" and not self.ptt_pressed:
                info.audio_not_forwarded_bytes += n
                return True
            return self.audio_inline(session, data, INPUT_RATE)
        # Turn edges and a write that has to wait are sent and reported by _upstream.
        actions, done = sender.feed_nowait(data, session.send_audio_nowait)
        if done < len(actions):
            self.finish_later(functools.partial(self._vad_rest, sender, actions, done))
            return False
        if td == "vad":
            for a in actions:
                if a.kind == "silence":
                    info.audio_not_forwarded_bytes += len(a.audio)
        return True

    async def _vad_rest(self, sender: ActivitySender, actions: list[VadAction], done: int) -> None:
        """What :meth:`inline` left of one message's VAD actions (from ``done`` on)."""
        await sender.send_actions(actions[done:])
        await self._report_vad(actions)

    async def _audio(self, data: bytes, now: float) -> None:
        if not data:
            raise PeerClose(CLOSE_UNSUPPORTED, "empty audio message")
        if len(data) & 1:
            raise PeerClose(CLOSE_UNSUPPORTED, "audio must be 16-bit PCM (odd byte count)")
        info = self.info
        info.audio_in_bytes += len(data)
        if not self._audio_meter.admit(len(data), now):
            info.audio_dropped_bytes += len(data)
            self.relay.stats.audio_dropped_bytes += len(data)
            return
        td = self.relay.turn_detection
        if (td == "manual" and not self.ptt_pressed) or self._moving:
            info.audio_not_forwarded_bytes += len(data)
            return
        session = await self._session()
        if td == "manual":
            await session.send_audio(data, sample_rate=INPUT_RATE)
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
                self._count_turn()
                await self.send_json({"type": "vad", "speaking": True, "source": "relay"})
                self.relay._notify()
            elif a.kind == "end":
                self.open_turns += 1
                await self.send_json({"type": "vad", "speaking": False, "source": "relay"})
                self.relay._notify()
            elif a.kind == "silence" and self.relay.turn_detection == "vad":
                self.info.audio_not_forwarded_bytes += len(a.audio)

    async def _control(self, text: str) -> None:
        try:
            msg = _decoder.decode(text)
        except msgspec.ValidationError as exc:
            raise PeerClose(CLOSE_UNSUPPORTED, f"bad message: {exc}") from None
        except msgspec.DecodeError:
            raise PeerClose(CLOSE_UNSUPPORTED, "bad message: not JSON") from None
        td = self.relay.turn_detection
        if isinstance(msg, _Text):
            if not msg.text.strip():
                raise PeerClose(CLOSE_UNSUPPORTED, "bad message: empty text")
            if len(msg.text) > self.relay.limits.max_text_chars:
                raise PeerClose(CLOSE_TOO_BIG, "text too long")
            if msg.id is not None and not _TEXT_ID.fullmatch(msg.id):
                raise PeerClose(CLOSE_UNSUPPORTED, "bad message: bad text id")
            if self.relay.draining:
                # Moving away: not forwarded; the page re-sends it after reconnecting.
                self.relay.stats.not_forwarded_texts += 1
                return
            self._count_turn()
            session = await self._session()
            await self._send_text(session, msg)
        elif isinstance(msg, _AwaitTurns):
            await self._await_turns(msg.ids)
        elif isinstance(msg, (_ActivityStart, _ActivityEnd)):
            if td != "manual":
                raise PeerClose(
                    CLOSE_UNSUPPORTED, "activity_start/activity_end need turn_detection 'manual'"
                )
            if isinstance(msg, _ActivityStart) and not self.ptt_pressed:
                self._count_turn()
                session = await self._session()
                self.ptt_pressed = True
                await session.send_activity_start()
            elif isinstance(msg, _ActivityEnd) and self.ptt_pressed:
                self.ptt_pressed = False
                if self.session is not None:
                    await self.session.send_activity_end()
                    self.open_turns += 1
        elif isinstance(msg, _AudioEnd):
            session_open = self.session
            if session_open is None:
                return  # nothing was said yet: nothing to end
            if td == "server":
                await session_open.send_audio_stream_end()
            elif td == "vad" and self.sender is not None:
                await self._report_vad(await self.sender.finish())
            elif td == "manual" and self.ptt_pressed:
                self.ptt_pressed = False
                await session_open.send_activity_end()
        elif isinstance(msg, _Playback):
            info = self.info
            report = PlaybackReport(msg.state, max(0.0, float(msg.played_ms)), time.monotonic())
            info.playback.append(report)
            info.playback_reports += 1
            if report.state != "playing":
                info.played_ms_total += report.played_ms
            self.relay._notify()
        else:
            await self.send_json({"type": "pong", "id": msg.id})

    async def _send_text(self, session: gl.Session, msg: _Text) -> None:
        """Send a page's text once: a text whose id the conversation accepted already (a
        re-send after a move or a crash) is acknowledged and not sent again; a new one is
        acknowledged once the record holding it (and its id) is saved."""
        link = session.conversation
        if msg.id is not None and link is not None and link.has_text(msg.id):
            self.relay.stats.duplicate_texts += 1
            await self.send_json({"type": "text_ack", "id": msg.id, "duplicate": True})
            return
        await session.send_text(msg.text, text_id=msg.id)
        self.open_turns += 1
        if msg.id is None:
            return
        if link is not None:
            try:
                async with asyncio.timeout(_TEXT_SAVE_TIMEOUT):
                    await link.wait_texts_saved()
            except TimeoutError:
                # Not acknowledged: the page keeps it and re-sends it after a reconnect,
                # when the record (saved by then, or not) says whether it arrived.
                logger.warning("relay %d: text not saved in time; not acknowledged", self.info.id)
                return
        await self.send_json({"type": "text_ack", "id": msg.id})

    async def _await_turns(self, ids: list[str]) -> None:
        """A rejoining page names acknowledged texts whose turn end it never got (its
        worker may have died between the save covering the turn and the
        ``turn_complete``). Each is answered from the stored record, nothing is sent
        upstream: ``turn_complete`` (with the id, ``replayed``) when its turn is over
        there, else ``turn_status`` ``open`` (accepted, the turn not over: a later
        ``turn_complete`` ends it, or nothing if the service took the text in and the
        answer died with the worker) or ``unknown`` (no record of that id)."""
        if len(ids) > MAX_TEXT_IDS:
            raise PeerClose(CLOSE_UNSUPPORTED, f"bad message: more than {MAX_TEXT_IDS} ids")
        if not all(_TEXT_ID.fullmatch(i) for i in ids):
            raise PeerClose(CLOSE_UNSUPPORTED, "bad message: bad text id")
        if not ids:
            return
        relay = self.relay
        link = None
        if relay.store is not None:
            if self.session is None and relay.draining:
                return  # moving away: the page asks again after reconnecting
            # The record is read under the lease, as the session opens (a rejoin
            # resumes the conversation: what the saved handle did not cover is re-sent).
            link = (await self._session()).conversation
        for tid in ids:
            state = "unknown" if link is None else link.text_state(tid)
            if state == "ended":
                relay.stats.turn_ends_replayed += 1
                await self.send_json({"type": "turn_complete", "id": tid, "replayed": True})
            else:
                await self.send_json({"type": "turn_status", "id": tid, "state": state})
        relay._notify()

    async def _turn_saved(self, session: gl.Session) -> None:
        """With a store, hold a ``turn_complete`` until the record holds a handle issued
        after the turn (bounded): a page that saw an answer end then never gets the same
        turn answered again by a worker that restored an older record after a crash."""
        link = session.conversation
        if link is None or not session.protocol.resumption_enabled:
            return
        self._turn_ends += 1
        if not self._hold_turns:
            self.relay.stats.turns_not_covered += 1
            return
        turns = min(self._turn_ends, link.turn_ends)  # events dropped by a lag: rebase
        # The event pump may run this inside the session's frame callback; the bounded
        # wait below needs a task, so leave the callback first (the pump's task resumes).
        await asyncio.sleep(0)
        try:
            async with asyncio.timeout(_TURN_SAVE_TIMEOUT):
                await link.wait_turn_covered(turns)
        except TimeoutError:
            # No handle after a turn (a service that sends none, a store that is down):
            # stop holding this connection's turn ends rather than delay each one.
            self._hold_turns = False
            self.relay.stats.turns_not_covered += 1
            logger.warning(
                "relay %d: no saved handle within %.0f s of a turn end; turn ends are "
                "forwarded at once from now on",
                self.info.id,
                _TURN_SAVE_TIMEOUT,
            )

    # -- session -> browser -------------------------------------------------------------

    def _deliver_now(self, event: ev.Event) -> bool:
        """The reply's events (audio at the page's rate, transcripts, text, the end of a
        generation) to the browser as :meth:`_deliver` sends them, when the socket takes
        them at once: no coroutine per event. False, nothing done, for anything else."""
        if type(event) is ev.ModelAudio:
            if event.sample_rate != OUTPUT_RATE:
                return False  # resampled by _deliver
            data = event.data
            if not data:
                return True
            if not self.send_now(data):
                return False
            self.info.audio_out_bytes += len(data)
            return True
        if type(event) is ev.OutputTranscription:
            return self.send_now(_output_transcript(event.text, event.finished))
        if type(event) is ev.InputTranscription:
            return self.send_now(_input_transcript(event.text, event.finished, event.interim))
        if type(event) is ev.ModelText:
            if event.thought is not False:
                return False  # not sent (_deliver's match)
            return self.send_now(_model_text(event.text))
        if type(event) is ev.GenerationComplete:
            return self.send_now(_GENERATION_COMPLETE)
        return False

    async def _deliver(self, event: ev.Event) -> None:
        """One session event to the browser (run by the :class:`EventPump`, inline in the
        session's frame callback when the send does not have to wait)."""
        info = self.info
        match event:
            case ev.ModelAudio(data=data, sample_rate=rate):
                if rate != OUTPUT_RATE:
                    if self._resampler is None or self._resampler.from_rate != rate:
                        self._resampler = Resampler(rate, OUTPUT_RATE)
                    data = self._resampler.process(data)
                if data:
                    info.audio_out_bytes += len(data)
                    await self.send_bytes(data)
            case ev.OutputTranscription(text=text, finished=finished):
                await self.send_data(_output_transcript(text, finished))
            case ev.ModelText(text=text, thought=False):
                await self.send_data(_model_text(text))
            case ev.InputTranscription(text=text, finished=finished, interim=interim):
                await self.send_data(_input_transcript(text, finished, interim))
            case ev.Interrupted():
                info.interruptions += 1
                self.interrupted()
                await self.send_data(_INTERRUPTED)
                self.relay._notify()
            case ev.GenerationComplete():
                await self.send_data(_GENERATION_COMPLETE)
            case ev.TurnComplete():
                info.turns += 1
                if self.session is not None:
                    await self._turn_saved(self.session)
                # Answered once the page hears so (a drain waits for this point).
                self.open_turns = max(0, self.open_turns - 1)
                await self.send_data(_TURN_COMPLETE)
                self.relay._notify()
            case ev.ToolCall(calls=calls):
                await self.send_json({"type": "tool_call", "names": [str(c.name) for c in calls]})
            case ev.ToolCallCancellation(ids=ids):
                await self.send_json({"type": "tool_cancelled", "count": len(ids)})
            case ev.VoiceActivity(kind=kind):
                await self.send_json(
                    {"type": "vad", "speaking": kind.endswith("START"), "source": "server"}
                )
            case ev.Reconnecting():
                await self.send_json({"type": "state", "state": "reconnecting"})
            case ev.Resumed(state_restored=restored):
                state: dict[str, Any] = {"type": "state", "state": "open"}
                state["restored"] = restored
                if event.from_store:
                    state["from_store"] = True
                    state["reseeded"] = event.reseeded
                await self.send_json(state)
            case ev.Lagged(count=count):
                logger.warning("relay %d: the browser fell behind by %d events", info.id, count)
            case ev.Closed() if self._moving:
                pass  # the drain closed the session: its task ends the connection
            case ev.Closed(code=code, reason=reason):
                logger.info("relay %d: upstream closed %s %s", info.id, code, reason)
                raise PeerClose(CLOSE_UPSTREAM, f"upstream closed: {code} {reason}".strip())
            case _:
                pass
