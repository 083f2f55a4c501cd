"""The bridge's per-message glue against the general path it replaces: the pacer's
``media`` and ``mark`` texts built from heads encoded once per call (the bytes msgspec
writes for the same messages), and the audio rate meter's bucket arithmetic kept in the
meter (the decisions and level of :class:`~gemini_live._bridge.Bucket`)."""

from __future__ import annotations

import random

import msgspec
import pytest

from gemini_live._bridge import AudioMeter, Bucket, PeerClose
from gemini_live.telephony import _twilio

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


def test_the_audio_meter_still_closes_a_flood() -> None:
    meter = AudioMeter(8000, 160, 480)
    now = meter._stamp
    assert meter.admit(160, now)
    for _ in range(3):
        assert not meter.admit(160, now)
    with pytest.raises(PeerClose) as caught:
        meter.admit(160, now)
    assert caught.value.code == 4429
