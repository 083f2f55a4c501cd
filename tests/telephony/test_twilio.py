"""The Twilio bridge, driven by a scripted Media Streams client against FakeLiveServer."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import math
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import gemini_live as gl
from gemini_live.audio import pcm16_to_ulaw, resample
from gemini_live.telephony import CallInfo, TwilioBridge
from gemini_live.testing import FakeLiveServer
from gemini_live.types import UNSET, ServerContent, ServerMessage
from gemini_live.web import running


def speech(ms: int, rate: int = 16000, freq: float = 180.0, amp: float = 0.3) -> bytes:
    """A voiced-sounding burst (the fake server does no speech recognition)."""
    n = rate * ms // 1000
    out = bytearray()
    for i in range(n):
        t = i / rate
        v = sum(math.sin(2 * math.pi * freq * k * t) / k for k in (1, 2, 3, 4))
        out += struct.pack("<h", int(max(-1.0, min(1.0, amp * v / 1.5)) * 32767))
    return bytes(out)


def silence(ms: int, rate: int = 16000) -> bytes:
    return bytes(rate * ms // 1000 * 2)


STREAM = "MZ00000000000000000000000000000001"


def ulaw_speech() -> bytes:
    pcm16k = silence(300) + speech(600) + silence(800)
    return pcm16_to_ulaw(resample(pcm16k, 16000, 8000))


class Twilio:
    """A scripted Twilio Media Streams peer: Twilio's message shapes, marks echoed on play."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seq = 0
        self.media: list[tuple[float, bytes]] = []
        self.marks: list[str] = []
        self.events: list[str] = []
        self.echo_marks = True

    async def send(self, event: str, **body: Any) -> None:
        self.seq += 1
        msg = {"event": event, "sequenceNumber": str(self.seq), "streamSid": STREAM, **body}
        await self.ws.send(json.dumps(msg))

    async def start(self, **params: str) -> None:
        await self.ws.send(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        await self.send(
            "start",
            start={
                "accountSid": "AC0001",
                "streamSid": STREAM,
                "callSid": "CA0001",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": params,
            },
        )

    async def speak(self, ulaw: bytes) -> None:
        for i in range(0, len(ulaw), 160):
            await self.send(
                "media",
                media={
                    "track": "inbound",
                    "chunk": str(i // 160 + 1),
                    "timestamp": str(i // 8),
                    "payload": base64.b64encode(ulaw[i : i + 160]).decode(),
                },
            )

    async def pump(self) -> None:
        try:
            await self._pump()
        except ConnectionClosed:
            pass

    async def _pump(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            assert msg["streamSid"] == STREAM
            self.events.append(msg["event"])
            if msg["event"] == "media":
                self.media.append((time.monotonic(), base64.b64decode(msg["media"]["payload"])))
            elif msg["event"] == "mark":
                self.marks.append(msg["mark"]["name"])
                if self.echo_marks:  # everything before it has been played
                    await self.send("mark", mark={"name": msg["mark"]["name"]})


def fake_config(server: FakeLiveServer) -> Any:
    def config(_call: CallInfo) -> gl.SessionConfig:
        return gl.build_config(url=server.url, output_audio_transcription=True)

    return config


@asynccontextmanager
async def call(bridge: TwilioBridge) -> AsyncIterator[tuple[Twilio, asyncio.Task[None]]]:
    app = Starlette(routes=[WebSocketRoute("/twilio", bridge)])
    async with running(app) as base, connect(base.replace("http", "ws") + "/twilio") as ws:
        peer = Twilio(ws)
        pump = asyncio.create_task(peer.pump())
        try:
            yield peer, pump
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)


async def test_a_call_turn_paced_frames_marks_dtmf_barge_in_and_stop() -> None:
    digits: list[str] = []
    stopped: list[CallInfo] = []
    async with FakeLiveServer(reply_chunks=10) as server:
        bridge = TwilioBridge(
            fake_config(server),
            insecure_no_signature=True,  # tests/telephony/test_signature.py checks carriers
            on_dtmf=lambda c, d, s: digits.append(d),
            on_stop=stopped.append,
            media_ms=20,  # one 20 ms frame per message (the default before 100)
        )
        async with call(bridge) as (tw, pump):
            await tw.start(caller="+15550100")
            await bridge.wait_until(lambda: any(c.session_id for c in bridge.calls.values()))
            info = next(iter(bridge.calls.values()))
            assert (info.stream_sid, info.call_sid) == (STREAM, "CA0001")
            assert info.custom_parameters == {"caller": "+15550100"}
            # Turn 1: the VAD brackets the utterance; the reply comes back paced.
            await tw.speak(ulaw_speech())
            await bridge.wait_until(lambda: info.heard_ms.get(1) == 400)  # 10 x 40 ms
            assert info.sent_ms[1] == 400 and info.utterances == 1
            heard = len(server.connections[0].audio) / 16  # 8 kHz PCM16 (the default upstream)
            assert 600 <= heard <= 300 + 600 + 800
            setup = server.connections[0].setup
            assert setup is not None and setup.realtime_input_config is not UNSET
            frames = tw.media[:20]
            assert len(frames) == 20 and all(len(f) == 160 for _, f in frames)
            t0 = frames[0][0]
            for i, (t, _) in enumerate(frames):
                # Never more than the 60 ms lead ahead of real time.
                assert t - t0 >= i * 0.020 - 0.060 - 0.010, (i, t - t0)
            assert tw.marks[-1].startswith("r1-")
            # DTMF goes to the app.
            await tw.send("dtmf", dtmf={"track": "inbound_track", "digit": "5"})
            await bridge.wait_until(lambda: info.dtmf == ["5"])
            assert digits == ["5"]
            # Turn 2 with a long reply, cut by the caller: clear, and heard < sent in full.
            server.options = dataclasses.replace(server.options, reply_chunks=100)  # 4 s
            n1 = len(tw.media)
            await tw.speak(ulaw_speech())
            await bridge.wait_until(lambda: info.sent_ms.get(2, 0) >= 200)
            await server.send(ServerMessage(server_content=ServerContent(interrupted=True)))
            await bridge.wait_until(lambda: info.clears == 1)
            media_at_clear = len(tw.media)
            await tw.send("stop", stop={"accountSid": "AC0001", "callSid": "CA0001"})
            async with asyncio.timeout(10):
                await pump  # the bridge hangs up
            assert "clear" in tw.events
            await bridge.wait_until(lambda: len(bridge.finished) == 1)
            assert info.close == (1000, "call ended") and info.stopped
            assert stopped == [info]
            assert info.interruptions == 1
            assert 200 <= info.sent_ms[2] < 4000 and info.heard_ms[2] <= info.sent_ms[2]
            assert media_at_clear - n1 < 200
            assert len(tw.media) - media_at_clear <= 1  # at most the frame already in flight
        await server.wait_for_close(0)


@pytest.mark.parametrize(
    ("script", "code", "reason"),
    [
        (["not json"], 1003, "bad message"),
        ([b"\x00\x01"], 1003, "expected JSON text messages"),
        (['{"event": "media", "media": {"payload": ""}}'], 1008, "expected a start message"),
        (
            [
                json.dumps(
                    {
                        "event": "start",
                        "streamSid": STREAM,
                        "start": {
                            "streamSid": STREAM,
                            "mediaFormat": {
                                "encoding": "audio/l16",
                                "sampleRate": 16000,
                                "channels": 1,
                            },
                        },
                    }
                )
            ],
            1003,
            "unsupported media format audio/l16 16000 Hz x1",
        ),
    ],
)
async def test_bad_streams_are_closed_with_a_reason(
    script: list[str | bytes], code: int, reason: str
) -> None:
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(fake_config(server), insecure_no_signature=True)
        app = Starlette(routes=[WebSocketRoute("/twilio", bridge)])
        async with running(app) as base, connect(base.replace("http", "ws") + "/twilio") as ws:
            for msg in script:
                await ws.send(msg)
            async with asyncio.timeout(10):
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.recv()
            assert ws.close_code == code
            assert (ws.close_reason or "").startswith(reason), ws.close_reason
        assert not server.connections


async def test_authorize_hook_sees_custom_parameters() -> None:
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(
            fake_config(server),
            insecure_no_signature=True,
            authorize=lambda c: c.custom_parameters.get("token") == "s3cret" or None,
        )
        async with call(bridge) as (tw, pump):
            await tw.start(token="wrong")
            async with asyncio.timeout(10):
                await pump
            assert tw.ws.close_code == 4401
        async with call(bridge) as (tw, _pump):
            await tw.start(token="s3cret")
            await server.wait_for_setup(0)


async def test_telnyx_dialect_with_a_law() -> None:
    from gemini_live.audio import alaw_to_pcm16, pcm16_to_alaw
    from gemini_live.telephony import TelnyxBridge

    async with FakeLiveServer(reply_chunks=5) as server:
        # One 20 ms frame per message (the default before media_ms=100): the frames below.
        bridge = TelnyxBridge(fake_config(server), insecure_no_signature=True, media_ms=20)
        app = Starlette(routes=[WebSocketRoute("/telnyx", bridge)])
        sid = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
        async with running(app) as base, connect(base.replace("http", "ws") + "/telnyx") as ws:
            await ws.send(json.dumps({"event": "connected", "version": "1.0.0"}))
            await ws.send(
                json.dumps(
                    {
                        "event": "start",
                        "sequence_number": "1",
                        "stream_id": sid,
                        "start": {
                            "call_control_id": "v3:call-1",
                            "client_state": "aGVsbG8=",
                            "media_format": {
                                "encoding": "PCMA",
                                "sample_rate": 8000,
                                "channels": 1,
                            },
                        },
                    }
                )
            )
            alaw = pcm16_to_alaw(resample(silence(300) + speech(600) + silence(800), 16000, 8000))
            for i in range(0, len(alaw), 160):
                chunk = base64.b64encode(alaw[i : i + 160]).decode()
                await ws.send(
                    json.dumps({"event": "media", "stream_id": sid, "media": {"payload": chunk}})
                )
            got: list[dict[str, Any]] = []
            async with asyncio.timeout(20):
                while not got or got[-1]["event"] != "mark":
                    got.append(json.loads(await ws.recv()))
            assert all(m["stream_id"] == sid for m in got)
            media = [base64.b64decode(m["media"]["payload"]) for m in got if m["event"] == "media"]
            assert len(media) == 10 and all(len(f) == 160 for f in media)  # 200 ms of reply
            pcm = alaw_to_pcm16(b"".join(media))
            assert (
                max(
                    abs(int.from_bytes(pcm[i : i + 2], "little", signed=True))
                    for i in range(0, len(pcm), 2)
                )
                > 1000
            )
            info = next(iter(bridge.calls.values()))
            assert info.call_sid == "v3:call-1"
            assert info.custom_parameters == {"client_state": "aGVsbG8="}
            await ws.send(json.dumps({"event": "stop", "stream_id": sid}))
            await bridge.wait_until(lambda: len(bridge.finished) == 1)


@pytest.mark.parametrize(
    ("input_rate", "detector_rate", "rate"),
    [(None, None, 8000), (16000, None, 16000), (8000, None, 8000), (None, 16000, 16000)],
)
async def test_caller_audio_goes_upstream_at_8_khz_unless_asked_for_16(
    input_rate: int | None, detector_rate: int | None, rate: int
) -> None:
    # The phone's 8 kHz goes upstream as it is (the service resamples any declared rate);
    # input_rate=16000 resamples in the bridge, as before, and so does a detector built
    # for 16 kHz when no input_rate is given (it was the default).
    from gemini_live.vad import ActivityDetector

    async with FakeLiveServer(reply_chunks=2) as server:
        kw: dict[str, Any] = {} if input_rate is None else {"input_rate": input_rate}
        if detector_rate is not None:
            kw["detector"] = lambda: ActivityDetector(sample_rate=detector_rate)
        bridge = TwilioBridge(fake_config(server), insecure_no_signature=True, **kw)
        assert bridge.input_rate == (input_rate or 8000)
        async with call(bridge) as (tw, _pump):
            await tw.start()
            await bridge.wait_until(lambda: any(c.session_id for c in bridge.calls.values()))
            info = next(iter(bridge.calls.values()))
            await tw.speak(ulaw_speech())
            await bridge.wait_until(lambda: info.heard_ms.get(1) == 80)  # 2 x 40 ms
            conn = server.connections[0]
            mimes = {
                m.realtime_input.audio.mime_type
                for m in conn.received
                if m.realtime_input is not UNSET
                and m.realtime_input.audio is not UNSET
                and m.realtime_input.audio.data
            }
            assert mimes == {f"audio/pcm;rate={rate}"}
            # PCM16 at that rate: the utterance (pre-roll, 600 ms of speech, hangover).
            ms = len(conn.audio) / (2 * rate) * 1000
            assert 600 <= ms <= 300 + 600 + 800


async def test_a_detector_at_another_rate_than_the_input_rate_ends_the_call() -> None:
    from gemini_live.vad import ActivityDetector

    async with FakeLiveServer() as server:
        bridge = TwilioBridge(
            fake_config(server),
            insecure_no_signature=True,
            input_rate=8000,
            detector=lambda: ActivityDetector(sample_rate=16000),
        )
        async with call(bridge) as (tw, pump):
            await tw.start()
            async with asyncio.timeout(10):
                await pump  # the bridge hangs up
        await bridge.wait_until(lambda: len(bridge.finished) == 1)
        assert bridge.finished[0].close == (4502, "upstream error: ConfigError")
