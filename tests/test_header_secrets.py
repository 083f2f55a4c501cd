"""Credentials passed as extra headers never come back out (issue 18 item 6).

A server (or a proxy in front of it) that echoes a header value in a close reason must
not get it into a log line, ``session.error``, an OpenTelemetry span or a cassette. Only
the bare token is echoed: ``Bearer <token>`` was caught by a pattern before; a token
alone, or a custom ``x-...-token`` header, was not.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

import gemini_live as gl
from gemini_live import errors
from gemini_live.auth import is_credential_header, register_header_secrets
from gemini_live.errors import SecretRegistry, redact
from gemini_live.otel import LiveTelemetry
from gemini_live.testing import FakeLiveServer
from gemini_live.testing.cassette import Recorder, RecordingProxy

MODEL = "gemini-3.1-flash-live-preview"
BEARER = "opaque-bearer-value-7c1f9e2b5a"
CUSTOM = "custom-header-secret-91d0e4"
COOKIE = "cookie-session-id-6b2a8f03"


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> SecretRegistry:
    """Each test starts with an empty registry (nothing registered by an earlier test)."""
    registry = SecretRegistry()
    monkeypatch.setattr(errors, "secret_registry", registry)
    return registry


def _config(url: str, backend: object) -> gl.SessionConfig:
    return gl.SessionConfig(
        setup=gl.types.Setup(model=MODEL),
        transport=gl.TransportConfig(
            endpoint=gl.Endpoint.custom(url),
            auth=gl.Auth.none(),
            backend=backend,  # type: ignore[arg-type]
            open_timeout=5.0,
            headers=(
                ("Authorization", f"Bearer {BEARER}"),
                ("X-Tenant-Token", CUSTOM),
                ("Cookie", f"theme=dark; sid={COOKIE}"),
                ("X-Request-Source", "unit-test-harness"),
            ),
        ),
        setup_timeout=5.0,
        reconnect=gl.ReconnectPolicy(max_attempts=0),
    )


async def test_an_echoed_header_credential_appears_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cassette = tmp_path / "echo.jsonl"
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = LiveTelemetry(tracer_provider=tracer_provider)
    async with FakeLiveServer() as server:
        recorder = Recorder(cassette, "websockets")
        session = await gl.connect(_config(server.url, recorder))
        telemetry.instrument(session)
        try:
            record = await server.wait_for_setup()
            assert record.headers["authorization"] == f"Bearer {BEARER}"
            # The server echoes every credential back in its close reason.
            await server.close(1008, f"rejected {BEARER} {CUSTOM} {COOKIE}")
            with pytest.raises(errors.PolicyViolation) as raised:
                async with asyncio.timeout(5):
                    async for _ in session:
                        pass
        finally:
            async with asyncio.timeout(5):
                await session.close()
            recorder.close()
    error = session.error
    assert error is not None
    assert raised.value is error
    shown = [str(error), repr(error), getattr(error, "reason", ""), caplog.text]
    shown.append(cassette.read_text(encoding="utf-8"))
    finished = spans.get_finished_spans()
    assert any(span.status.status_code is StatusCode.ERROR for span in finished)
    for span in finished:
        shown.append(str(span.status.description))
        shown.append(repr(dict(span.attributes or {})))
        shown.extend(repr(dict(e.attributes or {})) for e in span.events)
    for text in shown:
        for secret in (BEARER, CUSTOM, COOKIE):
            assert secret not in text
    assert "rejected *** *** ***" in str(error)
    # A header that is not a credential is left alone.
    assert redact("unit-test-harness") == "unit-test-harness"


async def test_the_recording_proxy_redacts_what_the_client_sent(tmp_path: Path) -> None:
    """The proxy may run in another process than the app: it registers what it forwards."""
    cassette = tmp_path / "proxy.jsonl"
    api_key = "plain-api-key-not-AIza-shaped-42"
    headers = {"Authorization": f"Bearer {BEARER}", "x-goog-api-key": api_key}
    async with (
        FakeLiveServer() as upstream,
        RecordingProxy(cassette, upstream=upstream.base_url) as proxy,
        asyncio.timeout(10),
        ws_connect(proxy.url, additional_headers=headers) as ws,
    ):
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
        await ws.recv()  # setupComplete
        await upstream.close(1008, f"bad {api_key} {BEARER}")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        # The client got the echo (the proxy forwards it); the cassette must not.
        assert ws.close_reason is not None and BEARER in ws.close_reason
    text = cassette.read_text(encoding="utf-8")
    assert '"event":"close"' in text
    assert BEARER not in text
    assert api_key not in text


def test_which_headers_count_as_credentials() -> None:
    for name in (
        "Authorization",
        "Proxy-Authorization",
        "x-goog-api-key",
        "X-Api-Key",
        "Cookie",
        "X-Session-Token",
        "X-Client-Secret",
        "X-Signature",
    ):
        assert is_credential_header(name), name
    for name in ("User-Agent", "Content-Type", "x-goog-user-project", "Accept-Language"):
        assert not is_credential_header(name), name


def test_header_parts_are_registered_but_not_scheme_words(
    fresh_registry: SecretRegistry,
) -> None:
    n = register_header_secrets(
        [("Authorization", "Basic dXNlcjpwYXNzd29yZA=="), ("Cookie", "a=1; sid=abcdef123456")]
    )
    assert n >= 3
    assert redact("Basic auth failed for dXNlcjpwYXNzd29yZA==") == "Basic auth failed for ***"
    assert redact("session abcdef123456 expired") == "session *** expired"
    assert redact("a=1") == "a=1"  # too short to register on its own
    assert "Basic" not in fresh_registry
