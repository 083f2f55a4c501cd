"""gemini-live: a fast, dependable asyncio client for the Gemini Live API.

Quick start::

    import gemini_live as gl

    async with gl.connect(model="gemini-3.8-live", api_key=KEY) as session:
        await session.send_text("Hello!")
        async for event in session:
            ...
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from types import TracebackType
from typing import Any

from gemini_live import errors, events, types
from gemini_live._version import __version__
from gemini_live.auth import Auth, Endpoint
from gemini_live.errors import ConfigError, GeminiLiveError
from gemini_live.session import (
    ReconnectPolicy,
    Session,
    SessionConfig,
    SessionStats,
    TransportConfig,
)
from gemini_live.transport.base import Backend

__all__ = [
    "Auth",
    "ConfigError",
    "Endpoint",
    "GeminiLiveError",
    "ReconnectPolicy",
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

DEFAULT_MODEL = "models/gemini-3.8-live"


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
    tools: Sequence[types.Tool] | None = None,
    input_audio_transcription: bool = False,
    output_audio_transcription: bool = False,
    setup: types.Setup | None = None,
    reconnect: ReconnectPolicy | None = None,
    **session_options: Any,
) -> SessionConfig:
    """Build a :class:`SessionConfig` from keyword arguments (see :func:`connect`)."""
    if setup is None:
        gen = types.GenerationConfig(response_modalities=list(response_modalities))
        if voice:
            gen = types.GenerationConfig(
                response_modalities=list(response_modalities),
                speech_config=types.SpeechConfig.voice(voice),
            )
        si: types.Content | Any = types.UNSET
        if isinstance(system_instruction, str):
            si = types.Content(parts=[types.Part(text=system_instruction)])
        elif system_instruction is not None:
            si = system_instruction
        setup = types.Setup(
            model=model or os.environ.get("GEMINI_MODEL") or DEFAULT_MODEL,
            generation_config=gen,
            system_instruction=si,
            tools=list(tools) if tools is not None else types.UNSET,
            input_audio_transcription=types.AudioTranscriptionConfig()
            if input_audio_transcription
            else types.UNSET,
            output_audio_transcription=types.AudioTranscriptionConfig()
            if output_audio_transcription
            else types.UNSET,
        )
    elif model is not None:
        raise ConfigError("pass either setup= or model=, not both")
    if endpoint is None:
        endpoint = Endpoint.custom(url) if url else Endpoint.gemini()
    if auth is None:
        key = api_key
        if key is None and endpoint.api == "gemini" and url is None:
            key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
        auth = Auth.api_key(key) if key else Auth.none()
    elif api_key is not None:
        raise ConfigError("pass either auth= or api_key=, not both")
    transport_keys = set(TransportConfig.__dataclass_fields__)
    t_opts = {k: session_options.pop(k) for k in list(session_options) if k in transport_keys}
    return SessionConfig(
        setup=setup,
        transport=TransportConfig(endpoint=endpoint, auth=auth, backend=backend, **t_opts),
        reconnect=reconnect or ReconnectPolicy(),
        **session_options,
    )


class connect:
    """Open a :class:`Session`; use as ``await gl.connect(...)`` or ``async with gl.connect(...)``.

    Keyword arguments build the :class:`SessionConfig` (``model``, ``api_key``, ``url``,
    ``response_modalities``, ``voice``, ``system_instruction``, ``tools``,
    ``input_audio_transcription``, ``output_audio_transcription``, ``backend``, ...);
    pass ``config=`` to give a complete one instead.
    """

    def __init__(self, config: SessionConfig | None = None, **kwargs: Any) -> None:
        if config is not None and kwargs:
            raise ConfigError("pass either config= or keyword arguments, not both")
        self._config = config if config is not None else build_config(**kwargs)
        self._session: Session | None = None

    def __await__(self) -> Generator[Any, None, Session]:
        return Session.connect(self._config).__await__()

    async def __aenter__(self) -> Session:
        self._session = await Session.connect(self._config)
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
