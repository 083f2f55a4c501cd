"""Phone calls get the relay's limits: age, idle, audio at most ~1.2x real time, calls per
address, a bounded DTMF log, a bounded close and masked reprs.

Each failed on the bridge before the shared peer lifecycle (a fake call forwarded 600 s of
audio in 4.4 s, a silent call was never ended, ``dtmf`` kept every digit, and ``close``
waited forever on a send the carrier never took).
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gemini_live._asgi import Message
from gemini_live.errors import ConfigError
from gemini_live.telephony import CallInfo, TwilioBridge
from gemini_live.testing import FakeLiveServer
from gemini_live.web import running

from .test_twilio import STREAM, Twilio, call, fake_config

SILENT_FRAME = base64.b64encode(b"\xff" * 160).decode()  # 20 ms of mu-law silence


async def _closed(tw: Twilio, pump: asyncio.Task[None], within: float = 10.0) -> tuple[int, str]:
    async with asyncio.timeout(within):
        await pump
    assert tw.ws.close_code is not None
    return tw.ws.close_code, tw.ws.close_reason or ""


async def test_inbound_audio_faster_than_real_time_is_dropped_then_the_call_closed() -> None:
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(
            fake_config(server), insecure_no_signature=True, turn_detection="server"
        )
        async with call(bridge) as (tw, pump):
            await tw.start()
            await bridge.wait_until(lambda: any(c.session_id for c in bridge.calls.values()))
            info = next(iter(bridge.calls.values()))
            with pytest.raises(ConnectionClosed):
                for _ in range(30_000):  # 600 s of audio, as fast as the socket takes it
                    await tw.send("media", media={"track": "inbound", "payload": SILENT_FRAME})
            assert await _closed(tw, pump) == (4429, "rate limit: audio faster than real time")
        await bridge.wait_until(lambda: len(bridge.finished) == 1)
        assert info.media_dropped_bytes >= 3 * 8000  # the burst's worth was dropped
        forwarded_s = len(server.connections[0].audio) / 32_000  # 16 kHz PCM16
        assert forwarded_s < 10, forwarded_s  # not 600 s


async def test_a_silent_call_ends_at_the_idle_timeout() -> None:
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(fake_config(server), insecure_no_signature=True, idle_timeout=0.5)
        async with call(bridge) as (tw, pump):
            await tw.start()

            async def silence() -> None:
                while True:  # Twilio streams frames even when nobody speaks
                    await tw.send("media", media={"track": "inbound", "payload": SILENT_FRAME})
                    await asyncio.sleep(0.02)  # pacing: real time

            talker = asyncio.create_task(silence())
            try:
                assert await _closed(tw, pump) == (1008, "idle timeout")
            finally:
                talker.cancel()
                await asyncio.gather(talker, return_exceptions=True)
        await bridge.wait_until(lambda: len(bridge.finished) == 1)
        await server.wait_for_close(0)


async def test_max_call_age() -> None:
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(
            fake_config(server), insecure_no_signature=True, idle_timeout=None, max_call_seconds=0.5
        )
        async with call(bridge) as (tw, pump):
            await tw.start()
            assert await _closed(tw, pump) == (1008, "maximum connection age reached")
        await bridge.wait_until(lambda: len(bridge.finished) == 1)


async def test_calls_per_address() -> None:
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(
            fake_config(server), insecure_no_signature=True, max_calls_per_address=1
        )
        app = Starlette(routes=[WebSocketRoute("/twilio", bridge)])
        async with running(app) as base:
            url = base.replace("http", "ws") + "/twilio"
            async with connect(url) as first:
                await Twilio(first).start()
                await bridge.wait_until(lambda: len(bridge.calls) == 1)
                async with connect(url) as second:
                    async with asyncio.timeout(10):
                        with pytest.raises(ConnectionClosed):
                            while True:
                                await second.recv()
                    assert second.close_code == 1013
                    assert second.close_reason == "too many calls from this address"
        await bridge.wait_until(lambda: not bridge.calls)
        assert not bridge._per_address.counts


async def test_dtmf_keeps_a_bounded_tail_and_a_count() -> None:
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(fake_config(server), insecure_no_signature=True)
        async with call(bridge) as (tw, _pump):
            await tw.start()
            await bridge.wait_until(lambda: any(c.session_id for c in bridge.calls.values()))
            info = next(iter(bridge.calls.values()))
            for i in range(2000):
                await tw.send("dtmf", dtmf={"track": "inbound_track", "digit": str(i % 10)})
            await bridge.wait_until(lambda: info.dtmf_count == 2000)
            assert len(info.dtmf) == 64
            assert info.dtmf[-1] == "9" and info.dtmf[0] == str((2000 - 64) % 10)


def test_call_info_repr_masks_credentials() -> None:
    info = CallInfo(
        id=1,
        headers={"x-twilio-signature": "SIG-SECRET", "cookie": "c=COOKIE-SECRET", "host": "h"},
        query={"token": "QUERY-SECRET"},
        custom_parameters={"auth_token": "PARAM-SECRET", "caller": "+15550100"},
    )
    text = repr(info)
    assert "SECRET" not in text, text
    assert "+15550100" in text and "'host': 'h'" in text


def test_bad_limits_are_refused() -> None:
    for kwargs in ({"max_audio_speed": 0}, {"idle_timeout": -1}, {"close_timeout": 0}):
        with pytest.raises(ConfigError):
            TwilioBridge(lambda c: None, insecure_no_signature=True, **kwargs)  # type: ignore[arg-type, return-value]


async def test_a_carrier_that_stops_reading_cannot_pin_the_call() -> None:
    """A close frame the server never takes (backpressure) is given up after
    ``close_timeout``; the call is unregistered and its session closed all the same."""
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(
            fake_config(server), insecure_no_signature=True, idle_timeout=0.3, close_timeout=0.2
        )
        start = {
            "event": "start",
            "streamSid": STREAM,
            "start": {
                "streamSid": STREAM,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
        inbox: list[Message] = [
            {"type": "websocket.connect"},
            {"type": "websocket.receive", "text": json.dumps(start)},
        ]
        never = asyncio.Event()
        sent: list[str] = []

        async def receive() -> Message:
            if inbox:
                return inbox.pop(0)
            await never.wait()  # the carrier sends nothing more
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message["type"])
            if message["type"] != "websocket.accept":
                await never.wait()  # the transport's buffer never drains

        scope: dict[str, Any] = {
            "type": "websocket",
            "path": "/twilio",
            "headers": [],
            "query_string": b"",
            "client": ("127.0.0.1", 5000),
        }
        async with asyncio.timeout(10):
            await bridge(scope, receive, send)
        assert sent[-1] == "websocket.close"
        info = bridge.finished[-1]
        assert info.close == (1008, "idle timeout")
        assert not bridge.calls and not bridge._per_address.counts
        await server.wait_for_close(0)


def test_telephony_imports_nothing_from_web() -> None:
    import ast
    import inspect

    import gemini_live.config
    import gemini_live.web
    from gemini_live.telephony import _twilio

    tree = ast.parse(inspect.getsource(_twilio))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not {m for m in imported if m.startswith("gemini_live.web")}, imported
    assert "gemini_live._bridge" in imported  # the shared lifecycle
    # The helper moved to config and stays importable from web.
    assert gemini_live.web.with_client_activity is gemini_live.config.with_client_activity
