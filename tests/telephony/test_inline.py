"""The phone bridges take the carrier's ``media`` and ``mark`` messages inside the
server's read callback (``gemini_live.on_message``) where the server offers it: the same
upstream audio, marks, counters and closes as the awaited path, in order, whether every
message is handled inline, some take the ASGI way, or (another server) all of them do."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gemini_live._bridge import ON_MESSAGE_EXTENSION, PeerClose
from gemini_live.audio import pcm16_to_ulaw, resample
from gemini_live.telephony import CallInfo, TelnyxBridge, TwilioBridge
from gemini_live.testing import FakeLiveServer
from gemini_live.vad import ActivityDetector
from gemini_live.web import running

from .test_twilio import STREAM, fake_config, silence, speech

Handler = Callable[[bytes | str], bool]
SetHandler = Callable[[Handler | None], None]


def _watched(app: Any, log: list[str], mode: str) -> Any:
    """``app`` whose inline handler is watched (``log``): ``mode`` "inline" as served,
    "mixed" declining every third message before the bridge sees it (it takes the ASGI
    way), "absent" without the extension (another server)."""

    async def watched_app(scope: Any, receive: Any, send: Any) -> None:
        extensions = scope.setdefault("extensions", {})
        set_handler: SetHandler | None = extensions.get(ON_MESSAGE_EXTENSION)
        if mode == "absent":
            extensions.pop(ON_MESSAGE_EXTENSION, None)
        elif set_handler is not None:
            count = 0

            def wrap(handler: Handler | None) -> None:
                if handler is None:
                    set_handler(None)
                    return

                def watched(data: bytes | str) -> bool:
                    nonlocal count
                    count += 1
                    if mode == "mixed" and count % 3 == 0:
                        log.append("declined")
                        return False
                    try:
                        handled = handler(data)
                    except Exception:
                        log.append("raised")
                        raise
                    log.append("inline" if handled else "queued")
                    return handled

                set_handler(watched)

            extensions[ON_MESSAGE_EXTENSION] = wrap
        await app(scope, receive, send)

    return watched_app


class _Carrier:
    """Twilio's or Telnyx's message shapes; marks echoed as they arrive."""

    def __init__(self, ws: ClientConnection, telnyx: bool) -> None:
        self.ws = ws
        self.sid_key = "stream_id" if telnyx else "streamSid"
        self.telnyx = telnyx
        self.marks: list[str] = []

    async def send(self, event: str, **body: Any) -> None:
        await self.ws.send(json.dumps({"event": event, self.sid_key: STREAM, **body}))

    async def start(self) -> None:
        if self.telnyx:
            start: dict[str, Any] = {
                "call_control_id": "v3:call-1",
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
            }
        else:
            start = {
                "streamSid": STREAM,
                "callSid": "CA0001",
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            }
        await self.send("start", start=start)

    async def media(self, ulaw: bytes, track: str = "inbound") -> None:
        await self.send("media", media={"track": track, "payload": base64.b64encode(ulaw).decode()})

    async def pump(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if msg["event"] == "mark":
                    self.marks.append(msg["mark"]["name"])
                    await self.send("mark", mark={"name": msg["mark"]["name"]})
        except ConnectionClosed:
            pass


def _frames(pcm8k: bytes) -> list[bytes]:
    ulaw = pcm16_to_ulaw(pcm8k)
    return [ulaw[i : i + 160] for i in range(0, len(ulaw), 160)]


async def _one_call(
    mode: str, telnyx: bool, turn_detection: str
) -> tuple[bytes, CallInfo, list[str], list[str]]:
    """A scripted call: two utterances with a key press, an outbound-track frame and an
    unknown event among the media, the replies' marks echoed, then ``stop``."""
    log: list[str] = []
    utterance = _frames(resample(silence(300) + speech(600) + silence(800), 16000, 8000))
    async with FakeLiveServer(reply_chunks=5) as server:
        kind = TelnyxBridge if telnyx else TwilioBridge
        bridge = kind(
            fake_config(server),
            insecure_no_signature=True,
            turn_detection=turn_detection,  # type: ignore[arg-type]
            max_audio_speed=1e6,
            audio_burst_ms=10**6,
        )
        app = _watched(bridge, log, mode)
        async with running(app) as base, connect(base.replace("http", "ws") + "/phone") as ws:
            carrier = _Carrier(ws, telnyx)
            pump = asyncio.create_task(carrier.pump())
            try:
                async with asyncio.timeout(30):
                    await carrier.start()
                    await bridge.wait_until(
                        lambda: any(c.session_id for c in bridge.calls.values())
                    )
                    info = next(iter(bridge.calls.values()))
                    for i, frame in enumerate(utterance):
                        await carrier.media(frame)
                        if i == 40:
                            await carrier.send("dtmf", dtmf={"digit": "7"})
                            await carrier.media(frame, track="outbound")  # ignored
                            await carrier.send("keepalive")  # an unknown event: ignored
                    await bridge.wait_until(lambda: info.heard_ms.get(1) == 200)  # 5 x 40 ms
                    for frame in utterance:
                        await carrier.media(frame)
                    await bridge.wait_until(lambda: info.heard_ms.get(2) == 200)
                    await carrier.send("stop")
                    await pump
                    await bridge.wait_until(lambda: len(bridge.finished) == 1)
                    await server.wait_for_close(0)
            finally:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        audio = bytes(server.connections[0].audio)
    return audio, info, carrier.marks, log


@pytest.mark.parametrize("turn_detection", ["vad", "server"])
@pytest.mark.parametrize("telnyx", [False, True], ids=["twilio", "telnyx"])
async def test_inline_and_awaited_paths_send_and_count_the_same(
    telnyx: bool, turn_detection: str
) -> None:
    """The same call handled inline, partly through the ASGI queue, and (another server)
    only through it: the same audio upstream, the same marks played, the same counters
    and the same close."""
    results = {m: await _one_call(m, telnyx, turn_detection) for m in ("inline", "mixed", "absent")}
    audio, info, marks, log = results["absent"]
    assert log == [] and audio and info.marks_played == len(marks) > 0
    assert info.dtmf == ["7"] and info.close == (1000, "call ended") and info.stopped
    for mode in ("inline", "mixed"):
        audio_m, info_m, marks_m, log_m = results[mode]
        assert audio_m == audio, mode
        assert marks_m == marks, mode
        for name in ("media_in", "marks_played", "heard_ms", "utterances", "dtmf", "close"):
            assert getattr(info_m, name) == getattr(info, name), (mode, name)
        # (Messages that arrive while the bridge is busy queue: how many go inline
        # depends on the timing, that some do does not.)
        assert log_m.count("inline") > 0, mode
        assert "raised" not in log_m
    mixed = results["mixed"][3]
    assert "inline" in mixed[mixed.index("declined") :]


class _Broken(ActivityDetector):
    """A detector with a bug that shows on the 10th chunk."""

    calls = 0

    def process(self, pcm: object) -> Any:
        self.calls += 1
        if self.calls == 10:
            raise RuntimeError("detector bug")
        return super().process(pcm)


_GOOD = base64.b64encode(bytes([0xFF]) * 160).decode()


@pytest.mark.parametrize("mode", ["inline", "absent"])
@pytest.mark.parametrize(
    ("bad", "code", "reason"),
    [
        ("flood", 4429, "rate limit: audio faster than real time"),
        ("detector", 1011, "internal error"),
        ('{"event":"media","media":{"payload":"*not base64*"}}', 1003, "media payload is not"),
        ('{"event":"media"}', 1003, "media message without media"),
        (b"\x00\x01", 1003, "expected JSON text messages"),
        ("not json", 1003, "bad message: "),
        ('{"event":"media","media":{"payload":"' + "A" * 20000 + '"}}', 1009, "message too big"),
        ('{"event":"dtmf","dtmf":{"digit":"12"}}', 1003, "bad dtmf message"),
    ],
)
async def test_bad_input_after_inline_media_closes_as_before(
    mode: str, bad: str | bytes, code: int, reason: str
) -> None:
    """Bad input, a limit hit or a bug after media that was handled inline ends the call
    with the close code and reason the awaited path gives (and gives elsewhere)."""
    log: list[str] = []
    async with FakeLiveServer() as server:
        bridge = TwilioBridge(
            fake_config(server),
            insecure_no_signature=True,
            # The VAD for the broken detector; otherwise all audio goes upstream.
            turn_detection="vad" if bad == "detector" else "server",
            detector=_Broken if bad == "detector" else None,
            audio_burst_ms=200 if bad == "flood" else 3000,
            upstream_ms=20,  # every frame written at once: the wait below sees all five
        )
        app = _watched(bridge, log, mode)
        async with running(app) as base, connect(base.replace("http", "ws") + "/phone") as ws:
            carrier = _Carrier(ws, telnyx=False)
            async with asyncio.timeout(30):
                await carrier.start()
                await bridge.wait_until(lambda: any(c.session_id for c in bridge.calls.values()))
                info = next(iter(bridge.calls.values()))
                for _ in range(5):
                    await carrier.send("media", media={"payload": _GOOD})
                if bad in ("flood", "detector"):
                    with contextlib.suppress(ConnectionClosed):  # it may close meanwhile
                        for _ in range(100):
                            await carrier.send("media", media={"payload": _GOOD})
                else:
                    await server.wait_until(lambda: server.connections[0].audio_bytes >= 1600)
                    await ws.send(bad)
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.recv()
            assert ws.close_code == code
            assert (ws.close_reason or "").startswith(reason), ws.close_reason
            await bridge.wait_until(lambda: len(bridge.finished) == 1)
    assert info.close is not None and info.close[0] == code
    if mode == "absent":
        assert log == []
    else:
        assert "inline" in log  # the good media
        if bad in ("flood", "detector"):
            assert log[-1] == "raised"
        else:
            assert log[-1] == "queued" and "raised" not in log


class _Upstream:
    """A session stub whose no-wait write refuses the second chunk (as under
    backpressure); both paths record what reached it, in order."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []

    def send_audio_nowait(self, pcm: bytes, *, sample_rate: int | None = None) -> bool:
        if len(self.chunks) == 1:
            return False
        self.chunks.append(("nowait", pcm))
        return True

    async def send_audio(self, pcm: bytes, *, sample_rate: int | None = None) -> None:
        await asyncio.sleep(0)  # it may wait
        self.chunks.append(("awaited", pcm))


async def test_a_write_that_has_to_wait_is_finished_before_the_next_message() -> None:
    """``send_audio_nowait`` refuses a chunk: the bridge leaves its write to the task that
    receives (``finish_later``), and the messages behind it follow, in order."""
    from gemini_live.audio import ulaw_to_pcm16
    from gemini_live.telephony import _twilio

    handlers: list[Handler | None] = []
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(_message: Any) -> None:
        pass

    scope = {
        "type": "websocket",
        "headers": [],
        "query_string": b"",
        "extensions": {ON_MESSAGE_EXTENSION: handlers.append},
    }
    bridge = TwilioBridge(
        fake_config(None),  # type: ignore[arg-type]
        insecure_no_signature=True,
        turn_detection="server",
        upstream_ms=20,  # one write per frame (the 40 ms writes: test_upstream.py)
    )
    call = _twilio._Call(bridge, scope, inbox.get, send)
    upstream = _Upstream()
    call._setup_input(upstream)  # type: ignore[arg-type]
    call.session = upstream  # type: ignore[assignment]
    assert call.receive_inline()
    entry = handlers[0]
    assert entry is not None
    frames = [bytes([i * 16 + 3]) * 160 for i in range(6)]
    messages = [
        json.dumps({"event": "media", "media": {"payload": base64.b64encode(f).decode()}})
        for f in frames
    ] + ['{"event":"stop"}']
    for text in messages:
        # As the server does: inline only while nothing is queued.
        if not inbox.qsize() and entry(text):
            continue
        inbox.put_nowait({"type": "websocket.receive", "text": text})
    async with asyncio.timeout(5):
        with pytest.raises(PeerClose) as caught:
            await call._inbound(upstream)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.reason) == (1000, "call ended")
    assert upstream.chunks == [("nowait", ulaw_to_pcm16(frames[0]))] + [
        ("awaited", ulaw_to_pcm16(f)) for f in frames[1:]
    ]
    assert inbox.qsize() == 0
