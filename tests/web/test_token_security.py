"""The token endpoint mints only what the app allows, for whom the app allows.

Most cases drive the ASGI endpoint directly (the client address is whatever the scope
says, as behind a proxy); minting goes to a local fake token service.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from gemini_live import types as T
from gemini_live.errors import ConfigError
from gemini_live.web import TokenEndpoint, TokenRequest

KEY = "AIzaSyTOKEN-SECURITY-TEST-KEY-0123456"
SETUP = T.Setup(model="models/gemini-3.8-live")


class _TokenService(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        out = json.dumps({"name": f"auth_tokens/t{len(self.bodies)}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def token_service() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    handler: type[_TokenService] = type("Handler", (_TokenService,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def post(
    endpoint: TokenEndpoint,
    *,
    client: str = "203.0.113.7",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One POST through the ASGI interface."""
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": "/token",
        "headers": [(b"host", b"app.example"), (b"origin", b"https://app.example"), *raw],
        "client": (client, 50000),
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg: MutableMapping[str, Any]) -> None:
        sent.append(msg)

    async with asyncio.timeout(10):
        await endpoint(scope, receive, send)
    return int(sent[0]["status"]), json.loads(sent[1]["body"])


def test_an_endpoint_without_an_identity_check_refuses_to_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ConfigError, match="authorize="):
        TokenEndpoint(KEY, setup=SETUP)
    with pytest.raises(ConfigError, match="setup="):
        TokenEndpoint(KEY, authorize=lambda r: "u")
    with pytest.raises(ConfigError, match="uses"):
        TokenEndpoint(KEY, authorize=lambda r: "u", setup=SETUP, uses=0)
    with pytest.raises(ConfigError):
        TokenEndpoint(KEY, authorize=lambda r: "u", setup=SETUP, new_session_seconds=3600)
    with pytest.raises(ConfigError, match="trusted_proxies"):
        TokenEndpoint(KEY, authorize=lambda r: "u", setup=SETUP, trusted_proxies=["proxy"])
    with pytest.raises(ConfigError, match="contradicts"):
        TokenEndpoint(KEY, authorize=lambda r: "u", setup=SETUP, insecure_no_authorize=True)
    with caplog.at_level(logging.WARNING, logger="gemini_live.web"):
        TokenEndpoint(KEY, setup=SETUP, insecure_no_authorize=True)
    assert "insecure_no_authorize=True" in caplog.text


async def test_a_token_is_locked_to_the_servers_setup_single_use_and_short() -> None:
    setup = T.Setup(
        model="models/gemini-3.8-live",
        system_instruction=T.Content.text("You take bakery orders."),
        session_resumption=T.SessionResumptionConfig(),
        input_audio_transcription=T.AudioTranscriptionConfig(),
    )
    with token_service() as (base, bodies):
        endpoint = TokenEndpoint(KEY, authorize=lambda r: "user-1", setup=setup, base_url=base)
        before = datetime.datetime.now(datetime.UTC)
        status, answer = await post(endpoint)
        assert status == 200 and answer["token"] == "auth_tokens/t1"
    (body,) = bodies
    assert body["uses"] == 1
    sent = body["bidiGenerateContentSetup"]
    assert sent["model"] == "models/gemini-3.8-live"
    assert sent["systemInstruction"]["parts"][0]["text"] == "You take bakery orders."
    assert "sessionResumption" not in sent  # the client's resume handle must get through
    mask = body["fieldMask"].split(",")
    # Locked even when the server's setup leaves them out: no client-chosen tools or config.
    for name in ("model", "systemInstruction", "tools", "generationConfig"):
        assert name in mask
    assert "inputAudioTranscription" in mask and "sessionResumption" not in mask

    def seconds(stamp: str) -> float:
        when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        return (when - before).total_seconds()

    assert 55 <= seconds(body["newSessionExpireTime"]) <= 65
    assert 590 <= seconds(body["expireTime"]) <= 610


async def test_a_setup_hook_that_returns_nothing_mints_nothing() -> None:
    with token_service() as (base, bodies):
        endpoint = TokenEndpoint(KEY, authorize=lambda r: "u", setup=lambda r: None, base_url=base)
        assert await post(endpoint) == (500, {"error": "no setup to lock the token to"})
        assert bodies == [] and endpoint.minted == 0


async def test_the_rate_table_is_a_bounded_lru() -> None:
    endpoint = TokenEndpoint(
        KEY, authorize=lambda r: None, setup=SETUP, max_per_minute=2, max_clients=1000
    )
    for i in range(5000):
        status, _ = await post(endpoint, client=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        assert status == 401
        assert len(endpoint._recent) <= 1000
    # A client seen recently is remembered: its limit holds while others come and go.
    hot = "198.51.100.1"
    assert (await post(endpoint, client=hot))[0] == 401
    for i in range(999):
        await post(
            endpoint, client=f"192.0.2.{i % 250}" if i < 250 else f"10.9.{i // 256}.{i % 256}"
        )
        if i % 100 == 0:
            assert (await post(endpoint, client=hot))[0] in (401, 429)
    assert (await post(endpoint, client=hot))[0] == 429


async def test_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    seen: list[str | None] = []

    def authorize(req: TokenRequest) -> object:
        seen.append(req.address)
        return None

    # No trusted proxy: X-Forwarded-For is the client's own writing and is ignored, so
    # rotating it does not escape the per-address limit.
    endpoint = TokenEndpoint(KEY, authorize=authorize, setup=SETUP, max_per_minute=3)
    for i in range(3):
        assert (await post(endpoint, headers={"X-Forwarded-For": f"1.1.1.{i}"}))[0] == 401
    assert (await post(endpoint, headers={"X-Forwarded-For": "1.1.1.9"}))[0] == 429
    assert seen == ["203.0.113.7"] * 3

    # Behind a trusted proxy: the right-most address the proxies did not write.
    seen.clear()
    endpoint = TokenEndpoint(
        KEY, authorize=authorize, setup=SETUP, trusted_proxies=["10.0.0.0/8", "::1"]
    )
    await post(endpoint, client="10.0.0.5", headers={"X-Forwarded-For": "198.51.100.9"})
    await post(
        endpoint, client="10.0.0.5", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.9, 10.0.0.4"}
    )
    await post(endpoint, client="::1", headers={"X-Forwarded-For": "2001:db8::1"})
    # A peer that is not a trusted proxy cannot claim another address.
    await post(endpoint, client="203.0.113.7", headers={"X-Forwarded-For": "198.51.100.9"})
    await post(endpoint, client="10.0.0.5")  # no header: the proxy itself
    assert seen == ["198.51.100.9", "198.51.100.9", "2001:db8::1", "203.0.113.7", "10.0.0.5"]


async def test_a_token_request_repr_shows_no_credentials() -> None:
    reprs: list[str] = []

    def authorize(req: TokenRequest) -> object:
        reprs.append(repr(req))
        return None

    endpoint = TokenEndpoint(KEY, authorize=authorize, setup=SETUP)
    await post(
        endpoint,
        headers={
            "Cookie": "session=COOKIE-SECRET",
            "Authorization": "Bearer BEARER-SECRET",
            "X-Api-Key": "HEADER-SECRET",
            "Referer": "https://app.example/call?access_token=QUERY-SECRET",
        },
    )
    (text,) = reprs
    for secret in ("COOKIE-SECRET", "BEARER-SECRET", "HEADER-SECRET", "QUERY-SECRET"):
        assert secret not in text
    assert "https://app.example/call" in text and "203.0.113.7" in text
