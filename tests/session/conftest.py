"""Fixtures for Session tests: every test runs over each transport backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import gemini_live as gl
from gemini_live.testing import FakeLiveServer
from gemini_live.transport.base import Backend

BACKENDS = ["memory", "picows", "websockets"]
MODEL = "models/gemini-3.8-live"
KEY = "AIzaTESTKEY0123456789abcdefghij"


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def backend_for(server: FakeLiveServer, name: str) -> str | Backend:
    if name == "memory":
        return server.memory_backend()
    return name


def config_for(
    server: FakeLiveServer,
    backend_name: str,
    *,
    url: str | None = None,
    auth: gl.Auth | None = None,
    setup: gl.types.Setup | None = None,
    reconnect: gl.ReconnectPolicy | None = None,
    **options: Any,
) -> gl.SessionConfig:
    endpoint = gl.Endpoint.custom(url or server.url)
    transport_keys = set(gl.TransportConfig.__dataclass_fields__)
    transport_opts = {k: options.pop(k) for k in list(options) if k in transport_keys}
    transport_opts.setdefault("open_timeout", 5.0)
    return gl.SessionConfig(
        setup=setup
        or gl.types.Setup(
            model=MODEL,
            generation_config=gl.types.GenerationConfig(response_modalities=["AUDIO"]),
            input_audio_transcription=gl.types.AudioTranscriptionConfig(),
            output_audio_transcription=gl.types.AudioTranscriptionConfig(),
        ),
        transport=gl.TransportConfig(
            endpoint=endpoint,
            auth=auth if auth is not None else gl.Auth.none(),
            backend=backend_for(server, backend_name),
            **transport_opts,
        ),
        reconnect=reconnect or gl.ReconnectPolicy(base_backoff=0.01, max_backoff=0.05),
        setup_timeout=options.pop("setup_timeout", 5.0),
        **options,
    )


@pytest.fixture
async def server() -> AsyncIterator[FakeLiveServer]:
    async with FakeLiveServer(validate_frames=True) as srv:
        yield srv
