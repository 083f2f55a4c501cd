"""The relay is closed by default, opens upstream late, and bounds every connection.

Each test here failed on the relay before the shared peer lifecycle: an open relay by
default, an upstream session per bare socket, limits per process only, an unbounded
playback list, reprs with credentials, and a close that waited forever on a browser
that stopped reading.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import socket
import struct

import pytest

from gemini_live.errors import ConfigError
from gemini_live.testing import FakeLiveServer
from gemini_live.web import (
    AccessToken,
    ConnectionInfo,
    Relay,
    RelayLimits,
    create_app,
    running,
)

from .conftest import ANYONE, fake_config, frames, served_relay, silence
from .test_relay import Inbox, client, close_of, open_session

# -- nobody gets in unasked ----------------------------------------------------------------


def test_a_relay_without_an_identity_check_refuses_to_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = fake_config(FakeLiveServer())
    with pytest.raises(ConfigError, match="authorize"):
        Relay(config)
    with pytest.raises(ConfigError, match="authorize"):
        Relay(config, authorize="yes")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="gemini_live.web"):
        relay = Relay(config, authorize=Relay.ALLOW_ANYONE)
    warnings = [r for r in caplog.records if "ALLOW_ANYONE" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert repr(Relay.ALLOW_ANYONE) == "Relay.ALLOW_ANYONE"
    assert relay.turn_detection == "vad"


SECRET = b"server-side signing key"


def issue_token(user: str) -> str:
    """What the app's login hands the browser: the user and an HMAC over it."""
    sig = hmac.new(SECRET, user.encode(), hashlib.sha256).hexdigest()
    return f"{user}.{sig}"


def check_bearer(conn: ConnectionInfo) -> str | None:
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    user, _, sig = token.rpartition(".")
    good = hmac.new(SECRET, user.encode(), hashlib.sha256).hexdigest()
    if scheme.lower() != "bearer" or not user or not hmac.compare_digest(sig, good):
        return None
    return user


async def test_a_script_that_forges_origin_is_stopped_by_the_identity_check() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=check_bearer)
        async with served_relay(relay) as url:
            # A non-browser client sets Origin to anything: the origin check passes...
            async with client(url, additional_headers={"Authorization": "Bearer ada.forged"}) as ws:
                assert await close_of(ws) == (4401, "unauthorized")
            async with client(url + "?user=ada") as ws:  # a client-written field proves nothing
                assert await close_of(ws) == (4401, "unauthorized")
            good = {"Authorization": f"Bearer {issue_token('ada')}"}
            async with client(url, additional_headers=good) as ws:
                await open_session(ws)
                assert relay.connections[3].identity == "ada"
        assert relay.stats.rejected == 2 and len(server.connections) == 1


async def test_the_upstream_opens_only_after_authorization_and_the_first_action() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=check_bearer)
        async with served_relay(relay) as url:
            for _ in range(5):  # sockets that never authorize cost no upstream session
                async with client(url) as ws:
                    await close_of(ws)
            good = {"Authorization": f"Bearer {issue_token('ada')}"}
            async with client(url, additional_headers=good) as ws:
                box = Inbox(ws)
                ready = await box.until_type("ready")
                assert ready["session_id"] is None
                await ws.send(json.dumps({"type": "ping", "id": 1}))
                await box.until_type("pong")
                await ws.send(json.dumps({"type": "playback", "state": "drained"}))
                await ws.send(json.dumps({"type": "audio_end"}))
                await ws.send(json.dumps({"type": "ping", "id": 2}))
                await box.until(lambda b: b.types().count("pong") == 2)
                assert not server.connections  # pings and reports are not user actions
                await ws.send(silence(20))  # the first audio is
                state = await box.until_type("state")
                assert state["state"] == "open" and state["session_id"]
                await server.wait_for_setup(0)
                assert len(server.connections) == 1


# -- limits per address, identity and connection ----------------------------------------------


async def test_connections_per_address_and_per_identity() -> None:
    async with FakeLiveServer() as server:
        limits = RelayLimits(max_connections_per_address=2)
        relay = Relay(fake_config(server), authorize=ANYONE, limits=limits)
        async with served_relay(relay) as url, client(url) as a, client(url) as b:
            await Inbox(a).until_type("ready")
            await Inbox(b).until_type("ready")
            async with client(url) as c:
                assert await close_of(c) == (4429, "too many connections from this address")
        await relay.wait_until(lambda: relay.stats.active == 0)
        assert not relay._per_address.counts  # the map empties with the connections

        limits = RelayLimits(max_connections_per_identity=1)
        relay = Relay(fake_config(server), authorize=check_bearer, limits=limits)
        ada = {"Authorization": f"Bearer {issue_token('ada')}"}
        bob = {"Authorization": f"Bearer {issue_token('bob')}"}
        async with served_relay(relay) as url, client(url, additional_headers=ada) as a:
            await Inbox(a).until_type("ready")
            async with client(url, additional_headers=ada) as again:
                assert await close_of(again) == (4429, "too many connections for this identity")
            async with client(url, additional_headers=bob) as other:
                await Inbox(other).until_type("ready")
        await relay.wait_until(lambda: relay.stats.active == 0)
        assert not relay._per_identity.counts


async def test_user_turns_per_minute() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE, limits=RelayLimits(turns_per_minute=3))
        async with served_relay(relay) as url, client(url) as ws:
            await Inbox(ws).until_type("ready")
            for i in range(10):
                await ws.send(json.dumps({"type": "text", "text": f"turn {i}"}))
            assert await close_of(ws) == (4429, "rate limit: too many turns")
        info = relay.finished[-1]
        assert info.user_turns == 4  # three allowed, the fourth closed it


async def test_audio_faster_than_real_time_is_dropped_and_counted_then_closed() -> None:
    async with FakeLiveServer() as server:
        # Only drop: 10 s of audio sent at once; what passes is the 2 s burst (plus the
        # little the bucket refills while it arrives).
        limits = RelayLimits(audio_excess_close_bytes=None)
        relay = Relay(fake_config(server), authorize=ANYONE, turn_detection="server", limits=limits)
        async with served_relay(relay) as url, client(url) as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            for f in frames(silence(10_000), ms=100):
                await ws.send(f)
            await ws.send(json.dumps({"type": "ping"}))
            await box.until_type("pong")
            info = relay.connections[1]
            assert info.audio_in_bytes == 320_000
            assert info.audio_dropped_bytes >= 320_000 - 2 * 64_000
            assert relay.stats.audio_dropped_bytes == info.audio_dropped_bytes
            await server.wait_until(
                lambda: len(server.connections[0].audio) == 320_000 - info.audio_dropped_bytes
            )
        # Default: a flood that persists closes the connection.
        relay = Relay(fake_config(server), authorize=ANYONE, turn_detection="server")
        async with served_relay(relay) as url, client(url) as ws:
            await Inbox(ws).until_type("ready")
            with pytest.raises(Exception):  # noqa: B017 - the relay may close mid-send
                for f in frames(silence(600_000), ms=100):  # 600 s of audio
                    await ws.send(f)
            assert ws.close_code == 4429
            assert ws.close_reason == "rate limit: audio faster than real time"
        info = relay.finished[-1]
        assert info.audio_in_bytes < 10 * 32_000  # closed within a few seconds' worth


async def test_a_client_that_pings_every_half_idle_period_still_hits_the_max_age() -> None:
    async with FakeLiveServer() as server:
        limits = RelayLimits(idle_timeout=2.0, max_age=3.0)
        relay = Relay(fake_config(server), authorize=ANYONE, limits=limits)
        async with served_relay(relay) as url, client(url) as ws:
            await Inbox(ws).until_type("ready")
            loop = asyncio.get_running_loop()
            opened = loop.time()

            async def keep_pinging() -> None:
                while True:
                    await ws.send(json.dumps({"type": "ping"}))
                    await asyncio.sleep(1.0)  # pacing: half the idle period

            pinger = asyncio.create_task(keep_pinging())
            try:
                async with asyncio.timeout(10):
                    await ws.wait_closed()
            finally:
                pinger.cancel()
                await asyncio.gather(pinger, return_exceptions=True)
            assert ws.close_code == 1008
            assert ws.close_reason == "maximum connection age reached"
            assert loop.time() - opened >= 2.9


async def test_playback_reports_are_running_totals_and_a_bounded_recent_list() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE)
        async with served_relay(relay) as url, client(url) as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            for i in range(300):
                state = "playing" if i % 2 == 0 else "drained"
                await ws.send(json.dumps({"type": "playback", "state": state, "played_ms": 10}))
            await ws.send(json.dumps({"type": "ping"}))
            await box.until_type("pong")
            info = relay.connections[1]
            assert info.playback_reports == 300
            assert len(info.playback) == 16
            assert info.played_ms_total == 150 * 10  # drained replies only
            assert info.last_playback is not None and info.last_playback.state == "drained"


def test_connection_info_repr_masks_credentials() -> None:
    info = ConnectionInfo(
        id=1,
        path="/live",
        headers={
            "cookie": "session=COOKIE-SECRET",
            "authorization": "Bearer AUTH-SECRET",
            "x-goog-api-key": "AIza-KEY-SECRET",
            "x-custom-token": "HEADER-TOKEN-SECRET",
            "user-agent": "test-agent",
        },
        query={"token": "QUERY-SECRET", "access_token": "QUERY2-SECRET", "lang": "en"},
        client=("127.0.0.1", 5000),
        origin="http://127.0.0.1",
    )
    text = repr(info)
    for secret in ("COOKIE", "AUTH-SECRET", "KEY-SECRET", "HEADER-TOKEN", "QUERY"):
        assert secret not in text, text
    assert "test-agent" in text and "'lang': 'en'" in text
    assert info.headers["cookie"] == "session=COOKIE-SECRET"  # the hooks see the real values
    assert "sixteen" not in repr(AccessToken("a-token-of-sixteen-or-more"))


# -- every close bounded, even against a browser that stopped reading -----------------------


def _masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _upgrade(host: str, path: str = "/live") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: http://{host}\r\n\r\n"
    ).encode()


@pytest.mark.timeout(60)
async def test_a_browser_that_stops_reading_is_closed_in_bounded_time_and_cleaned_up() -> None:
    # 4,000 chunks of 40 ms: 15 MiB of reply audio, more than the socket buffers hold.
    async with FakeLiveServer(reply_chunks=4000) as server:
        limits = RelayLimits(idle_timeout=3.0, close_timeout=0.3)
        relay = Relay(fake_config(server), authorize=ANYONE, limits=limits)
        async with running(create_app(relay)) as base:
            host = base.removeprefix("http://")
            ip, port = host.rsplit(":", 1)
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.setblocking(False)
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(5):
                    await loop.sock_connect(raw, (ip, int(port)))
                    await loop.sock_sendall(raw, _upgrade(host))
                    await relay.wait_until(lambda: relay.stats.accepted == 1)
                    text = json.dumps({"type": "text", "text": "talk a lot"}).encode()
                    await loop.sock_sendall(raw, _masked_frame(text))
                # The client never reads: the reply backs up, the idle timer fires, the
                # close frame cannot be sent; the relay gives up on it and cleans up.
                await relay.wait_until(lambda: relay.stats.active == 0, within=20)
                await server.wait_for_close(0)  # the upstream session was closed
                info = relay.finished[-1]
                assert info.close == (1008, "idle timeout")
                assert relay.stats.aborted == 1 and not relay.connections
                assert info.audio_out_bytes < 4000 * 1920
            finally:
                raw.close()


async def test_half_sent_upgrades_are_cut_within_the_handshake_timeout() -> None:
    async with FakeLiveServer() as server:
        limits = RelayLimits(handshake_timeout=0.5)
        relay = Relay(fake_config(server), authorize=ANYONE, limits=limits)
        async with running(create_app(relay)) as base:
            host = base.removeprefix("http://")
            ip, port = host.rsplit(":", 1)
            loop = asyncio.get_running_loop()
            socks = []
            try:
                for _ in range(50):
                    s = socket.socket()
                    s.setblocking(False)
                    await loop.sock_connect(s, (ip, int(port)))
                    await loop.sock_sendall(s, _upgrade(host)[:60])  # half a request
                    socks.append(s)
                started = loop.time()
                async with asyncio.timeout(10):
                    for s in socks:
                        assert await loop.sock_recv(s, 1024) == b""  # closed by the server
                assert loop.time() - started < 5
                # A complete upgrade is served as usual.
                async with client(base.replace("http", "ws") + "/live") as ws:
                    await Inbox(ws).until_type("ready")
            finally:
                for s in socks:
                    s.close()


async def test_the_library_server_is_sized_from_the_relay_limits() -> None:
    from gemini_live.web import _app

    relay = Relay(
        fake_config(FakeLiveServer()),
        authorize=ANYONE,
        limits=RelayLimits(max_message_bytes=4096, max_connections=7),
    )
    server = _app._uvicorn_server(create_app(relay), "127.0.0.1", 0, "warning")
    assert server.config.ws_max_size == 4096
    assert server.config.limit_concurrency == 7 + 32
    async with FakeLiveServer() as fake:
        relay = Relay(
            fake_config(fake), authorize=ANYONE, limits=RelayLimits(max_message_bytes=4096)
        )
        async with served_relay(relay) as url, client(url) as ws:
            await Inbox(ws).until_type("ready")
            await ws.send(bytes(8192))
            code, reason = await close_of(ws)
            assert code == 1009 and "exceeds limit of 4096 bytes" in reason
        # Under a server that buffers more (one you run yourself), the relay's own check.
        app = create_app(relay)
        bigger = RelayLimits(max_message_bytes=1 << 20)
        async with (
            running(app, limits=bigger) as base,
            client(base.replace("http", "ws") + "/live") as ws,
        ):
            await Inbox(ws).until_type("ready")
            await ws.send(bytes(8192))
            assert await close_of(ws) == (1009, "message too big: 8192 bytes > 4096")


@pytest.mark.parametrize(
    "bad",
    [
        {"max_age": 0},
        {"idle_timeout": -1.0},
        {"close_timeout": 0},
        {"turns_per_minute": 0},
        {"max_connections_per_address": 0},
        {"audio_bytes_per_second": 0},
        {"handshake_timeout": True},
    ],
)
def test_bad_relay_limits_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        RelayLimits(**bad)  # type: ignore[arg-type]


def test_access_token_is_random_long_and_hidden() -> None:
    a, b = AccessToken(), AccessToken()
    assert a.value != b.value and len(a.value) >= 32
    assert a.value not in repr(a)
    assert a.url("http://127.0.0.1:8000") == f"http://127.0.0.1:8000/?token={a.value}"
    assert a.check({}, {"token": a.value}) and not a.check({}, {"token": b.value})
    cookie = {"host": "127.0.0.1:8000", "cookie": f"other=1; gemini_live_token_8000={a.value}"}
    assert a.check(cookie, {})
    assert not a.check({**cookie, "host": "127.0.0.1:9000"}, {})  # one cookie per port
    with pytest.raises(ConfigError):
        AccessToken("short")
