"""The bridges check the carrier: Twilio's request signature, Telnyx's per-call stream token.

Signatures are computed here the way Twilio documents it (base64 of HMAC-SHA1 keyed with
the auth token over the full URL, then each POST field as name + value sorted by name),
independently of the code under test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import gemini_live as gl
from gemini_live.errors import ConfigError
from gemini_live.telephony import (
    CallInfo,
    StreamTokens,
    TelnyxBridge,
    TwilioBridge,
    twilio_signature,
    twilio_signature_valid,
    verify_telnyx_webhook,
)
from gemini_live.testing import FakeLiveServer
from gemini_live.web import running

AUTH_TOKEN = "12345678901234567890123456789012"  # a test auth token
SECRET = "stream-secret-for-tests-0123456789abcdef"
STREAM = "MZ00000000000000000000000000000001"


def twilio_sign(url: str, params: dict[str, str] | None = None) -> str:
    data = url + "".join(k + v for k, v in sorted((params or {}).items()))
    digest = hmac.new(AUTH_TOKEN.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def fake_config(server: FakeLiveServer) -> Any:
    def config(_call: CallInfo) -> gl.SessionConfig:
        return gl.build_config(url=server.url)

    return config


def start_message(call_id: str = "CA0001", *, telnyx: bool = False) -> str:
    if telnyx:
        return json.dumps(
            {
                "event": "start",
                "stream_id": STREAM,
                "start": {
                    "call_control_id": call_id,
                    "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
                },
            }
        )
    return json.dumps(
        {
            "event": "start",
            "streamSid": STREAM,
            "start": {
                "streamSid": STREAM,
                "callSid": call_id,
                "accountSid": "AC0001",
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


# -- the algorithms -----------------------------------------------------------------------


def test_twilio_signature_is_twilios_algorithm() -> None:
    url = "https://voice.example.test/twiml?x=1&y=two"
    params = {"CallSid": "CA123", "From": "+15550100", "AccountSid": "AC1"}
    assert twilio_signature(AUTH_TOKEN, url) == twilio_sign(url)
    assert twilio_signature(AUTH_TOKEN, url, params) == twilio_sign(url, params)
    # Several values of one field each count, sorted.
    multi = twilio_signature(AUTH_TOKEN, url, {"a": ["2", "1"]})
    assert multi == twilio_sign(url + "a1a2")
    assert twilio_signature_valid(AUTH_TOKEN, url, twilio_sign(url, params), params)
    assert not twilio_signature_valid(AUTH_TOKEN, url, twilio_sign(url), params)
    assert not twilio_signature_valid("another-token", url, twilio_sign(url))
    assert not twilio_signature_valid(AUTH_TOKEN, url, None)
    assert not twilio_signature_valid(AUTH_TOKEN, url, "")
    assert not twilio_signature_valid(AUTH_TOKEN, url, "ünïcode")


def test_the_default_port_may_be_written_out_or_not() -> None:
    assert twilio_signature_valid(AUTH_TOKEN, "wss://h.test/x", twilio_sign("wss://h.test:443/x"))
    assert twilio_signature_valid(AUTH_TOKEN, "wss://h.test:443/x", twilio_sign("wss://h.test/x"))
    assert twilio_signature_valid(AUTH_TOKEN, "ws://h.test/x", twilio_sign("ws://h.test:80/x"))
    # Another port is another URL.
    assert not twilio_signature_valid(
        AUTH_TOKEN, "wss://h.test/x", twilio_sign("wss://h.test:8443/x")
    )


def test_stream_tokens_are_signed_bound_expiring_and_single_use() -> None:
    tokens = StreamTokens(SECRET, ttl=60, max_used=3)
    now = 1_800_000_000.0
    token = tokens.issue("v3:call-1", now=now)
    assert SECRET not in token and SECRET not in repr(tokens)
    assert tokens.call_id(token) == "v3:call-1"
    assert tokens.verify(token, now=now + 1) == "v3:call-1"
    assert tokens.verify(token, now=now + 2) is None  # used once
    # Expired.
    late = tokens.issue("v3:call-2", now=now)
    assert tokens.verify(late, now=now + 61) is None
    # Tampered: another call id, a later expiry, another MAC, another secret.
    body, _, mac = tokens.issue("v3:call-3", now=now).rpartition(".")
    call_b64, expires, nonce = body.split(".")
    other = base64.urlsafe_b64encode(b"v3:call-4").rstrip(b"=").decode()
    assert tokens.verify(f"{other}.{expires}.{nonce}.{mac}", now=now) is None
    assert tokens.verify(f"{call_b64}.{int(expires) + 3600}.{nonce}.{mac}", now=now) is None
    assert tokens.verify(f"{body}.{mac[:-2]}AA", now=now) is None
    assert StreamTokens("x" * 40).verify(f"{body}.{mac}", now=now) is None
    for junk in ("", "a.b", "...", "a.b.c.d", "é.1.2.3", "x" * 5000, None):
        assert tokens.verify(junk, now=now) is None
    # The used-token memory is bounded.
    for i in range(10):
        assert tokens.verify(tokens.issue(f"c{i}", now=now), now=now) == f"c{i}"
    assert len(tokens._used) <= 3


def test_stream_tokens_need_a_real_secret() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        StreamTokens("demo-token")
    with pytest.raises(ConfigError):
        StreamTokens(SECRET, ttl=0)
    url = StreamTokens(SECRET).stream_url("wss://voice.example.test/telnyx?a=1", "call-9")
    assert url.startswith("wss://voice.example.test/telnyx?a=1&stream_token=")


def test_telnyx_webhook_signature_ed25519() -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    public = base64.b64encode(
        private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    ).decode()
    body = b'{"data": {"event_type": "call.initiated", "payload": {"call_control_id": "v3:x"}}}'
    stamp = "1800000000"
    signature = base64.b64encode(private.sign(stamp.encode() + b"|" + body)).decode()
    headers = {"Telnyx-Signature-Ed25519": signature, "Telnyx-Timestamp": stamp}
    now = 1_800_000_010.0
    assert verify_telnyx_webhook(public, headers, body, now=now)
    assert not verify_telnyx_webhook(public, headers, body + b" ", now=now)
    assert not verify_telnyx_webhook(
        public, {**headers, "Telnyx-Timestamp": "1800000001"}, body, now=now
    )
    assert not verify_telnyx_webhook(public, headers, body, now=now + 3600)  # a replay
    assert not verify_telnyx_webhook(public, {}, body, now=now)
    with pytest.raises(ConfigError):
        verify_telnyx_webhook("not-base64!", headers, body, now=now)


# -- TwilioBridge ---------------------------------------------------------------------------


def test_twilio_bridge_refuses_to_start_without_the_auth_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = fake_config(FakeLiveServer())
    with pytest.raises(ConfigError, match="auth_token="):
        TwilioBridge(config)
    with pytest.raises(ConfigError, match="auth_token"):
        TwilioBridge(config, auth_token="  ")
    with pytest.raises(ConfigError, match="public_url"):
        TwilioBridge(config, auth_token=AUTH_TOKEN, public_url="voice.example.test/twilio")
    with pytest.raises(ConfigError, match="contradicts"):
        TwilioBridge(config, auth_token=AUTH_TOKEN, insecure_no_signature=True)
    with caplog.at_level(logging.WARNING, logger="gemini_live.telephony"):
        TwilioBridge(config, insecure_no_signature=True)
    assert "insecure_no_signature=True" in caplog.text
    bridge = TwilioBridge(config, auth_token=AUTH_TOKEN)
    assert AUTH_TOKEN not in repr(bridge)


async def _refused(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    with pytest.raises(InvalidStatus) as info:
        async with asyncio.timeout(10), connect(url, additional_headers=headers):
            pass
    return info.value.response.status_code, bytes(info.value.response.body or b"")


async def test_a_forged_twilio_signature_is_refused_before_anything_opens() -> None:
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(fake_config(server), auth_token=AUTH_TOKEN)
        app = Starlette(routes=[WebSocketRoute("/twilio", bridge)])
        async with running(app) as base:
            url = base.replace("http", "ws") + "/twilio"
            forged = twilio_sign(url).replace(twilio_sign(url)[:4], "AAAA")
            assert await _refused(url, {"X-Twilio-Signature": forged}) == (
                403,
                b"invalid X-Twilio-Signature",
            )
            assert await _refused(url, {}) == (403, b"missing X-Twilio-Signature")
            # Signed with another account's token, or for another URL.
            other = base64.b64encode(
                hmac.new(b"other", url.encode(), hashlib.sha1).digest()
            ).decode()
            assert (await _refused(url, {"X-Twilio-Signature": other}))[0] == 403
            wrong_path = twilio_sign(url.replace("/twilio", "/other"))
            assert (await _refused(url, {"X-Twilio-Signature": wrong_path}))[0] == 403
            assert bridge.refused == 4
            assert not bridge.calls and not bridge.finished
        assert not server.connections  # nothing upstream was opened


async def test_a_valid_twilio_signature_opens_the_call() -> None:
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(fake_config(server), auth_token=AUTH_TOKEN)
        app = Starlette(routes=[WebSocketRoute("/twilio", bridge)])
        async with running(app) as base:
            url = base.replace("http", "ws") + "/twilio"
            headers = {"X-Twilio-Signature": twilio_sign(url)}
            async with asyncio.timeout(10), connect(url, additional_headers=headers) as ws:
                await ws.send(start_message())
                await server.wait_for_setup(0)
                await ws.send(json.dumps({"event": "stop", "streamSid": STREAM}))
            await bridge.wait_until(lambda: len(bridge.finished) == 1)
            assert bridge.refused == 0
            assert bridge.finished[0].call_sid == "CA0001"


async def test_behind_a_proxy_the_public_url_is_what_twilio_signed() -> None:
    public = "wss://voice.example.test/twilio"
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(fake_config(server), auth_token=AUTH_TOKEN, public_url=public)
        app = Starlette(routes=[WebSocketRoute("/twilio", bridge)])
        async with running(app) as base:
            url = base.replace("http", "ws") + "/twilio"
            # The URL the proxy forwarded to is not what Twilio signed.
            assert (await _refused(url, {"X-Twilio-Signature": twilio_sign(url)}))[0] == 403
            headers = {"X-Twilio-Signature": twilio_sign(public)}
            async with asyncio.timeout(10), connect(url, additional_headers=headers) as ws:
                await ws.send(start_message())
                await server.wait_for_setup(0)
            # A query string Twilio requested is part of what it signed.
            signed = twilio_sign(public + "?tenant=7")
            async with (
                asyncio.timeout(10),
                connect(url + "?tenant=7", additional_headers={"X-Twilio-Signature": signed}) as ws,
            ):
                await ws.send(start_message())
                await server.wait_for_setup(1)
            assert (await _refused(url + "?tenant=8", {"X-Twilio-Signature": signed}))[0] == 403


# -- TelnyxBridge ---------------------------------------------------------------------------


def test_telnyx_bridge_refuses_to_start_without_stream_tokens() -> None:
    config = fake_config(FakeLiveServer())
    with pytest.raises(ConfigError, match="stream_tokens="):
        TelnyxBridge(config)
    with pytest.raises(ConfigError, match="not auth_token"):
        TelnyxBridge(config, auth_token=AUTH_TOKEN)
    with pytest.raises(ConfigError, match="not stream_tokens"):
        TwilioBridge(config, stream_tokens=StreamTokens(SECRET))
    TelnyxBridge(config, stream_tokens=StreamTokens(SECRET))


async def test_telnyx_streams_need_a_fresh_token_for_their_own_call() -> None:
    tokens = StreamTokens(SECRET, ttl=60)
    async with FakeLiveServer() as server:
        bridge = TelnyxBridge(fake_config(server), stream_tokens=tokens)
        app = Starlette(routes=[WebSocketRoute("/telnyx", bridge)])
        async with running(app) as base:
            ws_base = base.replace("http", "ws") + "/telnyx"
            # No token, a forged one, an expired one.
            assert (await _refused(ws_base, {}))[0] == 403
            forged = tokens.issue("v3:call-1")[:-3] + "AAA"
            assert (await _refused(f"{ws_base}?stream_token={forged}", {}))[0] == 403
            expired = tokens.stream_url(ws_base, "v3:call-1", now=time.time() - 120)
            assert await _refused(expired, {}) == (
                403,
                b"missing, invalid, expired or used stream token",
            )
            assert bridge.refused == 3 and not server.connections
            # A genuine token for this call opens it, once.
            url = tokens.stream_url(ws_base, "v3:call-1")
            async with asyncio.timeout(10), connect(url) as ws:
                await ws.send(start_message("v3:call-1", telnyx=True))
                await server.wait_for_setup(0)
                assert (await _refused(url, {}))[0] == 403  # replayed
                await ws.send(json.dumps({"event": "stop", "stream_id": STREAM}))
            await bridge.wait_until(lambda: len(bridge.finished) == 1)
            assert bridge.finished[0].identity == "v3:call-1"
            # A genuine token issued for another call: hung up once the start names the call.
            other = tokens.stream_url(ws_base, "v3:call-2")
            async with asyncio.timeout(10), connect(other) as ws:
                await ws.send(start_message("v3:call-1", telnyx=True))
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 4401
            assert len(server.connections) == 1


def test_the_phone_example_has_no_default_secret() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "voice" / "twilio_bridge.py"
    env = {k: v for k, v in os.environ.items() if k not in ("TWILIO_AUTH_TOKEN", "GEMINI_API_KEY")}
    r = subprocess.run(
        [sys.executable, str(example), "--serve"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert r.returncode == 1
    assert "--serve needs TWILIO_AUTH_TOKEN" in r.stderr
    source = example.read_text(encoding="utf-8")
    assert "0.0.0.0" not in source.replace("[--host 0.0.0.0]", "")
    assert '"127.0.0.1"' in source
