"""gemini-live: a fast, dependable asyncio client for the Gemini Live API.

Quick start::

    import gemini_live as gl

    async with gl.connect(model="gemini-3.8-live", api_key=KEY) as session:
        await session.send_text("Hello!")
        async for event in session:
            ...
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Generator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from gemini_live import errors, events, types
from gemini_live._version import __version__
from gemini_live.auth import Auth, Endpoint
from gemini_live.config import (
    DEFAULT_MODEL,
    ReconnectPolicy,
    ResendWindow,
    SessionConfig,
    TransportConfig,
    build_config,
)
from gemini_live.errors import ConfigError, GeminiLiveError
from gemini_live.protocol import SessionStats
from gemini_live.session import Session
from gemini_live.transport.base import Backend

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from gemini_live.history import Summarizer
    from gemini_live.store import ConversationStore
    from gemini_live.tools import ToolRegistry

# A library logs only where the app asked for it: without this handler Python's
# last-resort handler would print WARNING and above on stderr (e.g. the reason of an error
# the app already handles).
logging.getLogger("gemini_live").addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_MODEL",
    "Auth",
    "ConfigError",
    "ConnectOptions",
    "Endpoint",
    "GeminiLiveError",
    "ReconnectPolicy",
    "ResendWindow",
    "Session",
    "SessionConfig",
    "SessionStats",
    "TransportConfig",
    "__version__",
    "build_config",
    "connect",
    "errors",
    "events",
    "types",
]


class ConnectOptions(TypedDict, total=False):
    """The keyword arguments of :func:`connect` and :func:`build_config` (typed)."""

    model: str | None
    api_key: str | None
    url: str | None
    endpoint: Endpoint | None
    auth: Auth | None
    backend: str | Backend
    response_modalities: Sequence[str]
    system_instruction: str | types.Content | None
    voice: str | None
    tools: Sequence[types.Tool] | ToolRegistry | None
    input_audio_transcription: bool
    output_audio_transcription: bool
    setup: types.Setup | None
    reconnect: ReconnectPolicy | None
    ssl_context: ssl.SSLContext | None
    proxy: str | None
    open_timeout: float
    ping_interval: float | None
    ping_timeout: float | None
    max_message_size: int
    headers: Sequence[tuple[str, str]]
    idle_timeout: float | None
    setup_timeout: float
    resumption: bool
    offline_buffer_bytes: int
    resend: ResendWindow | None
    subscriber_queue: int
    go_away_margin: float
    drain_input: Literal["write", "hold"]
    input_rate: int
    metrics: bool
    main_stream: bool
    reseed: bool
    history: Sequence[object]
    summarizer: Summarizer | None
    interaction_timeout: float | None
    adapt_to_model: bool
    live_connect_config: object
    conversation: str | None
    store: ConversationStore | None


class connect:
    """Open a :class:`Session`; use as ``await gl.connect(...)`` or ``async with gl.connect(...)``.

    Keyword arguments (see :class:`ConnectOptions` and :func:`build_config`) build the
    :class:`SessionConfig`; pass ``config=`` to give a complete one instead. With
    ``tools=registry`` (a :class:`~gemini_live.tools.ToolRegistry`) the session declares
    the registry's tools and answers every call from the first frame on.

    Google's endpoint with no credential at all (no ``api_key``/``auth``, no credential
    header, no ``$GEMINI_API_KEY``/``$GOOGLE_API_KEY``) raises
    :class:`~gemini_live.errors.AuthError` before anything is dialed; a custom ``url``
    needs none.
    """

    def __init__(self, config: object = None, **options: Unpack[ConnectOptions]):
        if config is not None and not isinstance(config, SessionConfig):
            from gemini_live.compat import is_genai_config

            if not (isinstance(config, dict) or is_genai_config(config)):
                raise ConfigError(
                    "config must be a SessionConfig or a google-genai LiveConnectConfig "
                    f"(or its dict form), got {type(config).__name__}"
                )
            options["live_connect_config"] = config
            config = None
        if config is not None and options:
            raise ConfigError("pass either config= or keyword arguments, not both")
        self._config = config if isinstance(config, SessionConfig) else build_config(**options)
        tools = options.get("tools")
        self._registry = tools if callable(getattr(tools, "tools", None)) else None
        self._session: Session | None = None

    async def _open(self) -> Session:
        session = await Session._create(self._config)
        if self._registry is not None:
            session._attach_tools(self._registry)  # type: ignore[arg-type]
        try:
            await session._start()
        except BaseException:
            await session.close()
            raise
        return session

    def __await__(self) -> Generator[Any, None, Session]:
        return self._open().__await__()

    async def __aenter__(self) -> Session:
        self._session = await self._open()
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
