"""Everything a backend receives is checked once, when it is built: nothing bad reaches a wire.

Header injection (CR/LF in a name, value, key or token), bad names, bad numbers: refused
with ``ConfigError`` when ``ConnectOptions`` / ``Auth`` / ``Endpoint`` are built, so a
session never asks a backend to connect, and the local FakeLiveServer sees no connection.
Credentials never show in a repr.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

import gemini_live as gl
from gemini_live._limits import MAX_CLOSE_REASON_BYTES, MAX_MESSAGE_SIZE, truncate_reason
from gemini_live.errors import ConfigError
from gemini_live.testing import FakeLiveServer
from gemini_live.transport import (
    Backend,
    ConnectOptions,
    FrameHandler,
    Transport,
    check_headers,
    get_backend,
    mask_headers,
)

SOCKET_BACKENDS = ("picows", "websockets")
MODEL = "models/gemini-3.8-live"
KEY = "AIzaBOUNDARYKEY0123456789abcdefghij"
SECRET = "sk-live-TOPSECRET-5f0c9e2a"
WAIT = 10.0

INJECTIONS = ["v\r\nX-Injected: 1", "v\n", "v\r", "v\x00", "v\tw", "v\x7f", "\x1b[31m"]


# --- ConnectOptions ------------------------------------------------------------------------


@pytest.mark.parametrize("value", INJECTIONS, ids=repr)
def test_header_values_with_control_characters_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="control character") as caught:
        ConnectOptions(headers=(("X-Custom", SECRET + value),))
    assert SECRET not in str(caught.value)
    with pytest.raises(ConfigError, match="control character"):
        ConnectOptions(user_agent=value)
    with pytest.raises(ConfigError, match="control character"):
        ConnectOptions(proxy=f"http://127.0.0.1:1/{value}")


@pytest.mark.parametrize(
    "name", ["", "Bad Name", "X-A:B", "X\r\nY", "X\n", "Ünicode", "(x)", 5, None], ids=repr
)
def test_header_names_must_be_http_tokens(name: Any) -> None:
    with pytest.raises(ConfigError, match="invalid HTTP header name"):
        ConnectOptions(headers=((name, "v"),))


@pytest.mark.parametrize(
    "headers",
    [(("X-A",),), ("X-A", "v"), "X-A: v", [("X-A", "v", "w")], (("X-A", 5),), (("X-A", b"v"),)],
    ids=repr,
)
def test_headers_must_be_name_value_string_pairs(headers: Any) -> None:
    with pytest.raises(ConfigError):
        ConnectOptions(headers=headers)


def test_good_headers_are_kept_in_order_as_a_tuple() -> None:
    pairs = [("x-goog-api-key", KEY), ("X-Trace", "a b; c=d"), ("X-Empty", "")]
    options = ConnectOptions(headers=pairs)  # type: ignore[arg-type]  # a list is accepted
    assert options.headers == tuple(pairs)
    assert check_headers(pairs) == tuple(pairs)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("open_timeout", 0),
        ("open_timeout", -1.0),
        ("open_timeout", math.nan),
        ("open_timeout", math.inf),
        ("open_timeout", True),
        ("open_timeout", "5"),
        ("close_timeout", 0.0),
        ("close_timeout", math.nan),
        ("ping_interval", 0),
        ("ping_interval", math.inf),
        ("ping_timeout", -2),
        ("max_message_size", 0),
        ("max_message_size", 1.5),
        ("max_message_size", True),
        ("ssl_context", "yes"),
        ("proxy", "no-scheme"),
    ],
    ids=repr,
)
def test_bad_numbers_and_objects_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field.split("_")[0]):
        ConnectOptions(**{field: value})


def test_defaults_and_typed_close_timeout() -> None:
    options = ConnectOptions()
    assert options.max_message_size == MAX_MESSAGE_SIZE == 16 * 1024 * 1024
    assert options.close_timeout == 5.0
    assert ConnectOptions(close_timeout=0.25).close_timeout == 0.25
    assert not hasattr(options, "extra")


def test_repr_never_shows_a_header_value_or_the_proxy() -> None:
    options = ConnectOptions(
        headers=(("x-goog-api-key", KEY), ("Authorization", f"Bearer {SECRET}")),
        proxy=f"http://user:{SECRET}@127.0.0.1:3128",
        user_agent="gemini-live/test",
    )
    for text in (repr(options), str(options), f"{options}", repr([options])):
        assert KEY not in text and SECRET not in text
        assert "x-goog-api-key" in text and "Authorization" in text
    assert mask_headers(options.headers) == (("x-goog-api-key", "***"), ("Authorization", "***"))


# --- the seam ------------------------------------------------------------------------------


class _MinimalTransport:
    """Only what the session uses: no close_info, no write_buffer_size."""

    async def send(self, data: bytes) -> None:
        pass

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass

    def abort(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


def test_the_transport_protocol_asks_only_what_the_session_uses() -> None:
    assert isinstance(_MinimalTransport(), Transport)


def test_close_reason_fits_the_frame_without_splitting_a_character() -> None:
    assert MAX_CLOSE_REASON_BYTES == 123
    assert truncate_reason("short") == "short"
    cut = truncate_reason("é" * 100)  # 200 bytes
    assert cut == "é" * 61 and len(cut.encode()) == 122
    assert len(truncate_reason("x" * 500).encode()) == 123


# --- nothing reaches the server, on every socket backend -----------------------------------


class _CountingBackend:
    """Wraps a real backend and counts how often the session asked it to connect."""

    def __init__(self, name: str) -> None:
        self.inner: Backend = get_backend(name)
        self.name = name
        self.connects = 0
        self.options: list[ConnectOptions] = []

    async def connect(self, url: str, handler: FrameHandler, options: ConnectOptions) -> Transport:
        self.connects += 1
        self.options.append(options)
        return await self.inner.connect(url, handler, options)


@pytest.fixture(params=SOCKET_BACKENDS)
def backend(request: pytest.FixtureRequest) -> _CountingBackend:
    return _CountingBackend(request.param)


@pytest.fixture
async def server() -> AsyncIterator[FakeLiveServer]:
    async with FakeLiveServer(require_api_key=KEY) as srv:
        yield srv


def _config(
    server: FakeLiveServer, backend: _CountingBackend, auth: gl.Auth, **transport: Any
) -> gl.SessionConfig:
    return gl.SessionConfig(
        setup=gl.types.Setup(model=MODEL),
        transport=gl.TransportConfig(
            endpoint=gl.Endpoint.custom(server.url),
            auth=auth,
            backend=backend,
            open_timeout=5.0,
            **transport,
        ),
        # Even a policy that retries the first connect must not retry a ConfigError.
        reconnect=gl.ReconnectPolicy(base_backoff=0.01, max_backoff=0.01, retry_initial=True),
        setup_timeout=5.0,
    )


async def _refused(config: gl.SessionConfig) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        async with asyncio.timeout(WAIT):
            session = await gl.Session.connect(config)
            await session.close()  # pragma: no cover - only when the test fails
    return caught.value


@pytest.mark.parametrize("value", INJECTIONS, ids=repr)
async def test_user_header_injection_never_reaches_the_server(
    server: FakeLiveServer, backend: _CountingBackend, value: str
) -> None:
    # Refused when the config is built, before any session exists.
    with pytest.raises(gl.ConfigError) as caught:
        _config(server, backend, gl.Auth.api_key(KEY), headers=(("X-Custom", SECRET + value),))
    assert SECRET not in str(caught.value)
    assert backend.connects == 0
    assert server.connections == []


async def test_bad_header_name_never_reaches_the_server(
    server: FakeLiveServer, backend: _CountingBackend
) -> None:
    with pytest.raises(gl.ConfigError):
        _config(server, backend, gl.Auth.api_key(KEY), headers=(("X-Evil\r\nHost", "v"),))
    assert backend.connects == 0
    assert server.connections == []


async def test_bad_provider_token_is_refused_once_and_never_sent(
    server: FakeLiveServer, backend: _CountingBackend
) -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return f"ya29.{SECRET}\r\nX-Injected: 1"

    err = await _refused(_config(server, backend, gl.Auth.bearer_provider(provider)))
    assert SECRET not in str(err)
    assert calls == 1  # not retried in a loop
    assert backend.connects == 0
    assert server.connections == []


async def test_key_with_a_trailing_newline_is_stripped_and_accepted(
    server: FakeLiveServer, backend: _CountingBackend
) -> None:
    key_from_file = KEY + "\n"
    async with asyncio.timeout(WAIT):
        session = await gl.Session.connect(_config(server, backend, gl.Auth.api_key(key_from_file)))
        await session.close()
    assert backend.connects == 1
    (record,) = server.connections
    assert record.headers["x-goog-api-key"] == KEY
    assert record.setup_completed
    assert KEY not in repr(backend.options[0])


def test_bad_credentials_and_urls_fail_before_any_session_exists() -> None:
    with pytest.raises(ConfigError):
        gl.Auth.api_key(f"{KEY}\r\nX-Injected: 1")
    with pytest.raises(ConfigError):
        gl.Auth.api_key("")
    with pytest.raises(ConfigError):
        gl.Endpoint.custom("ws://[::1")
