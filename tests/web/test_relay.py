"""The browser relay against FakeLiveServer, driven by a scripted WebSocket client."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import gemini_live as gl
from gemini_live.testing import FakeLiveServer
from gemini_live.types import UNSET, ServerContent, ServerMessage
from gemini_live.web import ConnectionInfo, Relay, RelayLimits, RelayRejected, running
from gemini_live.web._app import create_app

from .conftest import ANYONE, fake_config, frames, served_relay, silence, speech


def _origin(url: str) -> str:
    return url.replace("ws://", "http://").rsplit("/", 1)[0]


@asynccontextmanager
async def client(url: str, **kw: Any) -> AsyncIterator[ClientConnection]:
    kw.setdefault("origin", _origin(url))
    async with connect(url, **kw) as ws:
        yield ws


class Inbox:
    """Everything the relay sent to one browser connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.json: list[dict[str, Any]] = []
        self.audio = bytearray()

    def types(self) -> list[str]:
        return [m["type"] for m in self.json]

    async def until(self, pred: Callable[[Inbox], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not pred(self):
                msg = await self.ws.recv()
                if isinstance(msg, bytes):
                    self.audio += msg
                else:
                    self.json.append(json.loads(msg))

    async def until_type(self, kind: str, within: float = 10.0) -> dict[str, Any]:
        await self.until(lambda b: kind in b.types(), within)
        return next(m for m in self.json if m["type"] == kind)


async def close_of(ws: ClientConnection, within: float = 10.0) -> tuple[int, str]:
    async with asyncio.timeout(within):
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


async def open_session(ws: ClientConnection, box: Inbox | None = None) -> Inbox:
    """Wait for ``ready``, then open the upstream session with a first text turn."""
    if box is None:
        box = Inbox(ws)
        await box.until_type("ready")
    await ws.send(json.dumps({"type": "text", "text": "hello"}))
    await box.until_type("turn_complete")
    return box


async def send_utterance(ws: ClientConnection, speech_ms: int = 600) -> None:
    pcm = silence(300) + speech(speech_ms) + silence(800)
    for f in frames(pcm):
        await ws.send(f)


async def test_vad_mode_brackets_speech_with_activity_and_pre_roll() -> None:
    async with FakeLiveServer(reply_chunks=5) as server:
        relay = Relay(fake_config(server), authorize=ANYONE)
        async with served_relay(relay) as url, client(url) as ws:
            box = Inbox(ws)
            ready = await box.until_type("ready")
            assert ready["turn_detection"] == "vad"
            assert (ready["input_rate"], ready["output_rate"]) == (16000, 24000)
            await send_utterance(ws)
            await box.until_type("turn_complete")
            assert box.types().index("vad") < box.types().index("input_transcript")
            assert len(box.audio) == 5 * 40 * 48  # five 40 ms chunks at 24 kHz
            out = "".join(m["text"] for m in box.json if m["type"] == "output_transcript")
            assert out.startswith("I heard ")
            setup = server.connections[0].setup
            assert setup is not None and setup.realtime_input_config is not UNSET
            aad = setup.realtime_input_config.automatic_activity_detection
            assert aad is not UNSET and aad.disabled is True
            kinds = [
                "start"
                if m.realtime_input is not UNSET and m.realtime_input.activity_start is not UNSET
                else "end"
                if m.realtime_input is not UNSET and m.realtime_input.activity_end is not UNSET
                else "audio"
                if m.realtime_input is not UNSET and m.realtime_input.audio is not UNSET
                else "other"
                for m in server.received[0]
            ]
            assert kinds[0] == "other"  # the setup
            assert kinds[1] == "start" and kinds[-1] == "end"
            assert set(kinds[2:-1]) == {"audio"}
            heard_ms = len(server.connections[0].audio) / 32
            # The whole 600 ms burst, its pre-roll (300 ms max) and the 600 ms hangover.
            assert 600 + 600 <= heard_ms <= 300 + 600 + 800
            info = relay.connections[1]
            assert info.utterances == 1 and info.turns == 1
            assert info.audio_in_bytes == len(silence(300) + speech(600) + silence(800))
        await relay.wait_until(lambda: relay.stats.active == 0)
        assert relay.finished[-1].close is not None


async def test_server_mode_streams_everything_and_audio_end_closes_the_turn() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE, turn_detection="server")
        async with served_relay(relay) as url, client(url) as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            pcm = silence(100) + speech(300)
            for f in frames(pcm):
                await ws.send(f)
            await ws.send(json.dumps({"type": "audio_end"}))
            await box.until_type("turn_complete")
            assert len(server.connections[0].audio) == len(pcm)
            setup = server.connections[0].setup
            assert setup is not None and setup.realtime_input_config is UNSET
            last = server.received[0][-1].realtime_input
            assert last is not UNSET and last.audio_stream_end is True


async def test_server_mode_with_stream_end_on_silence() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(
            fake_config(server),
            authorize=ANYONE,
            turn_detection="server",
            stream_end_on_silence=True,
        )
        async with served_relay(relay) as url, client(url) as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            await send_utterance(ws)
            await box.until_type("turn_complete")
            ends = [
                m
                for m in server.received[0]
                if m.realtime_input is not UNSET and m.realtime_input.audio_stream_end is True
            ]
            assert len(ends) == 1


async def test_manual_push_to_talk() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE, turn_detection="manual")
        async with served_relay(relay) as url, client(url) as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            await ws.send(silence(40))  # released: not forwarded
            await ws.send(json.dumps({"type": "activity_start"}))
            await ws.send(speech(200))
            await ws.send(json.dumps({"type": "activity_end"}))
            await box.until_type("turn_complete")
            assert len(server.connections[0].audio) == len(speech(200))
            assert relay.connections[1].audio_not_forwarded_bytes == len(silence(40))


async def test_text_round_trip_and_ping() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE)
        async with served_relay(relay) as url, client(url) as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            await ws.send(json.dumps({"type": "ping", "id": 7}))
            assert (await box.until_type("pong"))["id"] == 7
            await ws.send(json.dumps({"type": "text", "text": "hi there"}))
            await box.until_type("turn_complete")
            out = "".join(m["text"] for m in box.json if m["type"] == "output_transcript")
            assert out == "You said: hi there"


async def test_interrupted_and_playback_reports() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE)
        async with served_relay(relay) as url, client(url) as ws:
            box = await open_session(ws)
            await server.send(ServerMessage(server_content=ServerContent(interrupted=True)))
            await box.until_type("interrupted")
            await ws.send(json.dumps({"type": "playback", "state": "stopped", "played_ms": 80}))
            info = relay.connections[1]
            await relay.wait_until(lambda: len(info.playback) == 1)
            assert info.playback[0].state == "stopped" and info.playback[0].played_ms == 80
            assert info.interruptions == 1


async def test_go_away_never_reaches_the_browser() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE)
        async with served_relay(relay) as url, client(url) as ws:
            box = await open_session(ws)
            await server.send_go_away(time_left=0.5)
            await server.wait_for_connections(2)
            await server.wait_for_setup(1)
            await ws.send(json.dumps({"type": "text", "text": "still there?"}))
            await box.until(lambda b: b.types().count("turn_complete") == 2)
            assert "error" not in box.types()
            out = "".join(m["text"] for m in box.json if m["type"] == "output_transcript")
            assert out == "You said: helloYou said: still there?"


# -- security and limits -----------------------------------------------------------------


async def test_origin_check() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE)
        async with served_relay(relay) as url:
            async with client(url, origin="https://evil.example") as ws:
                assert await close_of(ws) == (4403, "origin not allowed")
            async with connect(url) as ws:  # no Origin header: not a browser
                assert await close_of(ws) == (4403, "origin not allowed")
        assert relay.stats.rejected == 2 and not server.connections
        open_relay = Relay(
            fake_config(server),
            authorize=ANYONE,
            allowed_origins=["https://app.example"],
            allow_no_origin=True,
        )
        async with served_relay(open_relay) as url:
            for origin in ("https://app.example", None):
                async with client(url, origin=origin) as ws:
                    await Inbox(ws).until_type("ready")


async def test_authorize_hook() -> None:
    seen: list[ConnectionInfo] = []

    def authorize(conn: ConnectionInfo) -> object:
        seen.append(conn)
        if conn.query.get("ticket") == "good":
            return {"user": "ada"}
        if conn.query.get("ticket") == "banned":
            raise RelayRejected("account suspended", code=4403)
        return None

    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=authorize)
        async with served_relay(relay) as url:
            async with client(url + "?ticket=bad") as ws:
                assert await close_of(ws) == (4401, "unauthorized")
            async with client(url + "?ticket=banned") as ws:
                assert await close_of(ws) == (4403, "account suspended")
            async with client(url + "?ticket=good") as ws:
                box = Inbox(ws)
                await box.until_type("ready")
                assert relay.connections[3].identity == {"user": "ada"}
                assert not server.connections  # no upstream before the first action
                await open_session(ws, box)
        assert len(server.connections) == 1


async def test_connection_limit() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE, limits=RelayLimits(max_connections=1))
        async with served_relay(relay) as url, client(url) as first:
            await Inbox(first).until_type("ready")
            async with client(url) as second:
                assert await close_of(second) == (1013, "server busy: too many connections")
        await relay.wait_until(lambda: relay.stats.active == 0)
        assert relay.stats.peak_active == 1


@pytest.mark.parametrize(
    ("payload", "code", "reason"),
    [
        (b"\x01\x02\x03", 1003, "audio must be 16-bit PCM (odd byte count)"),
        (b"", 1003, "empty audio message"),
        # The library's server refuses it at the frame, before buffering it whole.
        (bytes(70_000), 1009, "frame with 70000 bytes exceeds limit of 65536 bytes"),
        ("not json", 1003, "bad message: not JSON"),
        ('{"type": "launch"}', 1003, "bad message: Invalid value 'launch' - at `$.type`"),
        ('{"type": "text"}', 1003, "bad message: Object missing required field `text`"),
        ('{"type": "text", "text": "  "}', 1003, "bad message: empty text"),
        ('{"type": "activity_start"}', 1003, "activity_start/activity_end need turn_detection"),
    ],
)
async def test_bad_input_closes_with_a_reason_and_the_server_survives(
    payload: bytes | str, code: int, reason: str
) -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE)
        async with served_relay(relay) as url:
            async with client(url) as ws:
                await Inbox(ws).until_type("ready")
                await ws.send(payload)
                got = await close_of(ws)
                assert got[0] == code and got[1].startswith(reason), got
            async with client(url) as ws:  # the next browser is served as usual
                box = Inbox(ws)
                await box.until_type("ready")
                await ws.send(json.dumps({"type": "text", "text": "ok"}))
                await box.until_type("turn_complete")
        await server.wait_for_close(0)


async def test_rate_limits() -> None:
    async with FakeLiveServer() as server:
        limits = RelayLimits(messages_per_second=1, message_burst=3)
        relay = Relay(fake_config(server), authorize=ANYONE, turn_detection="server", limits=limits)
        async with served_relay(relay) as url, client(url) as ws:
            await Inbox(ws).until_type("ready")
            for _ in range(10):
                await ws.send(silence(20))
            assert await close_of(ws) == (4429, "rate limit: too many messages")
        limits = RelayLimits(
            audio_bytes_per_second=1000, audio_burst_bytes=2000, audio_excess_close_bytes=1000
        )
        relay = Relay(fake_config(server), authorize=ANYONE, turn_detection="server", limits=limits)
        async with served_relay(relay) as url, client(url) as ws:
            await Inbox(ws).until_type("ready")
            for _ in range(5):
                await ws.send(silence(20))
            assert await close_of(ws) == (4429, "rate limit: audio faster than real time")


async def test_upstream_failures_close_with_a_reason_without_secrets() -> None:
    async with FakeLiveServer(require_api_key="right") as server:
        secret = "AIzaWRONG-secret-key"

        def config(_c: ConnectionInfo) -> gl.SessionConfig:
            return gl.build_config(url=server.url, api_key=secret)

        relay = Relay(config, authorize=ANYONE)
        async with served_relay(relay) as url, client(url) as ws:
            await ws.send(json.dumps({"type": "text", "text": "hello"}))
            code, reason = await close_of(ws, within=20)
            assert code == 4502 and reason.startswith("upstream connect failed"), reason
            assert secret not in reason
    async with FakeLiveServer() as server:
        # The upstream closing mid-session (a fatal close: no reconnect) closes the browser.
        relay = Relay(fake_config(server), authorize=ANYONE, turn_detection="server")
        async with served_relay(relay) as url, client(url) as ws:
            await open_session(ws)
            await server.close(1008, "Requested entity was not found.")
            code, reason = await close_of(ws, within=20)
            assert code == 4502 and "upstream closed" in reason


async def test_config_hook_errors_close_1011_and_rejections_are_forwarded() -> None:
    def broken(_c: ConnectionInfo) -> gl.SessionConfig:
        raise RuntimeError("boom")

    def reject(_c: ConnectionInfo) -> gl.SessionConfig:
        raise RelayRejected("no model for you", code=4403)

    for hook, expected in (
        (broken, (1011, "internal error")),
        (reject, (4403, "no model for you")),
    ):
        relay = Relay(hook, authorize=ANYONE)
        async with served_relay(relay) as url, client(url) as ws:
            await ws.send(json.dumps({"type": "text", "text": "hello"}))
            assert await close_of(ws) == expected


async def test_http_request_to_the_relay_gets_426_and_the_page_is_served() -> None:
    import urllib.request

    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE)
        async with running(create_app(relay, relay_path="/voice")) as base:

            def get(path: str) -> tuple[int, dict[str, str], bytes]:
                try:
                    with urllib.request.urlopen(base + path, timeout=5) as r:
                        return r.status, dict(r.headers), r.read()
                except urllib.error.HTTPError as e:
                    return e.code, dict(e.headers), e.read()

            status, headers, body = await asyncio.to_thread(get, "/")
            assert status == 200 and b'content="/voice"' in body
            assert "default-src 'self'" in headers["content-security-policy"]
            for name in ("app.js", "mic-worklet.js", "page.css"):
                status, _, body = await asyncio.to_thread(get, f"/static/{name}")
                assert status == 200 and body
            assert (await asyncio.to_thread(get, "/static/../secret"))[0] == 404
            assert (await asyncio.to_thread(get, "/voice"))[0] == 426
            status, _, body = await asyncio.to_thread(get, "/healthz")
            assert status == 200 and json.loads(body)["ok"] is True


async def test_a_browser_vanishing_mid_reply_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    async with FakeLiveServer(reply_chunks=300) as server:
        relay = Relay(fake_config(server), authorize=ANYONE)
        async with served_relay(relay) as url:
            async with client(url) as ws:
                box = Inbox(ws)
                await box.until_type("ready")
                await ws.send(json.dumps({"type": "text", "text": "talk a lot"}))
                await box.until(lambda b: len(b.audio) > 0)
                ws.transport.abort()  # no close frame: the tab crashed
            await relay.wait_until(lambda: relay.stats.active == 0)
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
            async with client(url) as ws:  # business as usual
                await Inbox(ws).until_type("ready")
        await server.wait_for_close(0)


async def test_idle_timeout() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE, limits=RelayLimits(idle_timeout=0.3))
        async with served_relay(relay) as url, client(url) as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            await ws.send(json.dumps({"type": "ping"}))
            await box.until_type("pong")
            assert await close_of(ws) == (1008, "idle timeout")
