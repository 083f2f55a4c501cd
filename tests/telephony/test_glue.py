"""The bridge's per-message glue against the general path it replaces: the pacer's
``media`` and ``mark`` texts built from heads encoded once per call (the bytes msgspec
writes for the same messages), and the audio rate meter's bucket arithmetic kept in the
meter (the decisions and level of :class:`~gemini_live._bridge.Bucket`)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from typing import Any

import msgspec
import pytest

import gemini_live._bridge
from gemini_live._bridge import ON_MESSAGE_EXTENSION, AudioMeter, Bucket, PeerClose
from gemini_live.telephony import TwilioBridge, _twilio

from .test_pacer import _played, _reply, pacing
from .test_twilio import fake_config
from .test_upstream import _mark, _media, _run, _Session

_SIDS = [
    "MZ18ad3ab5a668481ce02b83e7395059f0",
    "",
    'a"quote',
    "back\\slash",
    "tab\tnew\nline\x00\x1f",
    "ünïcødé – ☎ 𝄞",
    "</script>",
]


@pytest.mark.parametrize("sid_key", ["streamSid", "stream_id"])
@pytest.mark.parametrize("sid", _SIDS)
def test_the_media_and_mark_heads_are_what_msgspec_writes(sid_key: str, sid: str) -> None:
    encode = msgspec.json.Encoder().encode
    media_head, mark_head = _twilio._heads(sid_key, sid)
    rng = random.Random(sid_key + sid)
    for _ in range(20):
        payload = "".join(rng.choices("ABCxyz0189+/=", k=rng.randrange(0, 40)))
        name = f"r{rng.randrange(1, 10**6)}-{rng.randrange(1, 10**9)}"
        media = encode({"event": "media", sid_key: sid, "media": {"payload": payload}})
        mark = encode({"event": "mark", sid_key: sid, "mark": {"name": name}})
        assert media_head + payload + '"}}' == media.decode()
        assert mark_head + name + '"}}' == mark.decode()


@pytest.mark.parametrize("seed", range(8))
def test_the_audio_meter_decides_as_the_token_bucket(seed: int) -> None:
    rng = random.Random(seed)
    rate = rng.choice([8000 * 1.2, 16000.0, 9600, 100.5])
    burst = rng.choice([24000, 800, 3000.0])
    close_after = rng.choice([None, 10**9])
    meter = AudioMeter(rate, burst, close_after)
    bucket = Bucket(rate, burst)
    now = meter._stamp
    bucket.stamp = now
    dropped = 0
    for _ in range(2000):
        # Mostly real time, some bursts (no time passes) and some pauses.
        now += rng.choice([0.0, 0.0, 0.02, 0.02, 0.02, 0.001, 0.5, rng.random() / 10])
        n = rng.choice([160, 160, 320, 1, 0, rng.randrange(0, 4000)])
        expect = bucket.take(n, now)
        if not expect:
            dropped += n
        assert meter.admit(n, now) is expect
        assert meter._level == bucket.level
        assert meter._stamp == bucket.stamp
        assert meter.dropped == dropped


async def test_the_pacers_timer_wakes_it_once_and_not_once_cancelled() -> None:
    loop = asyncio.get_running_loop()
    due = loop.create_future()
    _twilio._wake_up(due)
    assert due.done() and due.result() is None
    _twilio._wake_up(due)  # (a second call changes nothing)
    cancelled: asyncio.Future[None] = loop.create_future()
    cancelled.cancel()
    _twilio._wake_up(cancelled)  # the pacer was cancelled while it waited
    assert cancelled.cancelled()


def test_the_audio_meter_still_closes_a_flood() -> None:
    meter = AudioMeter(8000, 160, 480)
    now = meter._stamp
    assert meter.admit(160, now)
    for _ in range(3):
        assert not meter.admit(160, now)
    with pytest.raises(PeerClose) as caught:
        meter.admit(160, now)
    assert caught.value.code == 4429


def _other_track(frame: bytes) -> str:
    payload = base64.b64encode(frame).decode()
    return json.dumps({"event": "media", "media": {"payload": payload, "track": "outbound"}})


class _FrozenClock:
    """The ``time`` module with ``monotonic`` standing still: the audio meter's refill
    then does not depend on how fast the machine runs the two paths."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def monotonic() -> float:
        return 1000.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("input_rate", [8000, 16000])
@pytest.mark.parametrize("turn_detection", ["server", "vad"])
async def test_inline_media_sends_and_counts_as_the_awaited_path(
    seed: int, input_rate: int, turn_detection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The media decode inlined in ``inline`` against ``_media_pcm`` (the awaited path) on
    random frames, other tracks, empty payloads, marks and audio over the rate limit."""
    monkeypatch.setattr(_twilio, "time", _FrozenClock())
    monkeypatch.setattr(gemini_live._bridge, "time", _FrozenClock())
    rng = random.Random(seed)
    messages: list[str] = []
    total = 0
    for i in range(rng.randrange(8, 14)):
        frame = bytes(rng.randrange(256) for _ in range(rng.choice([160, 320])))
        kind = rng.random()
        if kind < 0.15:
            messages.append(_other_track(frame))
        elif kind < 0.25:
            messages.append(_media(b""))
        elif kind < 0.35:
            messages.append(_mark(f"x{i}"))
        elif total + len(frame) <= 1900:  # at most 900 bytes dropped: no 4429
            total += len(frame)
            messages.append(_media(frame))
    messages.append('{"event":"stop"}')
    # 125 ms of burst (1000 bytes): the later frames are dropped (and counted).
    options: dict[str, Any] = {
        "turn_detection": turn_detection,
        "input_rate": input_rate,
        "audio_burst_ms": 125,
        "max_audio_speed": 1.0,
    }
    results = []
    for inline in (True, False):
        session = _Session()
        call = await _run(messages, session, inline, **options)
        info = call.info
        results.append((session.log, info.media_in, info.media_dropped_bytes, info.utterances))
    assert results[0] == results[1]
    assert results[0][1] > 0
    if total >= 1200:  # over the 1000 bytes of burst (by more than any refill)
        assert results[0][2] > 0


async def test_inline_refuses_once_closed_or_behind_a_message_being_finished() -> None:
    """The server calls ``inline`` directly: it makes ``_inline_entry``'s checks."""
    handlers: list[Any] = []
    scope = {
        "type": "websocket",
        "headers": [],
        "query_string": b"",
        "extensions": {ON_MESSAGE_EXTENSION: handlers.append},
    }

    async def receive() -> Any:
        raise AssertionError

    async def send(_message: Any) -> None:
        pass

    bridge = TwilioBridge(fake_config(None), insecure_no_signature=True)  # type: ignore[arg-type]
    call = _twilio._Call(bridge, scope, receive, send)
    session = _Session()
    call._setup_input(session)
    assert call.receive_inline()
    entry = handlers[0]
    assert entry == call.inline  # no _inline_entry call in between
    text = _media(bytes(160))
    assert entry(text) is True

    async def rest() -> None:
        pass

    call.finish_later(rest)
    assert entry(text) is False
    call._rest = None
    call.closed = True
    assert entry(text) is False


async def test_the_pacer_waits_behind_a_send_in_progress_and_sends_nothing_once_closed() -> None:
    """The pacer's inlined ``send_now``: with another send in progress its message goes
    the ASGI way, after it, in order; once the call is closed, nowhere."""
    async with pacing(media_ms=20) as (bridge, call, phone):
        lock = call._send_lock
        await lock.acquire()  # as a send that has to wait
        await _reply(call, 1)
        await asyncio.sleep(0)  # (one turn of the loop: the pacer may run)
        assert not phone.via_nowait and not phone.via_send
        lock.release()
        await _played(bridge, call)
        # The message that waited went the ASGI way, first; the rest without waiting.
        assert [json.loads(t)["event"] for t in phone.via_send] == ["media"]
        assert phone.messages[0]["event"] == "media" and len(phone.via_send) == 1
        assert "mark" in [json.loads(t)["event"] for t in phone.via_nowait]
        before = len(phone.messages)
        call.closed = True
        await _reply(call, 1)
        await bridge.wait_until(lambda: not call._queue, within=10)
        assert len(phone.messages) == before and call.info.media_out == 4
