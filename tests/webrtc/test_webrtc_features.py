"""What the WebSocket relay has, over WebRTC: the conversation store (rejoin bound to the
identity), tools, the per-address limit, the maximum age, the drain."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import gemini_live as gl
from gemini_live.errors import ConfigError
from gemini_live.store import MemoryStore
from gemini_live.testing import FakeLiveServer, ToolScript
from gemini_live.tools import ToolRegistry
from gemini_live.web import ConnectionInfo, Relay, RelayLimits, create_app, running
from gemini_live.webrtc import WebRTCRelay
from web.conftest import speech

from .conftest import Peer, make_offer, peer, post


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def _by_user(conn: ConnectionInfo) -> str | None:
    return conn.query.get("user")  # the test's stand-in for a signed session cookie


async def _say(p: Peer, text: str) -> str:
    start = len(p.messages)
    p.send({"type": "text", "text": text})
    await p.wait_for(lambda: any(m["type"] == "turn_complete" for m in p.messages[start:]))
    return "".join(m["text"] for m in p.messages[start:] if m["type"] == "output_transcript")


@pytest.mark.timeout(120)
async def test_rejoin_by_conversation_id_bound_to_the_identity() -> None:
    store = MemoryStore()
    async with FakeLiveServer() as server:
        relay = Relay(
            lambda conn: gl.build_config(url=server.url, output_audio_transcription=True),
            authorize=_by_user,
            store=store,
        )
        async with running(create_app(relay, webrtc=True)) as base:
            async with peer(base, query="?user=ada") as p:
                await p.wait_for(lambda: "ready" in p.types())
                cid = p.messages[0]["conversation"]
                assert "You said: my name is Ada" in await _say(p, "my name is Ada")
            await relay.wait_until(lambda: relay.stats.active == 0)
            async with peer(base, query=f"?user=ada&conversation={cid}") as p:
                await p.wait_for(lambda: "ready" in p.types())
                assert p.messages[0]["conversation"] == cid
                assert "my name is Ada" in await _say(p, "what did I say")
                states = [m for m in p.messages if m["type"] == "state"]
                assert any(s.get("from_store") for s in states), states
            await relay.wait_until(lambda: relay.stats.active == 0)
            # Another identity with the same id gets a conversation of its own.
            async with peer(base, query=f"?user=eve&conversation={cid}") as p:
                await p.wait_for(lambda: "ready" in p.types())
                assert "Ada" not in await _say(p, "what did I say")


@pytest.mark.timeout(120)
async def test_tools_run_on_the_server_and_the_page_is_told() -> None:
    registry = ToolRegistry()
    calls: list[str] = []

    @registry.tool
    async def get_weather(city: str) -> dict[str, Any]:
        """Weather for a city."""
        calls.append(city)
        return {"city": city, "temperature_c": 15}

    triggers = {"weather": ToolScript("get_weather", {"city": "Paris"})}
    async with FakeLiveServer(tool_triggers=triggers) as server:
        runners: list[Any] = []
        relay = Relay(
            lambda conn: gl.build_config(url=server.url, tools=registry),
            authorize=Relay.ALLOW_ANYONE,
            # The relay's hook for tools: the session answers calls from the registry.
            on_session=lambda session, conn: runners.append(session.run_tools(registry)),
        )
        async with running(create_app(relay, webrtc=True)) as base:
            async with peer(base) as p:
                await p.wait_for(lambda: "ready" in p.types())
                p.send({"type": "text", "text": "what's the weather?"})
                await p.wait_for(lambda: p.types().count("turn_complete") >= 1, within=30)
                assert {"type": "tool_call", "names": ["get_weather"]} in p.messages
                assert calls == ["Paris"]
            for runner in runners:
                await asyncio.wait_for(runner.aclose(), 10)


@pytest.mark.timeout(120)
async def test_per_address_limit_refuses_the_offer_before_any_peer_connection() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(
            lambda conn: gl.build_config(url=server.url),
            authorize=Relay.ALLOW_ANYONE,
            limits=RelayLimits(max_connections_per_address=1),
        )
        rtc = WebRTCRelay(relay)
        async with running(create_app(relay, webrtc=rtc)) as base, peer(base) as p:
            await p.wait_for(lambda: "ready" in p.types())
            pc, _ = await make_offer()
            try:
                status, body = await post(
                    base + "/live/webrtc/offer",
                    _json({"type": "offer", "sdp": pc.localDescription.sdp}),
                )
            finally:
                await pc.close()
            assert (status, body["code"]) == (429, 4429), body
            assert body["error"] == "too many connections from this address"
            assert rtc.stats.active == 1 and len(rtc.peers) == 1


@pytest.mark.timeout(120)
async def test_maximum_age_closes_the_peer_with_its_reason() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(
            lambda conn: gl.build_config(url=server.url),
            authorize=Relay.ALLOW_ANYONE,
            limits=RelayLimits(max_age=2.0),
        )
        rtc = WebRTCRelay(relay)
        async with running(create_app(relay, webrtc=rtc)) as base:
            async with peer(base, speech(200)) as p:
                await p.wait_for(lambda: "close" in p.types(), within=20)
                close = p.messages[-1]
                assert (close["code"], close["reason"]) == (1008, "maximum connection age reached")
                await p.wait_for(lambda: p.pc.connectionState == "closed", within=20)
            await relay.wait_until(lambda: rtc.running == 0 and rtc.stats.active == 0)


@pytest.mark.timeout(120)
async def test_drain_moves_webrtc_pages_too() -> None:
    store = MemoryStore()
    async with FakeLiveServer() as server:
        relay = Relay(
            lambda conn: gl.build_config(url=server.url),
            authorize=Relay.ALLOW_ANYONE,
            store=store,
        )
        rtc = WebRTCRelay(relay)
        async with running(create_app(relay, webrtc=rtc)) as base:
            async with peer(base) as p:
                await p.wait_for(lambda: "ready" in p.types())
                await _say(p, "hello")
                moved = await asyncio.wait_for(relay.drain(within=5.0), 30)
                assert moved == 1
                await p.wait_for(lambda: "close" in p.types())
                assert p.messages[-1]["code"] == 4012
            await relay.wait_until(lambda: rtc.running == 0)


def test_turn_credentials_stay_out_of_reprs() -> None:
    relay = Relay(lambda conn: gl.build_config(api_key="k"), authorize=Relay.ALLOW_ANYONE)
    turn = {"urls": "turn:turn.example:3478", "username": "u", "credential": "s3cret-pw"}
    rtc = WebRTCRelay(relay, ice_servers=[turn, "stun:stun.example:3478"])
    assert repr(rtc) == "<WebRTCRelay ice_servers=2 active=0>"
    assert "s3cret" not in repr(rtc.stats) and "s3cret" not in str(rtc)


@pytest.mark.parametrize(
    "bad",
    [
        {"ice_servers": "stun:stun.example"},
        {"ice_servers": [{"url": "stun:x"}]},
        {"ice_servers": [3]},
        {"max_offer_bytes": 0},
        {"connect_timeout": 0},
        {"outbound_buffer_seconds": -1},
        {"jitter_ms": -1},
        {"jitter_ms": 501},
        {"jitter_ms": "40"},
        {"jitter_ms": True},
        {"jitter_ms": float("nan")},
    ],
)
def test_bad_settings_are_refused(bad: dict[str, Any]) -> None:
    relay = Relay(lambda conn: gl.build_config(api_key="k"), authorize=Relay.ALLOW_ANYONE)
    with pytest.raises(ConfigError):
        WebRTCRelay(relay, **bad)


def test_create_app_takes_only_a_webrtc_relay_of_its_own_relay() -> None:
    def config(conn: ConnectionInfo) -> gl.SessionConfig:
        return gl.build_config(api_key="k")

    relay = Relay(config, authorize=Relay.ALLOW_ANYONE)
    other = WebRTCRelay(Relay(config, authorize=Relay.ALLOW_ANYONE))
    with pytest.raises(ConfigError, match="WebRTCRelay of this relay"):
        create_app(relay, webrtc=other)


@pytest.mark.timeout(120)
async def test_stopping_the_server_closes_the_peers_with_1012() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(lambda conn: gl.build_config(url=server.url), authorize=Relay.ALLOW_ANYONE)
        rtc = WebRTCRelay(relay)
        app = create_app(relay, webrtc=rtc)
        serving = running(app)
        base = await serving.__aenter__()
        try:
            async with peer(base) as p:
                await p.wait_for(lambda: "ready" in p.types())
                # The server stops while the page is connected (its peer outlives HTTP).
                await serving.__aexit__(None, None, None)
                base = ""
                assert rtc.running == 0 and not rtc.peers
                await p.wait_for(lambda: "close" in p.types())
                assert p.messages[-1] == {
                    "type": "close",
                    "code": 1012,
                    "reason": "service restart",
                }
        finally:
            if base:
                await serving.__aexit__(None, None, None)
