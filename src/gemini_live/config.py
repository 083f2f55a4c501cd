"""Session configuration: what to connect to, how to reconnect, what to keep.

Every value is checked when the config object is built (a typo or a nonsense value is a
:class:`~gemini_live.errors.ConfigError` at construction, never a surprise mid-session).
:func:`build_config` turns the keyword arguments of :func:`gemini_live.connect` into a
:class:`SessionConfig`.
"""

from __future__ import annotations

import dataclasses
import os
import random
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import msgspec

from gemini_live import types
from gemini_live._checks import non_negative, non_negative_int, positive, positive_int
from gemini_live._limits import MAX_MESSAGE_SIZE
from gemini_live._pcm import INPUT_RATE, check_rate
from gemini_live.auth import GEMINI_HOST, Auth, Endpoint, register_header_secrets
from gemini_live.errors import AudioFormatError, AuthError, ConfigError, GeminiLiveError
from gemini_live.protocol._checks import check_types
from gemini_live.protocol._outbox import ResendWindow
from gemini_live.transport._common import CLOSE_TIMEOUT, check_headers, mask_headers
from gemini_live.transport.base import Backend

if TYPE_CHECKING:
    from gemini_live.history import Summarizer
    from gemini_live.store import ConversationStore
    from gemini_live.tools import ToolRegistry

__all__ = [
    "DEFAULT_MODEL",
    "MAX_MESSAGE_SIZE",
    "ReconnectPolicy",
    "ResendWindow",
    "SessionConfig",
    "TransportConfig",
    "build_config",
    "check_credentials",
    "with_client_activity",
]

#: The model used when neither ``model=`` nor ``$GEMINI_MODEL`` names one.
DEFAULT_MODEL = "models/gemini-3.8-live"

_BACKEND_NAMES = ("picows", "websockets", "memory")


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
    max_message_size: int = MAX_MESSAGE_SIZE
    headers: tuple[tuple[str, str], ...] = ()
    #: Application-level watchdog: no frame for this many seconds while open -> reconnect.
    idle_timeout: float | None = None
    #: Bound on the WebSocket closing handshake (seconds).
    close_timeout: float = CLOSE_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.endpoint, Endpoint):
            raise ConfigError(f"endpoint must be an Endpoint, got {type(self.endpoint).__name__}")
        if not isinstance(self.auth, Auth):
            raise ConfigError(f"auth must be an Auth, got {type(self.auth).__name__}")
        backend = self.backend
        if isinstance(backend, str):
            if backend not in _BACKEND_NAMES:
                raise ConfigError(
                    f"backend must be one of {', '.join(_BACKEND_NAMES)} or a Backend object, "
                    f"got {backend!r}"
                )
        elif not callable(getattr(backend, "connect", None)):
            raise ConfigError(
                f"backend {type(backend).__name__} is not a Backend (it has no connect())"
            )
        if self.ssl_context is not None and not isinstance(self.ssl_context, ssl.SSLContext):
            raise ConfigError("ssl_context must be an ssl.SSLContext")
        if self.proxy is not None and not isinstance(self.proxy, str):
            raise ConfigError("proxy must be a URL string")
        positive("open_timeout", self.open_timeout)
        positive("ping_interval", self.ping_interval, optional=True)
        positive("ping_timeout", self.ping_timeout, optional=True)
        positive_int("max_message_size", self.max_message_size)
        positive("idle_timeout", self.idle_timeout, optional=True)
        if not isinstance(self.headers, tuple):
            raise ConfigError("headers must be a tuple of (name, value) string pairs")
        check_headers(self.headers)
        # A server may echo a header back (a close reason, an error frame): credential
        # headers are redacted like the API key from now on.
        register_header_secrets(self.headers)
        positive("close_timeout", self.close_timeout)

    def __repr__(self) -> str:
        return (
            f"TransportConfig(endpoint={self.endpoint!r}, auth={self.auth!r}, "
            f"backend={self.backend!r}, headers={mask_headers(self.headers)!r}, "
            f"proxy={'***' if self.proxy else None}, open_timeout={self.open_timeout!r}, "
            f"idle_timeout={self.idle_timeout!r})"
        )


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """When and how fast to reconnect after a connection is lost.

    One rule for every kind of failure (a connect that failed, a connection that died):
    errors for which :meth:`should_retry` is true are retried after :meth:`delay`. The
    attempt counter resets only after a connection stayed *healthy* (open for
    ``healthy_after`` seconds, or until one model turn completed), so a server that
    accepts the setup and then closes at once sees growing backoff, not a hot loop.
    """

    enabled: bool = True
    base_backoff: float = 0.5
    max_backoff: float = 5.0
    #: Attempts per outage (reset after a healthy connection). None: unlimited.
    max_attempts: int | None = 10
    jitter: float = 0.2
    #: Also retry when the very first connection fails (default: fail fast).
    retry_initial: bool = False
    #: Seconds a connection must stay open to count as healthy.
    healthy_after: float = 10.0
    #: Fresh sessions (resumption impossible) in a row before giving up. None: unlimited.
    max_fresh_restarts: int | None = 5
    #: Override which errors are retried (default: ``error.retryable``).
    retry: Callable[[GeminiLiveError], bool] | None = None

    def __post_init__(self) -> None:
        non_negative("base_backoff", self.base_backoff)
        non_negative("max_backoff", self.max_backoff)
        non_negative_int("max_attempts", self.max_attempts, optional=True)
        if not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter < 1:
            raise ConfigError(f"jitter must be in [0, 1), got {self.jitter!r}")
        positive("healthy_after", self.healthy_after)
        non_negative_int("max_fresh_restarts", self.max_fresh_restarts, optional=True)
        if self.retry is not None and not callable(self.retry):
            raise ConfigError("retry must be a callable taking the error")

    def should_retry(self, error: GeminiLiveError) -> bool:
        """Whether ``error`` ends the connection but not the session."""
        if not self.enabled:
            return False
        if self.retry is not None:
            return bool(self.retry(error))
        return error.retryable

    def delay(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (1-based): exponential, capped, jittered."""
        base = min(self.max_backoff, self.base_backoff * (2 ** max(0, attempt - 1)))
        if self.jitter and base:
            base *= 1.0 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, float(base))


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything a :class:`~gemini_live.Session` needs. Only ``setup`` is required."""

    setup: types.Setup
    transport: TransportConfig = field(default_factory=TransportConfig)
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    setup_timeout: float = 10.0
    #: Ask for resumption handles (adds ``sessionResumption: {}`` if the setup has none).
    resumption: bool = True
    #: Bytes of client frames kept while disconnected; beyond it sends raise QueueFullError.
    offline_buffer_bytes: int = 4 * 1024 * 1024
    #: What is re-sent after a reconnect.
    resend: ResendWindow = field(default_factory=ResendWindow)
    #: Events buffered per subscriber before it starts lagging.
    subscriber_queue: int = 4096
    #: Rotate at the latest this many seconds before a goAway deadline.
    go_away_margin: float = 0.25
    #: After a goAway, user input is written on the old connection ("write", lowest
    #: latency) or held until the new one is open ("hold").
    drain_input: Literal["write", "hold"] = "write"
    #: Input sample rate for send_audio.
    input_rate: int = INPUT_RATE
    #: Keep ``session.usage`` (token meter) and ``session.latency`` (per-turn timings).
    metrics: bool = True
    #: Buffer events for ``async for event in session`` / ``next_event()``. Turn it off
    #: when the app consumes events only through ``on_event`` callbacks or ``events()``.
    main_stream: bool = True
    #: Keep a bounded conversation history (``session.history``) and send it to a fresh
    #: session when a reconnect cannot restore the conversation.
    reseed: bool = True
    history_max_entries: int = 200
    history_max_chars: int = 32_000
    #: Folds the oldest history entries into a summary when the bounds are reached.
    summarizer: Summarizer | None = None
    #: History to start a brand-new session with (``(role, text)`` pairs, ``Content``
    #: turns or ``HistoryEntry`` objects).
    history: Sequence[object] = ()
    #: An interaction still IN_PROGRESS this many seconds after its last sign of life ends
    #: with an ``InteractionTimeout`` event (None: never).
    interaction_timeout: float | None = 30.0
    #: Check and adapt the setup against the model's capability table
    #: (:mod:`gemini_live.models`): safe fixes are logged, impossible settings raise.
    adapt_to_model: bool = True
    #: Continue the stored conversation with this id (:mod:`gemini_live.store`): lease it,
    #: resume it, save it as it goes. None: the session is not stored.
    conversation: str | None = None
    #: Where the conversation is stored (None with a ``conversation``: the process-wide
    #: :class:`~gemini_live.store.MemoryStore`).
    store: ConversationStore | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.setup, types.Setup):
            raise ConfigError(f"setup must be a types.Setup, got {type(self.setup).__name__}")
        check_types(self.setup, types.Setup, "setup")
        if not isinstance(self.transport, TransportConfig):
            raise ConfigError("transport must be a TransportConfig")
        if not isinstance(self.reconnect, ReconnectPolicy):
            raise ConfigError("reconnect must be a ReconnectPolicy")
        if not isinstance(self.resend, ResendWindow):
            raise ConfigError("resend must be a ResendWindow")
        positive("setup_timeout", self.setup_timeout)
        positive_int("offline_buffer_bytes", self.offline_buffer_bytes)
        positive_int("subscriber_queue", self.subscriber_queue)
        non_negative("go_away_margin", self.go_away_margin)
        if self.drain_input not in ("write", "hold"):
            raise ConfigError(f"drain_input must be 'write' or 'hold', got {self.drain_input!r}")
        try:
            check_rate(self.input_rate)
        except AudioFormatError as exc:
            raise ConfigError(f"input_rate: {exc}") from None
        positive_int("history_max_entries", self.history_max_entries)
        positive_int("history_max_chars", self.history_max_chars)
        positive("interaction_timeout", self.interaction_timeout, optional=True)
        if self.summarizer is not None and not callable(self.summarizer):
            raise ConfigError("summarizer must be a callable")
        if isinstance(self.history, (str, bytes)):
            raise ConfigError("history must be a sequence of turns, not a string")
        if self.store is not None or self.conversation is not None:
            from gemini_live.store import ConversationStore
            from gemini_live.store._record import check_id

            if self.conversation is None:
                raise ConfigError("store= needs conversation= (the id to store it under)")
            check_id(self.conversation)
            if self.store is not None and not isinstance(self.store, ConversationStore):
                raise ConfigError(
                    f"store must be a gemini_live.store.ConversationStore, got "
                    f"{type(self.store).__name__}"
                )


def _text_content(value: str | types.Content, what: str) -> types.Content:
    if isinstance(value, str):
        return types.Content(parts=[types.Part(text=value)])
    if isinstance(value, types.Content):
        return value
    raise ConfigError(f"{what} must be a str or types.Content, got {type(value).__name__}")


def _tool_list(tools: object) -> list[types.Tool]:
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Sequence):
        raise ConfigError(f"tools must be a list of types.Tool, got {type(tools).__name__}")
    bad = [t for t in tools if not isinstance(t, types.Tool)]
    if bad:
        raise ConfigError(f"tools must be types.Tool objects, got {type(bad[0]).__name__}")
    return list(tools)


def build_config(
    *,
    model: str | None = None,
    api_key: str | None = None,
    url: str | None = None,
    endpoint: Endpoint | None = None,
    auth: Auth | None = None,
    backend: str | Backend = "picows",
    response_modalities: Sequence[str] = ("AUDIO",),
    system_instruction: str | types.Content | None = None,
    voice: str | None = None,
    tools: Sequence[types.Tool] | ToolRegistry | None = None,
    input_audio_transcription: bool = False,
    output_audio_transcription: bool = False,
    setup: types.Setup | None = None,
    reconnect: ReconnectPolicy | None = None,
    ssl_context: ssl.SSLContext | None = None,
    proxy: str | None = None,
    open_timeout: float = 10.0,
    ping_interval: float | None = None,
    ping_timeout: float | None = None,
    max_message_size: int = MAX_MESSAGE_SIZE,
    headers: Sequence[tuple[str, str]] = (),
    idle_timeout: float | None = None,
    setup_timeout: float = 10.0,
    resumption: bool = True,
    offline_buffer_bytes: int = 4 * 1024 * 1024,
    resend: ResendWindow | None = None,
    subscriber_queue: int = 4096,
    go_away_margin: float = 0.25,
    drain_input: Literal["write", "hold"] = "write",
    input_rate: int = INPUT_RATE,
    metrics: bool = True,
    main_stream: bool = True,
    reseed: bool = True,
    history: Sequence[object] = (),
    summarizer: Summarizer | None = None,
    interaction_timeout: float | None = 30.0,
    adapt_to_model: bool = True,
    live_connect_config: object = None,
    conversation: str | None = None,
    store: ConversationStore | None = None,
) -> SessionConfig:
    """Build a :class:`SessionConfig` from keyword arguments (see :func:`gemini_live.connect`).

    ``model`` falls back to ``$GEMINI_MODEL``, then :data:`DEFAULT_MODEL`; ``api_key`` to
    ``$GEMINI_API_KEY`` / ``$GOOGLE_API_KEY`` (Gemini API only). An empty string is
    refused, never silently replaced.
    """
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise ConfigError(f"model must be a non-empty string, got {model!r}")
    if api_key is not None and (not isinstance(api_key, str) or not api_key):
        raise ConfigError("api_key must be a non-empty string (or None to read $GEMINI_API_KEY)")
    if url is not None and (not isinstance(url, str) or not url):
        raise ConfigError(f"url must be a non-empty string, got {url!r}")
    tool_list: list[types.Tool] | None = None
    if tools is not None:
        declare = getattr(tools, "tools", None)
        tool_list = _tool_list(declare() if callable(declare) else tools)
    if live_connect_config is not None:
        from gemini_live.compat import setup_from_genai

        if setup is not None:
            raise ConfigError("pass either setup= or live_connect_config=, not both")
        setup = setup_from_genai(
            live_connect_config, model=model or os.environ.get("GEMINI_MODEL") or DEFAULT_MODEL
        )
        model = None
    if setup is None:
        if isinstance(response_modalities, str) or not all(
            isinstance(m, str) for m in response_modalities
        ):
            raise ConfigError("response_modalities must be a list of strings such as ['AUDIO']")
        speech: types.SpeechConfig | types.UnsetType = types.UNSET
        if voice is not None:
            if not isinstance(voice, str) or not voice:
                raise ConfigError(f"voice must be a non-empty string, got {voice!r}")
            speech = types.SpeechConfig.voice(voice)
        gen = types.GenerationConfig(
            response_modalities=list(response_modalities), speech_config=speech
        )
        setup = types.Setup(
            model=model or os.environ.get("GEMINI_MODEL") or DEFAULT_MODEL,
            generation_config=gen,
            system_instruction=_text_content(system_instruction, "system_instruction")
            if system_instruction is not None
            else types.UNSET,
            tools=tool_list if tool_list is not None else types.UNSET,
            input_audio_transcription=types.AudioTranscriptionConfig()
            if input_audio_transcription
            else types.UNSET,
            output_audio_transcription=types.AudioTranscriptionConfig()
            if output_audio_transcription
            else types.UNSET,
        )
    else:
        if model is not None:
            raise ConfigError("pass either setup= or model=, not both")
        if tool_list is not None:
            setup = msgspec.structs.replace(setup, tools=tool_list)
    if endpoint is None:
        endpoint = Endpoint.custom(url) if url else Endpoint.gemini()
    elif url is not None:
        raise ConfigError("pass either endpoint= or url=, not both")
    if auth is None:
        key = api_key
        if key is None and endpoint.api == "gemini" and url is None:
            key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY") or None
            if key is not None:
                key = key.strip()
        auth = Auth.api_key(key) if key else Auth.none()
    elif api_key is not None:
        raise ConfigError("pass either auth= or api_key=, not both")
    return SessionConfig(
        setup=setup,
        transport=TransportConfig(
            endpoint=endpoint,
            auth=auth,
            backend=backend,
            ssl_context=ssl_context,
            proxy=proxy,
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_message_size=max_message_size,
            headers=tuple(tuple(h) for h in headers),  # type: ignore[misc]
            idle_timeout=idle_timeout,
        ),
        reconnect=reconnect or ReconnectPolicy(),
        setup_timeout=setup_timeout,
        resumption=resumption,
        offline_buffer_bytes=offline_buffer_bytes,
        resend=resend or ResendWindow(),
        subscriber_queue=subscriber_queue,
        go_away_margin=go_away_margin,
        drain_input=drain_input,
        input_rate=input_rate,
        metrics=metrics,
        main_stream=main_stream,
        reseed=reseed,
        history=tuple(history),
        summarizer=summarizer,
        interaction_timeout=interaction_timeout,
        adapt_to_model=adapt_to_model,
        conversation=conversation,
        store=store,
    )


#: Request headers that carry a credential of their own (lower case).
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-goog-api-key"})

#: What :func:`check_credentials` says (the CLI says the same with ``--api-key``).
NO_CREDENTIAL = (
    "no API key: set GEMINI_API_KEY or pass api_key= (or auth= with a token);"
    " nothing was sent to Google"
)


def check_credentials(config: SessionConfig) -> None:
    """Refuse, before dialing, a session to Google's Gemini endpoint with no credential.

    Raises :class:`~gemini_live.errors.AuthError` when the endpoint is Google's Gemini API
    host and neither ``auth`` (an API key, an ephemeral token, a bearer token) nor a
    credential header is configured: the service would refuse the connection anyway. A
    custom URL (a fake server, a proxy that adds the key) needs no credential.
    """
    transport = config.transport
    endpoint = transport.endpoint
    if transport.auth.kind != "none" or endpoint.api != "gemini":
        return
    if any(name.lower() in _CREDENTIAL_HEADERS for name, _ in transport.headers):
        return
    import urllib.parse

    if urllib.parse.urlsplit(endpoint.url).hostname != GEMINI_HOST:
        return
    error = AuthError(1008, NO_CREDENTIAL, phase="connect", local=True)
    error.args = (NO_CREDENTIAL,)  # the sentence alone: no close code was received
    raise error


def with_client_activity(config: SessionConfig) -> SessionConfig:
    """Return ``config`` with the service's automatic activity detection disabled.

    The client then brackets each utterance with ``activityStart``/``activityEnd`` (the
    browser relay and the phone bridges do so with :mod:`gemini_live.vad`).
    """
    setup = config.setup
    ric = setup.realtime_input_config
    if ric is types.UNSET:
        ric = types.RealtimeInputConfig()
    aad = ric.automatic_activity_detection
    if aad is types.UNSET:
        aad = types.AutomaticActivityDetection()
    if aad.disabled is True:
        return config
    aad = msgspec.structs.replace(aad, disabled=True)
    ric = msgspec.structs.replace(ric, automatic_activity_detection=aad)
    return dataclasses.replace(
        config, setup=msgspec.structs.replace(setup, realtime_input_config=ric)
    )
