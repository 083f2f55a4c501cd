"""Twilio Media Streams <-> Live API session, as an ASGI WebSocket endpoint."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hmac
import itertools
import logging
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final, Literal

import msgspec
import pybase64

import gemini_live as gl
from gemini_live import events as ev
from gemini_live._asgi import Notifier, Receive, Scope, Send
from gemini_live._bridge import (
    EVENT_BACKLOG,
    AudioMeter,
    EventPump,
    KeyedCounter,
    LoopBatch,
    PeerClose,
    PeerSocket,
    bounded,
    mask_mapping,
    maybe_await,
    parse_scope,
)
from gemini_live.audio import (
    OUTPUT_RATE,
    ResampleBackend,
    Resampler,
    _DecimateBatch,
    _Decimator,
    alaw_to_pcm16,
    as_pcm16,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)
from gemini_live.config import with_client_activity
from gemini_live.errors import ConfigError, GeminiLiveError, register_secret
from gemini_live.telephony._signature import (
    STREAM_TOKEN_PARAM,
    StreamTokens,
    check_public_url,
    request_url,
    twilio_signature_valid,
)
from gemini_live.vad import ActivityDetector, ActivitySender, VadAction, VadSession

__all__ = ["CallInfo", "TelnyxBridge", "TwilioBridge"]

logger = logging.getLogger("gemini_live.telephony")


PHONE_RATE: Final = 8000
FRAME_MS: Final = 20
FRAME_BYTES: Final = PHONE_RATE * FRAME_MS // 1000  # one byte per mu-law sample
#: The most audio one outbound ``media`` message may carry (``media_ms``).
MAX_MEDIA_MS: Final = 1000
#: The most caller audio one upstream write may carry (``upstream_ms``).
MAX_UPSTREAM_MS: Final = 200
#: ``upstream_ms`` by default with the bridge's VAD (turn edges flush what is held) and
#: with the service's turn detection (which hears held audio late).
UPSTREAM_MS_VAD: Final = 100
UPSTREAM_MS_SERVER: Final = 40
# Encoding names (Twilio, Telnyx) -> G.711 law.
_LAWS: Final[dict[str, Literal["ulaw", "alaw"]]] = {
    "audio/x-mulaw": "ulaw",
    "PCMU": "ulaw",
    "audio/x-alaw": "alaw",
    "PCMA": "alaw",
}
_CODECS: Final = {
    "ulaw": (ulaw_to_pcm16, pcm16_to_ulaw, 0xFF),
    "alaw": (alaw_to_pcm16, pcm16_to_alaw, 0xD5),
}


def _low_latency_backend() -> ResampleBackend:
    # soxr's streaming mode releases output in ~100 ms blocks: too late for turn taking
    # on a phone line. The numpy sinc stream (or the linear fallback) emits per chunk.
    try:
        import numpy  # noqa: F401
    except ImportError:
        return "python"
    return "numpy"


_BACKEND: Final = _low_latency_backend()


def _downsampler(rate: int) -> Resampler | _Decimator:
    """The model's audio at ``rate`` down to the phone's rate: with numpy and a whole
    factor (24 kHz), the float32 decimator straight to G.711 (the sinc stream's filter
    and timing); else the low-latency stream."""
    if _BACKEND == "numpy":
        decimator = _Decimator.create(rate, PHONE_RATE)
        if decimator is not None:
            return decimator
    return Resampler(rate, PHONE_RATE, backend=_BACKEND)


# The shared lifecycle's exceptions, under this module's old names.
_Close = PeerClose

#: DTMF digits kept per call (the latest; ``CallInfo.dtmf_count`` counts them all).
DTMF_KEEP: Final = 64
#: The most model audio (bytes of PCM16) a reply holds before it is resampled: the
#: chunks that arrive while the pacer waits go down in one step, up to this much.
_PENDING_MOST: Final = 24000
#: Calls in a bridge from which the model's audio that arrives while a pacer waits goes
#: down to the phone's rate in one product per loop iteration for all calls
#: (:class:`_DownBatch`); with fewer, a loop iteration rarely holds two calls' chunks
#: and a batch of one costs more than resampling at once.
_BATCH_FROM_CALLS: Final = 16
#: Seconds the upstream session gets to close when a call ends.
_SESSION_CLOSE_TIMEOUT: Final = 5.0


# -- inbound messages (Twilio camelCase, Telnyx snake_case) ---------------------------


class _MediaFormat(msgspec.Struct):
    encoding: str = "audio/x-mulaw"
    sampleRate: int | None = None
    channels: int = 1
    sample_rate: int | None = None  # Telnyx spelling


class _StartBody(msgspec.Struct):
    streamSid: str = ""
    callSid: str = ""
    accountSid: str = ""
    tracks: list[str] = msgspec.field(default_factory=list)
    mediaFormat: _MediaFormat | None = None
    customParameters: dict[str, str] = msgspec.field(default_factory=dict)
    # Telnyx spellings.
    call_control_id: str = ""
    client_state: str = ""
    media_format: _MediaFormat | None = None


class _MediaBody(msgspec.Struct):
    payload: str
    track: str = "inbound"
    chunk: str | None = None
    timestamp: str | None = None


class _MarkBody(msgspec.Struct):
    name: str


class _DtmfBody(msgspec.Struct):
    digit: str
    track: str = "inbound_track"


class _Inbound(msgspec.Struct):
    event: str
    streamSid: str | None = None
    sequenceNumber: str | None = None
    stream_id: str | None = None  # Telnyx spelling
    start: _StartBody | None = None
    media: _MediaBody | None = None
    mark: _MarkBody | None = None
    dtmf: _DtmfBody | None = None


_decode: Final = msgspec.json.Decoder(_Inbound).decode
_encode: Final = msgspec.json.Encoder().encode


@dataclass(repr=False)
class CallInfo:
    """One phone call (one media stream), as the hooks see it.

    Its ``repr`` masks credentials (signatures, cookies, token-like query or custom
    parameters); the hooks read the real values from the attributes.
    """

    id: int
    headers: Mapping[str, str]
    query: Mapping[str, str]
    stream_sid: str = ""
    call_sid: str = ""
    account_sid: str = ""
    #: ``<Parameter>`` values from the TwiML ``<Stream>``.
    custom_parameters: dict[str, str] = field(default_factory=dict)
    identity: object = None
    started_at: float = field(default_factory=time.monotonic)
    session_id: str | None = None
    media_in: int = 0
    media_out: int = 0
    marks_sent: int = 0
    marks_played: int = 0
    clears: int = 0
    interruptions: int = 0
    turns: int = 0
    utterances: int = 0
    #: The latest DTMF digits (at most ``DTMF_KEEP``); ``dtmf_count`` counts them all.
    dtmf: list[str] = field(default_factory=list)
    #: Milliseconds of each reply the caller actually heard (confirmed by marks), by reply.
    heard_ms: dict[int, int] = field(default_factory=dict)
    #: Milliseconds of each reply sent to Twilio, by reply.
    sent_ms: dict[int, int] = field(default_factory=dict)
    stopped: bool = False
    close: tuple[int, str] | None = None
    #: How many DTMF digits arrived (``dtmf`` keeps the latest ``DTMF_KEEP``).
    dtmf_count: int = 0
    #: Inbound audio bytes (G.711) dropped because they came faster than real time.
    media_dropped_bytes: int = 0
    #: The address the carrier connected from.
    client: tuple[str, int] | None = None

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("headers", "query", "custom_parameters") and isinstance(value, Mapping):
                value = mask_mapping(value)
            parts.append(f"{f.name}={value!r}")
        return f"CallInfo({', '.join(parts)})"


_maybe_await = maybe_await


ConfigHook = Callable[[CallInfo], "gl.SessionConfig | Awaitable[gl.SessionConfig]"]


class TwilioBridge:
    """Bridges Twilio Media Streams to a Live API session, one session per call.

    Point a TwiML ``<Connect><Stream url="wss://your.host/twilio"/></Connect>`` at it and
    mount it like any ASGI WebSocket endpoint::

        bridge = TwilioBridge(
            lambda call: gl.build_config(api_key=KEY),
            auth_token=os.environ["TWILIO_AUTH_TOKEN"],
            public_url="wss://your.host/twilio",
        )
        app.router.routes.append(WebSocketRoute("/twilio", bridge))  # Starlette/FastAPI

    The carrier is checked before anything else: the WebSocket upgrade must carry a valid
    ``X-Twilio-Signature`` (HMAC-SHA1 of the URL with the account's ``auth_token``), or it
    is refused with HTTP 403 and no session is opened. ``public_url`` is the URL of the
    TwiML ``<Stream>`` (behind a proxy the request's own scheme and ``Host`` differ);
    without it the URL is rebuilt from the request. Without ``auth_token`` the bridge
    refuses to start, unless ``insecure_no_signature=True`` (local tests only; logged).

    Caller audio (mu-law 8 kHz) is decoded and sent upstream at ``input_rate``: 8 kHz
    by default (``audio/pcm;rate=8000``, which the service resamples itself; a phone line
    carries nothing above 4 kHz, so nothing is lost and the bridge does half the work),
    or resampled to 16 kHz here with ``input_rate=16000``; without ``input_rate``, a
    ``detector`` built for 16 kHz gets 16 kHz (as before 8 kHz was the default). The
    model's 24 kHz audio is
    resampled to 8 kHz, mu-law encoded and sent in 20 ms
    ``media`` frames paced in real time (``lead_ms`` ahead). ``media_ms`` (a multiple of
    20, at most 1000) lets one ``media`` message carry up to that much audio: the whole
    frames at hand when it is due (never waiting to fill it), so a reply the model sends
    in 40 ms chunks goes out in half the messages and a burst in ``media_ms`` pieces;
    Twilio then holds up to ``media_ms + lead_ms`` of audio ahead of the caller's ear
    (``clear`` still empties it on barge-in; ``media_ms=20`` restores one frame per
    message, the pacing before 100 became the default). A ``mark`` follows the message
    that reaches each ``mark_every_ms`` of audio and the end of each reply; Twilio echoes
    a mark when the audio before it has been played, which is how
    :attr:`CallInfo.heard_ms` knows what the caller actually heard. On ``interrupted``
    the bridge drops what it has not sent and sends ``clear`` so Twilio drops what it
    buffered. The media, mark and clear messages go through the server's no-wait send
    when it offers one (``gemini_live.web``), as the relay's do; the carrier's ``media``
    and ``mark`` messages are handled inside that server's read callback when they need
    no waiting (``gemini_live.on_message``), in order with the rest, which arrive the
    ASGI way as under any other server.

    The caller's audio goes upstream in writes of ``upstream_ms`` (a multiple of 20, at
    most 200). By default 100 with the bridge's VAD (five of the carrier's 20 ms frames
    per ``realtimeInput``, a fifth of the writes; the turn edges that time the model's
    answer flush what is held, so only audio in the middle of an utterance reaches the
    service up to 80 ms later) and 40 with ``turn_detection="server"`` (the service's
    own detection hears the audio at most 20 ms later). Nothing is dropped or
    reordered: a frame held back goes out with the next one, and before a turn edge
    (``activityStart``/``activityEnd``), a mark, a key press, barge-in and the end of the
    call. The VAD still decides on every 20 ms frame. ``upstream_ms=20`` writes each
    frame as it comes.

    Turn taking: ``turn_detection="vad"`` (default) runs :mod:`gemini_live.vad` on the
    caller's audio and sends ``activityStart``/``activityEnd`` with pre-roll (the setup's
    automatic detection is disabled for you: it is often poor on 8 kHz lines);
    ``"server"`` streams everything and leaves turn taking to the service.

    Hooks (sync or async): ``config(call)`` builds the session config; ``authorize(call)``
    runs after Twilio's ``start`` message (headers, query and ``customParameters`` are
    known: check a signature or a token there) and returns an identity or ``None`` to
    hang up with 4401; ``on_session(session, call)`` once connected; ``on_dtmf(call,
    digit, session)`` for key presses; ``on_stop(call)`` when the call ends.

    Limits (each ends the call with a reason): ``max_calls`` at once and
    ``max_calls_per_address`` from one address (Twilio connects from a pool of
    addresses: raise it for a busy line, or ``None``); ``max_call_seconds`` from the
    upgrade; ``idle_timeout`` seconds without the caller speaking (or a key press) and
    without the model talking; inbound audio at most ``max_audio_speed`` times real time
    (``audio_burst_ms`` may bunch up; the excess is dropped and counted in
    :attr:`CallInfo.media_dropped_bytes`, and a stream that keeps flooding is closed
    4429). Closes are bounded: the close frame gets ``close_timeout`` seconds.
    """

    #: Key of the stream id in messages sent to the provider.
    stream_id_field = "streamSid"

    def __init__(
        self,
        config: ConfigHook,
        *,
        authorize: Callable[[CallInfo], object] | None = None,
        auth_token: str | None = None,
        public_url: str | None = None,
        stream_tokens: StreamTokens | None = None,
        insecure_no_signature: bool = False,
        turn_detection: Literal["vad", "server"] = "vad",
        detector: Callable[[], ActivityDetector] | None = None,
        input_rate: int | None = None,
        lead_ms: int = 60,
        mark_every_ms: int = 200,
        media_ms: int = 100,
        upstream_ms: int | None = None,
        on_session: Callable[[gl.Session, CallInfo], object] | None = None,
        on_dtmf: Callable[[CallInfo, str, gl.Session], object] | None = None,
        on_stop: Callable[[CallInfo], object] | None = None,
        max_calls: int = 100,
        max_message_bytes: int = 16 * 1024,
        start_timeout: float = 10.0,
        connect_timeout: float = 15.0,
        keep_finished: int = 100,
        max_calls_per_address: int | None = 25,
        max_call_seconds: float | None = 3600.0,
        idle_timeout: float | None = 300.0,
        max_audio_speed: float = 1.2,
        audio_burst_ms: int = 3000,
        close_timeout: float = 2.0,
    ) -> None:
        if turn_detection not in ("vad", "server"):
            raise ConfigError(f"turn_detection must be 'vad' or 'server', got {turn_detection!r}")
        if input_rate is not None and input_rate not in (8000, 16000):
            raise ConfigError(f"input_rate must be 8000 or 16000, got {input_rate}")
        if mark_every_ms < FRAME_MS:
            raise ConfigError(f"mark_every_ms must be at least {FRAME_MS}")
        _check_frames_ms("media_ms", media_ms, MAX_MEDIA_MS)
        if upstream_ms is None:
            upstream_ms = UPSTREAM_MS_VAD if turn_detection == "vad" else UPSTREAM_MS_SERVER
        _check_frames_ms("upstream_ms", upstream_ms, MAX_UPSTREAM_MS)
        for name, value, optional in (
            ("max_calls_per_address", max_calls_per_address, True),
            ("max_call_seconds", max_call_seconds, True),
            ("idle_timeout", idle_timeout, True),
            ("max_audio_speed", max_audio_speed, False),
            ("audio_burst_ms", audio_burst_ms, False),
            ("close_timeout", close_timeout, False),
        ):
            if value is None and optional:
                continue
            if value is None or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{name} must be > 0{' or None' if optional else ''}")
        self._config = config
        self._authorize = authorize
        self._check_carrier_settings(auth_token, public_url, stream_tokens, insecure_no_signature)
        self.turn_detection = turn_detection
        self._detector = detector
        #: The rate of the caller's audio sent upstream (8000 unless asked for 16000).
        self.input_rate: int = PHONE_RATE if input_rate is None else input_rate
        self._input_rate_given = input_rate is not None
        self.lead_ms = lead_ms
        self.mark_every_ms = mark_every_ms
        self.media_ms = media_ms
        self.upstream_ms = upstream_ms
        self._on_session = on_session
        self._on_dtmf = on_dtmf
        self._on_stop = on_stop
        self.max_calls = max_calls
        self.max_message_bytes = max_message_bytes
        self.start_timeout = start_timeout
        self.connect_timeout = connect_timeout
        self.max_calls_per_address = max_calls_per_address
        self.max_call_seconds = max_call_seconds
        self.idle_timeout = idle_timeout
        self.max_audio_speed = max_audio_speed
        self.audio_burst_ms = audio_burst_ms
        self.close_timeout = close_timeout
        self._per_address = KeyedCounter()
        #: Calls in progress by id.
        self.calls: dict[int, CallInfo] = {}
        #: The most recent finished calls (newest last).
        self.finished: deque[CallInfo] = deque(maxlen=keep_finished)
        self._ids = itertools.count(1)
        self._notifier = Notifier()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} calls={len(self.calls)} refused={self.refused}>"

    def _notify(self) -> None:
        self._notifier.notify()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked after every bridge state change)."""
        await self._notifier.wait_for(predicate, within)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            if scope["type"] == "http":
                await send(
                    {
                        "type": "http.response.start",
                        "status": 426,
                        "headers": [(b"content-type", b"text/plain")],
                    }
                )
                await send({"type": "http.response.body", "body": b"WebSocket only"})
            return
        refusal = self._check_upgrade(scope)
        if refusal is not None:
            await self._refuse_upgrade(scope, receive, send, refusal)
            return
        await _Call(self, scope, receive, send).run()

    # -- the carrier's proof, checked on the WebSocket upgrade --------------------------------

    #: What proves a stream comes from the carrier: Twilio's request signature, or (Telnyx)
    #: a per-call token in the stream URL.
    carrier_proof: ClassVar[Literal["twilio_signature", "stream_token"]] = "twilio_signature"

    def _check_carrier_settings(
        self,
        auth_token: str | None,
        public_url: str | None,
        stream_tokens: StreamTokens | None,
        insecure: bool,
    ) -> None:
        name = type(self).__name__
        twilio = self.carrier_proof == "twilio_signature"
        if twilio and stream_tokens is not None:
            raise ConfigError(
                f"{name} checks X-Twilio-Signature: pass auth_token, not stream_tokens"
            )
        if not twilio and (auth_token is not None or public_url is not None):
            raise ConfigError(
                f"{name} checks a per-call token: pass stream_tokens, not auth_token/public_url"
            )
        if auth_token is not None:
            if not isinstance(auth_token, str) or not auth_token.strip():
                raise ConfigError("auth_token must be the Twilio account's auth token (a str)")
            auth_token = auth_token.strip()
            register_secret(auth_token)
        if stream_tokens is not None and not isinstance(stream_tokens, StreamTokens):
            raise ConfigError("stream_tokens must be a StreamTokens")
        if public_url is not None:
            check_public_url(public_url)
        self._auth_token = auth_token
        self._public_url = public_url
        self._stream_tokens = stream_tokens
        #: WebSocket upgrades refused because the carrier's proof was missing or wrong.
        self.refused = 0
        self.verify_carrier = auth_token is not None or stream_tokens is not None
        if not self.verify_carrier:
            if not insecure:
                what = "auth_token=" if twilio else "stream_tokens="
                raise ConfigError(
                    f"{name} needs {what} to check that calls come from the carrier"
                    " (anyone who finds the URL could otherwise spend your Gemini quota);"
                    " for local tests only, pass insecure_no_signature=True"
                )
            logger.warning(
                "%s: insecure_no_signature=True: any client that reaches this endpoint is"
                " taken for the carrier; never expose it",
                name,
            )
        elif insecure:
            raise ConfigError("insecure_no_signature=True contradicts the carrier check given")
        if stream_tokens is not None:
            app_authorize = self._authorize

            async def bound_to_the_call(call: CallInfo) -> object:
                # The token was checked on upgrade; now the stream's start names the call:
                # it must be the call the token was issued for.
                token = call.query.get(STREAM_TOKEN_PARAM, "")
                issued_for = stream_tokens.call_id(token)
                if issued_for is None or not hmac.compare_digest(
                    issued_for.encode(), call.call_sid.encode()
                ):
                    logger.warning("call %d refused: stream token of another call", call.id)
                    return None
                if app_authorize is None:
                    return call.call_sid
                return await _maybe_await(app_authorize(call))

            self._authorize = bound_to_the_call

    def _check_upgrade(self, scope: Scope) -> str | None:
        """Why this WebSocket upgrade is refused, or ``None`` if the carrier proved itself."""
        if not self.verify_carrier:
            return None
        query = scope.get("query_string", b"").decode("latin-1")
        if self._stream_tokens is not None:
            params = urllib.parse.parse_qs(query)
            tokens = params.get(STREAM_TOKEN_PARAM, [])
            if len(tokens) != 1 or self._stream_tokens.verify(tokens[0]) is None:
                return "missing, invalid, expired or used stream token"
            return None
        assert self._auth_token is not None
        signature = None
        host = None
        for k, v in scope.get("headers", []):
            name = k.decode("latin-1").lower()
            if name == "x-twilio-signature":
                signature = v.decode("latin-1")
            elif name == "host":
                host = v.decode("latin-1")
        if not signature:
            return "missing X-Twilio-Signature"
        raw_path = scope.get("raw_path")
        path = (
            raw_path.decode("latin-1")
            if isinstance(raw_path, bytes)
            else urllib.parse.quote(str(scope.get("path", "/")))
        )
        scheme = str(scope.get("scheme", "ws"))
        try:
            url = request_url(scheme, host, path, query, public_url=self._public_url)
        except ConfigError:
            return "no Host header to check X-Twilio-Signature against"
        if not twilio_signature_valid(self._auth_token, url, signature):
            return "invalid X-Twilio-Signature"
        return None

    async def _refuse_upgrade(
        self, scope: Scope, receive: Receive, send: Send, reason: str
    ) -> None:
        """Answer the upgrade with HTTP 403 (or a close before accept): nothing is opened."""
        self.refused += 1
        client = scope.get("client")
        logger.warning(
            "%s refused a stream from %s: %s",
            type(self).__name__,
            client[0] if client else "?",
            reason,
        )
        self._notify()
        msg = await receive()
        if msg["type"] != "websocket.connect":
            return
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": reason.encode()})
        else:
            await send({"type": "websocket.close", "code": 4403, "reason": reason})


def _activity_sender(
    bridge: TwilioBridge, session: VadSession
) -> tuple[ActivitySender | None, int]:
    """The caller's turn detection (``turn_detection="vad"``, else ``None``) and the rate
    of the audio sent upstream: the bridge's ``input_rate``, or without one, a detector's
    16 kHz (a detector built for the former default keeps working)."""
    rate = bridge.input_rate
    if bridge.turn_detection != "vad":
        return None, rate
    det = bridge._detector() if bridge._detector is not None else ActivityDetector(sample_rate=rate)
    if det.sample_rate != rate:
        if bridge._input_rate_given or det.sample_rate != 16000:
            raise ConfigError(
                f"the detector's sample_rate ({det.sample_rate}) must equal the bridge's"
                f" input_rate ({rate})"
            )
        rate = det.sample_rate
    return ActivitySender(session, det), rate


def _check_frames_ms(name: str, value: object, most: int) -> None:
    """``value`` is a whole number of 20 ms frames, at most ``most`` ms (ConfigError)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not FRAME_MS <= value <= most
        or value % FRAME_MS
    ):
        raise ConfigError(f"{name} must be a multiple of {FRAME_MS} from {FRAME_MS} to {most}")


class _Upstream:
    """The caller's audio on its way to the session, in writes of at least ``size``
    bytes (``upstream_ms``): a write shorter than that is held and goes out with the
    next one, so the carrier's 20 ms frames leave two at a time with the default 40.
    Nothing is dropped or reordered: the held audio goes first in the next write, and
    :meth:`flush` (a turn edge, a mark, a key press, barge-in, the end of the call) sends
    it on its own. It stands in for the session in the :class:`ActivitySender`, so the
    detector still decides on every 20 ms frame and ``activityStart``/``activityEnd``
    and ``audioStreamEnd`` go out after the audio before them.
    ``size`` 0 writes every chunk at once (``upstream_ms=20``)."""

    __slots__ = ("_held", "_nowait", "rate", "session", "size")

    def __init__(self, session: VadSession, rate: int, size: int) -> None:
        self.session = session
        self.rate = rate
        self.size = size
        self._held = b""
        # A session's no-wait write (gl.Session.send_audio_nowait), if it has one.
        self._nowait: Callable[..., bool] | None = getattr(session, "send_audio_nowait", None)

    def send_audio_nowait(self, pcm: bytes, *, sample_rate: int | None = None) -> bool:
        """Hold or write ``pcm`` without waiting (True); False: nothing changed, and
        :meth:`send_audio` of the same ``pcm`` finishes it."""
        held = self._held
        data = held + pcm if held else pcm
        if len(data) < self.size:
            self._held = data
            return True
        send = self._nowait
        if send is None or not send(data, sample_rate=self.rate):
            return False
        self._held = b""
        return True

    async def send_audio(self, pcm: object, *, sample_rate: int | None = None) -> None:
        held = self._held
        data = pcm if type(pcm) is bytes else bytes(as_pcm16(pcm))
        if held:
            data = held + data
        if len(data) < self.size:
            self._held = data
            return
        self._held = b""
        await self.session.send_audio(data, sample_rate=self.rate)

    def flush_nowait(self) -> bool:
        """Write the held audio without waiting (True, or nothing held); False: call
        :meth:`flush`."""
        held = self._held
        if not held:
            return True
        send = self._nowait
        if send is None or not send(held, sample_rate=self.rate):
            return False
        self._held = b""
        return True

    async def flush(self) -> None:
        held, self._held = self._held, b""
        if held:
            await self.session.send_audio(held, sample_rate=self.rate)

    async def send_activity_start(self) -> None:
        await self.flush()
        await self.session.send_activity_start()

    async def send_activity_end(self) -> None:
        await self.flush()
        await self.session.send_activity_end()

    async def send_audio_stream_end(self) -> None:
        await self.flush()
        await self.session.send_audio_stream_end()


class _Call(PeerSocket):
    """One call: the carrier's message format, turn detection, pacing and marks on the
    shared peer lifecycle (:mod:`gemini_live._bridge`)."""

    inline_checks_itself = True  # see inline

    normal_reason = "call ended"
    peer_closed_reason = "closed by Twilio"
    peer_gone_reason = "Twilio disconnected"

    def __init__(self, bridge: TwilioBridge, scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__(
            scope,
            receive,
            send,
            close_timeout=bridge.close_timeout,
            idle_timeout=bridge.idle_timeout,
            max_age=bridge.max_call_seconds,
        )
        self.bridge = bridge
        headers, query, client = parse_scope(scope)
        self.info = CallInfo(id=next(bridge._ids), headers=headers, query=query, client=client)
        self.session: gl.Session | None = None
        self._pump: EventPump | None = None
        self.sender: ActivitySender | None = None
        self._registered = False
        self._address: str | None = None
        # G.711 is one byte per sample at 8 kHz.
        self._audio_meter = AudioMeter(
            PHONE_RATE * bridge.max_audio_speed,
            PHONE_RATE * bridge.audio_burst_ms // 1000,
            PHONE_RATE * bridge.audio_burst_ms // 1000,
        )
        #: The rate sent upstream (see :func:`_activity_sender`).
        self._rate = bridge.input_rate
        self._up = self._upsampler()
        self._down = _downsampler(OUTPUT_RATE)
        self._down_rate = OUTPUT_RATE
        #: Waiting in the loop's :class:`_DownBatch` (the model's audio held for it).
        self._batched = False
        #: The pacer's state (:meth:`_pace`): when the next frame is due to start playing
        #: at the caller (loop time), the messages made but not written yet (the task
        #: writes them, waiting), the constant heads of the media and mark messages
        #: (encoded once the stream id is known) and the loop's clock.
        self._clock = -1.0
        self._unsent: deque[str] = deque()
        self._media_head = self._mark_head = ""
        self._loop_time: Callable[[], float] | None = None
        # Outbound audio not yet sent, one segment per reply.
        self._queue: deque[_Segment] = deque()
        # The pacer's wake-up while it waits for audio (a bare future: an Event's wait
        # makes one anyway, and more).
        self._wake: asyncio.Future[None] | None = None
        self._replies = itertools.count(1)
        self._mark_names = itertools.count(1)
        self._sid_key = bridge.stream_id_field
        self._decode_g711, self._encode_g711, self._silence = _CODECS["ulaw"]
        self._law: Literal["ulaw", "alaw"] = "ulaw"
        # mark name -> (reply, ms of that reply played once the mark comes back)
        self._marks: dict[str, tuple[int, int]] = {}
        #: The caller's audio on its way upstream (set with the session: _setup_input).
        self._upstream: _Upstream | None = None

    # -- sending ---------------------------------------------------------------------------

    def _setup_input(self, session: VadSession) -> None:
        """Turn detection and the upstream rate, once the session is open."""
        bridge = self.bridge
        upstream = _Upstream(session, bridge.input_rate, 0)  # the size once the rate is known
        self.sender, rate = _activity_sender(bridge, upstream)
        if rate != self._rate:
            self._rate = rate
            self._up = self._upsampler()
        upstream.rate = rate
        if bridge.upstream_ms > FRAME_MS:
            upstream.size = rate * bridge.upstream_ms // 1000 * 2  # PCM16
        self._upstream = upstream

    def _upsampler(self) -> Resampler | None:
        if self._rate == PHONE_RATE:
            return None
        return Resampler(PHONE_RATE, self._rate, backend=_BACKEND)

    async def _send_json(self, obj: dict[str, Any]) -> None:
        await self.send_data(_encode(obj).decode())

    # -- the shared lifecycle's hooks --------------------------------------------------------

    async def upgrade(self) -> bool:
        """Accept the carrier's WebSocket upgrade (checks of the upgrade request itself,
        such as the carrier's signature, belong here, before the accept)."""
        return await super().upgrade()

    def record_close(self, code: int, reason: str) -> None:
        self.info.close = (code, reason)

    async def admit(self) -> None:
        bridge = self.bridge
        info = self.info
        if len(bridge.calls) >= bridge.max_calls:
            raise PeerClose(1013, "too many calls")
        address = info.client[0] if info.client else None
        if address is not None:
            if not bridge._per_address.acquire(address, bridge.max_calls_per_address):
                raise PeerClose(1013, "too many calls from this address")
            self._address = address
        bridge.calls[info.id] = info
        self._registered = True
        await self._wait_start()
        if bridge._authorize is not None:
            identity = await maybe_await(bridge._authorize(info))
            if identity is None or identity is False:
                raise PeerClose(4401, "unauthorized")
            info.identity = identity
        bridge._notify()

    def failed(self, exc: Exception) -> tuple[int, str]:
        if isinstance(exc, GeminiLiveError):
            logger.warning("call %d: upstream error: %s", self.info.id, exc)
            return 4502, f"upstream error: {type(exc).__name__}"
        logger.error("call %d failed", self.info.id, exc_info=exc)
        return 1011, "internal error"

    async def cleanup(self) -> None:
        bridge = self.bridge
        # Bookkeeping first, with no await before it: it runs however the call ended.
        if self._registered:
            self._registered = False
            bridge.calls.pop(self.info.id, None)
        if self._address is not None:
            bridge._per_address.release(self._address)
            self._address = None
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.detach()
        session, self.session = self.session, None
        if session is not None:
            await bounded(session.close(), _SESSION_CLOSE_TIMEOUT, "closing the upstream session")

    async def finished(self) -> None:
        bridge = self.bridge
        if bridge._on_stop is not None:
            try:
                await maybe_await(bridge._on_stop(self.info))
            except Exception:
                logger.exception("on_stop hook raised")
        bridge.finished.append(self.info)
        bridge._notify()

    async def _next(self) -> _Inbound | None:
        while True:
            msg = await self.receive()
            if msg is None:
                return None
            if msg["type"] == "websocket.receive":
                break
        text = msg.get("text")
        if text is None:
            raise _Close(1003, "expected JSON text messages")
        if len(text) > self.bridge.max_message_bytes:
            raise _Close(1009, "message too big")
        try:
            return _decode(text)
        except msgspec.DecodeError as exc:
            raise _Close(1003, f"bad message: {exc}") from None

    async def _wait_start(self) -> None:
        try:
            async with asyncio.timeout(self.bridge.start_timeout):
                while True:
                    m = await self._next()
                    if m is None:
                        raise _Close(1000, "closed before start")
                    if m.event == "connected":
                        continue
                    if m.event == "start" and m.start is not None:
                        break
                    raise _Close(1008, f"expected a start message, got {m.event!r}")
        except TimeoutError:
            raise _Close(1008, "no start message") from None
        start = m.start
        fmt = start.mediaFormat or start.media_format or _MediaFormat()
        rate = fmt.sampleRate or fmt.sample_rate or PHONE_RATE
        law = _LAWS.get(fmt.encoding)
        if law is None or rate != PHONE_RATE or fmt.channels != 1:
            raise _Close(1003, f"unsupported media format {fmt.encoding} {rate} Hz x{fmt.channels}")
        self._decode_g711, self._encode_g711, self._silence = _CODECS[law]
        self._law = law
        info = self.info
        info.stream_sid = start.streamSid or m.streamSid or m.stream_id or ""
        if not info.stream_sid:
            raise _Close(1008, "start without a stream id")
        info.call_sid = start.callSid or start.call_control_id
        info.account_sid = start.accountSid
        info.custom_parameters = dict(start.customParameters)
        if start.client_state:
            info.custom_parameters["client_state"] = start.client_state

    async def _open_session(self, pump: EventPump) -> gl.Session:
        bridge = self.bridge
        config = await maybe_await(bridge._config(self.info))
        if not isinstance(config, gl.SessionConfig):
            raise TypeError(f"the bridge's config hook returned {type(config).__name__}")
        if bridge.turn_detection == "vad":
            config = with_client_activity(config)
        # Events are taken with on_event (an EventPump): no main stream to fill up. The
        # session's input rate is the upstream rate: its audio hot path takes every chunk.
        config = dataclasses.replace(config, main_stream=False, input_rate=self._rate)
        pump.limit = config.subscriber_queue  # the bound the main stream had
        try:
            async with asyncio.timeout(bridge.connect_timeout):
                return await pump.connect(config)
        except TimeoutError:
            raise _Close(4502, "upstream connect timed out") from None
        except GeminiLiveError as exc:
            logger.warning("call %d: upstream connect failed: %s", self.info.id, exc)
            raise _Close(4502, f"upstream connect failed: {type(exc).__name__}") from None

    async def serve(self) -> None:
        bridge = self.bridge
        # Subscribed before the first frame: events that arrive while the peer is told
        # about the session (and the on_session hook runs) are held, then delivered.
        pump = self._pump = EventPump(self._events, limit=EVENT_BACKLOG)
        session = self.session = await self._open_session(pump)
        self.info.session_id = session.session_id
        bridge._notify()
        self._setup_input(session)
        if bridge._on_session is not None:
            await maybe_await(bridge._on_session(session, self.info))
        # The caller's media and marks are handled in the server's read callback
        # (inline) where the server offers it; everything else arrives in _inbound.
        self.receive_inline()
        await self.serve_tasks(
            ("twilio-in", self._inbound(session)),
            ("twilio-events", pump.run()),
            ("twilio-pacer", self._pacer()),
        )

    # -- caller -> model -------------------------------------------------------------------

    async def _inbound(self, session: gl.Session) -> None:
        info = self.info
        bridge = self.bridge
        upstream = self._upstream
        assert upstream is not None  # _setup_input ran
        while True:
            m = await self._next()
            if m is None:
                return
            if m.event == "media":
                if m.media is None:
                    raise _Close(1003, "media message without media")
                try:
                    pcm = self._media_pcm(m.media)
                except ValueError:
                    raise _Close(1003, "media payload is not base64") from None
                if not pcm:
                    continue
                if self.sender is not None:
                    self._report_vad(await self.sender.feed(pcm))
                else:
                    await upstream.send_audio(pcm)
            elif m.event == "mark":
                await upstream.flush()
                if m.mark is not None:
                    self._mark_played(m.mark.name)
            elif m.event == "dtmf":
                if m.dtmf is None or len(m.dtmf.digit) != 1:
                    raise _Close(1003, "bad dtmf message")
                await upstream.flush()
                self.touch()
                info.dtmf_count += 1
                info.dtmf.append(m.dtmf.digit)
                if len(info.dtmf) > DTMF_KEEP:
                    del info.dtmf[0]
                bridge._notify()
                if bridge._on_dtmf is not None:
                    await maybe_await(bridge._on_dtmf(info, m.dtmf.digit, session))
            elif m.event == "stop":
                info.stopped = True
                if self.sender is not None:
                    await self.sender.finish()
                await upstream.flush()
                raise _Close(1000, "call ended")
            else:
                logger.debug("call %d: ignoring Twilio event %r", info.id, m.event)

    def inline(self, data: bytes | str) -> bool:
        """One carrier message inside the server's read callback: ``media`` and ``mark``
        with what :meth:`_next` and :meth:`_inbound` do (size check, decoding, the rate
        meter, G.711, resampling, the VAD, the upstream write), none of it waiting.
        Anything else (binary, too big, not valid JSON, ``dtmf``, ``stop``, a payload
        that is not base64, a turn edge the VAD found, a write that has to wait) goes on
        in :meth:`_inbound`, in order, which closes on bad input as it always did. The
        server calls it directly (:meth:`receive_inline`): it makes the checks of
        ``_inline_entry`` itself."""
        upstream = self._upstream
        if (
            upstream is None
            or type(data) is not str
            or len(data) > self.bridge.max_message_bytes
            or self.closed
            or self._rest is not None
        ):
            return False
        try:
            m = _decode(data)
        except msgspec.DecodeError:
            return False  # _inbound closes with the decoder's reason
        event = m.event
        if event == "media":
            media = m.media
            if media is None:
                return False
            # What _media_pcm does, inlined (one Python call less per message).
            if media.track not in ("inbound", "inbound_track"):
                return True
            try:
                g711 = pybase64.b64decode_as_bytearray(media.payload, None, True)
            except ValueError:
                return False  # _inbound closes: not base64
            if not g711:
                return True
            info = self.info
            info.media_in += 1
            if not self._audio_meter.admit(len(g711), time.monotonic()):
                info.media_dropped_bytes += len(g711)
                return True
            pcm = self._decode_g711(g711)
            up = self._up
            if up is not None:
                pcm = up.process(pcm)
                if not pcm:
                    return True
            sender = self.sender
            if sender is None:
                if upstream.send_audio_nowait(pcm):
                    return True
                self.finish_later(functools.partial(upstream.send_audio, pcm))
                return False
            # sender.feed_nowait(pcm, upstream.send_audio_nowait), with its two common
            # outcomes written out: a frame of speech (one "audio" action: written, then
            # all _report_vad does for it, touch(), inlined), or none (silence before an
            # utterance). Turn edges and a write that has to wait are sent and counted
            # by _vad_rest.
            actions = sender.detector.process(pcm)
            if len(actions) == 1 and actions[0].kind == "audio":
                audio = actions[0].audio
                if not audio or upstream.send_audio_nowait(audio):
                    self.last_activity = time.monotonic()
                    return True
                done = 0
            elif not actions:
                return True
            else:
                done = sender.send_nowait(actions, upstream.send_audio_nowait)
            if done < len(actions):
                self.finish_later(functools.partial(self._vad_rest, sender, actions, done))
                return False
            if done:
                self._report_vad(actions)
            return True
        if event == "mark":
            if not upstream.flush_nowait():
                return False  # _inbound flushes (waiting) and takes the mark
            if m.mark is not None:
                self._mark_played(m.mark.name)
            return True
        if event in ("dtmf", "stop"):
            return False
        logger.debug("call %d: ignoring Twilio event %r", self.info.id, event)
        return True

    def _media_pcm(self, media: _MediaBody) -> bytes:
        """The caller's PCM in one ``media`` message, for the task's path (:meth:`inline`
        does the same inline; tests/telephony/test_glue.py holds them equal): empty when
        there is nothing to send (another track, an empty payload, over the audio rate
        limit (counted), the resampler still filling). ``ValueError``: the payload is
        not base64 (nothing counted)."""
        if media.track not in ("inbound", "inbound_track"):
            return b""
        # A bytearray: G.711's decode takes it without a copy (audio.ulaw_to_pcm16).
        # validate=True passed by position: a keyword costs the C parser ~2.5k
        # instructions per message.
        g711 = pybase64.b64decode_as_bytearray(media.payload, None, True)
        if not g711:
            return b""
        info = self.info
        info.media_in += 1
        if not self._audio_meter.admit(len(g711), time.monotonic()):
            info.media_dropped_bytes += len(g711)
            return b""
        pcm = self._decode_g711(g711)
        up = self._up
        return pcm if up is None else up.process(pcm)

    async def _vad_rest(self, sender: ActivitySender, actions: list[VadAction], done: int) -> None:
        """What :meth:`inline` left of one message's VAD actions (from ``done`` on)."""
        await sender.send_actions(actions[done:])
        self._report_vad(actions)

    def _report_vad(self, actions: list[VadAction]) -> None:
        for a in actions:
            if a.kind in ("start", "audio"):
                self.touch()  # the caller speaks
            if a.kind == "start":
                self.info.utterances += 1
                self.bridge._notify()

    def _mark_played(self, name: str) -> None:
        entry = self._marks.pop(name, None)
        if entry is None:
            return  # a mark of a cleared reply, echoed by the clear: not played
        reply, ms = entry
        info = self.info
        info.marks_played += 1
        info.heard_ms[reply] = max(info.heard_ms.get(reply, 0), ms)
        self.bridge._notify()

    # -- model -> caller ------------------------------------------------------------------

    async def _events(self, event: ev.Event) -> None:
        """One session event (run by the :class:`EventPump`, inline in the session's
        frame callback unless a send has to wait)."""
        info = self.info
        match event:
            case ev.ModelAudio(data=data, sample_rate=rate):
                self.last_activity = time.monotonic()  # touch(), inlined: the model talks
                queue = self._queue
                if rate != self._down_rate:
                    if queue and queue[-1].pending:
                        self._resample(queue[-1])  # the audio before, at its own rate
                    self._down = _downsampler(rate)
                    self._down_rate = rate
                if not queue or queue[-1].done:
                    reply = next(self._replies)
                    info.sent_ms[reply] = 0
                    queue.append(_Segment(reply))
                seg = queue[-1]
                whole = type(data) is bytes and not len(data) & 1
                if whole and self._wake is None:
                    # The pacer is busy or ahead of the caller (a model faster than real
                    # time): held, the chunks that come until it takes them go down to
                    # 8 kHz in one step, not one each.
                    if data:
                        seg.pending.append(data)
                        seg.pending_bytes += len(data)
                        if seg.pending_bytes >= _PENDING_MOST:
                            self._resample(seg)
                elif whole and data and len(self.bridge.calls) >= _BATCH_FROM_CALLS:
                    # The pacer waits, in a busy bridge: held for the loop's batch, which
                    # resamples the chunks of every call of this loop iteration in one
                    # product and steps the pacers (_DownBatch).
                    seg.pending.append(data)
                    seg.pending_bytes += len(data)
                    if seg.pending_bytes >= _PENDING_MOST:
                        self._resample(seg)
                        self._wake_pacer()
                    elif not self._batched:
                        self._batched = True
                        _DownBatch.of(asyncio.get_running_loop()).add(self)
                else:
                    # The pacer waits, in a quiet bridge, or this is not bytes of whole
                    # PCM16 samples (a bytes-like, or the resampler's own typed error
                    # after the audio before it): resampled now.
                    if seg.pending:
                        self._resample(seg)
                    g711 = self._down.process_g711(data, self._law)
                    if g711:
                        seg.data += g711
                        self._wake_pacer()
            case ev.Interrupted():
                info.interruptions += 1
                upstream = self._upstream
                if upstream is not None:
                    # Barge-in: the caller's audio held back goes now when it can without
                    # waiting (a wait here could let a later frame pass it); else it
                    # stays first in the next write.
                    upstream.flush_nowait()
                await self._clear()
            case ev.VoiceActivity() | ev.InputTranscription():
                self.touch()  # the service heard the caller (turn_detection="server")
            case ev.TurnComplete() | ev.GenerationComplete():
                if isinstance(event, ev.TurnComplete):
                    info.turns += 1
                queue = self._queue
                if queue and not queue[-1].done:
                    if queue[-1].pending:
                        self._resample(queue[-1])
                    tail = self._down.flush()
                    self._down.reset()
                    if tail:
                        queue[-1].data += self._encode_g711(tail)
                    queue[-1].done = True
                    self._wake_pacer()
                self.bridge._notify()
            case ev.Closed(code=code, reason=reason):
                raise _Close(4502, f"upstream closed: {code} {reason}".strip())
            case _:
                pass

    def _resample(self, seg: _Segment) -> None:
        """The model's audio ``seg`` holds as it came (the reply being received, the
        resampler's stream), down to the phone's rate and law, in one step."""
        pending = seg.pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        seg.pending_bytes = 0
        seg.data += self._down.process_g711(data, self._law)

    def _wake_pacer(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():  # not cancelled with the pacer
                wake.set_result(None)

    def _pace_waiting(self) -> None:
        """The pacer's step for a pacer that waits for audio, here (no task wake-up):
        the messages due now written; its task woken only when it has to wait for
        something else (the next message's time, a write)."""
        if self._wake is None:
            return  # busy or asleep: it takes the audio itself
        try:
            due = self._pace()
        except Exception as exc:  # as the pacer's own: the call ends
            self._fail(exc)
            return
        if due is not None or self._unsent:
            self._wake_pacer()

    def _fail(self, exc: Exception) -> None:
        """End the call with ``exc`` as if its event handler had raised it (work done
        for the handler outside it: :class:`_DownBatch`)."""
        pump = self._pump
        if pump is not None:
            pump.end_with(exc)

    async def _clear(self) -> None:
        self._queue.clear()
        # Made, not written yet: the caller would hear them after the clear.
        self._unsent.clear()
        self._down.reset()
        # Marks still out belong to audio Twilio now drops (it echoes them on clear).
        self._marks.clear()
        self.info.clears += 1
        await self._send_json({"event": "clear", self._sid_key: self.info.stream_sid})
        self.bridge._notify()

    async def _pacer(self) -> None:
        """Send the replies' audio in real time, ``lead_ms`` ahead of the caller's ear:
        each ``media`` message carries the whole 20 ms frames at hand, at most
        ``media_ms`` of them (five frames with the default). The messages are made and
        written by :meth:`_pace` (also called by the loop's :class:`_DownBatch` while
        this task waits for audio); this task waits: for audio, for the next message's
        time, or for a write :meth:`_pace` could not make without waiting."""
        loop = asyncio.get_running_loop()
        unsent = self._unsent
        send = self.send_data
        while True:
            while unsent:
                await send(unsent.popleft())  # dropped after the close, as ever
            due = self._pace()
            if unsent:
                continue
            if due is None:
                wake = self._wake = loop.create_future()
                await wake
                continue
            # Pacing, not synchronisation: asyncio.sleep(wait) without its coroutine,
            # its loop.time() and its handle's cancel after the wake-up.
            timer_due = loop.create_future()
            timer = loop.call_at(due, _wake_up, timer_due)
            try:
                await timer_due
            except BaseException:
                timer.cancel()
                raise

    def _pace(self) -> float | None:
        """Make and write every message due now (written at once when the server's
        no-wait send can; the rest, in order, left in ``_unsent`` for the pacer's
        task). Returns None when it waits for audio, or the loop time the next message
        is due."""
        unsent = self._unsent
        if unsent:
            return None  # the task writes those first (it is awake: it left them)
        bridge = self.bridge
        queue = self._queue
        info = self.info
        loop_time = self._loop_time
        if loop_time is None:
            loop_time = self._loop_time = asyncio.get_running_loop().time
        nowait = self._send_nowait
        locked = self._send_lock.locked
        b64 = pybase64.b64encode_as_string
        while True:
            seg = queue[0] if queue else None
            if seg is not None and seg.pending:
                self._resample(seg)  # only the last reply has any: the resampler's
            if seg is None or (len(seg.data) < FRAME_BYTES and not seg.done):
                return None
            data = seg.data
            if not data:  # done and fully sent
                queue.popleft()
                continue
            now = loop_time()
            clock = self._clock  # when the next frame is due to start playing
            if clock < now:
                clock = now  # a new run starts now
            if clock - bridge.lead_ms / 1000 > now:
                self._clock = clock
                return clock - bridge.lead_ms / 1000
            most = bridge.media_ms // FRAME_MS  # frames per message
            n = min(len(data) // FRAME_BYTES, most) or 1  # or the reply's last partial frame
            size = n * FRAME_BYTES
            chunk = data[:size]  # a bytearray: base64 takes it as it is
            del data[:size]
            if len(chunk) < size:
                chunk += bytes([self._silence]) * (size - len(chunk))
            last = seg.done and not data
            if not self._media_head:
                self._media_head, self._mark_head = _heads(self._sid_key, info.stream_sid)
            text = self._media_head + b64(chunk) + '"}}'
            if not (
                self.closed or (not unsent and nowait is not None and not locked() and nowait(text))
            ):
                unsent.append(text)
            self._clock = clock + n * FRAME_MS / 1000
            info.media_out += 1
            before = info.sent_ms.get(seg.reply, 0)
            sent = before + n * FRAME_MS
            info.sent_ms[seg.reply] = sent
            # A mark after the message that reaches each mark_every_ms of the reply.
            mark_every = max(1, bridge.mark_every_ms // FRAME_MS)  # in frames
            if last or sent // FRAME_MS // mark_every > before // FRAME_MS // mark_every:
                name = f"r{seg.reply}-{next(self._mark_names)}"
                self._marks[name] = (seg.reply, sent)
                info.marks_sent += 1
                text = self._mark_head + name + '"}}'  # JSON-safe: r, digits and -
                if not (
                    self.closed
                    or (not unsent and nowait is not None and not locked() and nowait(text))
                ):
                    unsent.append(text)
            if last and queue and queue[0] is seg:
                queue.popleft()
                bridge._notify()
            if unsent:
                return None  # the task writes them, then comes back here


class _DownBatch(LoopBatch["_Call"]):
    """The calls of one event loop whose pacers wait for the model's audio held for
    them: at the next loop iteration, every such call's held audio goes down to the
    phone's rate in one product (:class:`~gemini_live.audio._DecimateBatch`: the
    numpy and BLAS overheads once per iteration, not once per call and chunk) and its
    pacer's step runs here (:meth:`_Call._pace_waiting`). A call that resampled,
    cleared or closed meanwhile has nothing held and is skipped; the order of each
    call's audio is unchanged."""

    __slots__ = ("_work",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._work = _DecimateBatch()

    def run(self, items: list[_Call]) -> None:
        """Resample each call's held audio and step its pacer (a call is added once
        until this run: it sets its ``_batched`` flag)."""
        jobs: dict[str, list[tuple[_Decimator, bytes]]] = {}
        held: dict[str, list[tuple[_Call, _Segment]]] = {}
        for call in items:
            call._batched = False
            queue = call._queue
            seg = queue[-1] if queue else None
            if seg is None or not seg.pending:
                continue  # resampled, cleared or closed meanwhile
            down = call._down
            if type(down) is not _Decimator:
                self._alone(call, seg)
                continue
            pending = seg.pending
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            seg.pending_bytes = 0
            jobs.setdefault(call._law, []).append((down, data))
            held.setdefault(call._law, []).append((call, seg))
        for law, group in jobs.items():
            try:
                codes = self._work.process_g711(group, law)  # type: ignore[arg-type]
            except Exception as exc:  # (never: the chunks were checked) the calls end
                for call, _ in held[law]:
                    call._fail(exc)
                continue
            for (call, seg), g711 in zip(held[law], codes, strict=True):
                if g711:
                    seg.data += g711
                call._pace_waiting()

    @staticmethod
    def _alone(call: _Call, seg: _Segment) -> None:
        try:
            call._resample(seg)
        except Exception as exc:
            call._fail(exc)
            return
        call._pace_waiting()


def _wake_up(due: asyncio.Future[None]) -> None:
    """The pacer's timer (the pacer may have been cancelled meanwhile)."""
    if not due.done():
        due.set_result(None)


def _heads(sid_key: str, stream_sid: str) -> tuple[str, str]:
    """The text msgspec writes for ``{"event": "media", sid_key: stream_sid, "media":
    {"payload": P}}`` and ``{"event": "mark", sid_key: stream_sid, "mark": {"name": N}}``
    up to ``P`` and ``N`` (each message ends with ``'"}}'``), encoded once per call."""
    sid = _encode(sid_key).decode() + ":" + _encode(stream_sid).decode()
    return (
        '{"event":"media",' + sid + ',"media":{"payload":"',
        '{"event":"mark",' + sid + ',"mark":{"name":"',
    )


@dataclass
class _Segment:
    """The mu-law audio of one reply, waiting to be paced out (``pending``: the model's
    audio of the reply being received, not resampled yet)."""

    reply: int
    data: bytearray = field(default_factory=bytearray)
    done: bool = False
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0


class TelnyxBridge(TwilioBridge):
    """The same bridge for Telnyx media streaming (bidirectional RTP mode).

    Telnyx speaks the same protocol in snake_case (``stream_id``, ``sequence_number``,
    ``start.media_format.sample_rate``, ``start.call_control_id``) with ``PCMU`` or
    ``PCMA`` at 8 kHz; ``call_sid`` holds the ``call_control_id`` and
    ``custom_parameters["client_state"]`` the call's client state. Start the stream with
    ``stream_bidirectional_mode: rtp`` and a matching ``stream_bidirectional_codec``.

    Telnyx signs its webhooks but not the media-stream upgrade, so the stream URL carries
    a per-call token: the app's call-control webhook (after checking the webhook with
    :func:`~gemini_live.telephony.verify_telnyx_webhook`) passes
    ``tokens.stream_url("wss://your.host/telnyx", call_control_id)`` as the stream URL,
    and ``TelnyxBridge(config, stream_tokens=tokens)`` accepts a stream only with a
    genuine, unexpired, unused token, and hangs up (4401) when the stream's
    ``call_control_id`` is not the call the token was issued for. Without
    ``stream_tokens`` the bridge refuses to start, unless ``insecure_no_signature=True``.
    """

    stream_id_field = "stream_id"
    carrier_proof = "stream_token"
