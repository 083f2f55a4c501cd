"""The caller's ``media`` payload to PCM (base64 into a bytearray, G.711 decoded without
the extra copies) gives the bytes and the errors of the plain decode (``pybase64``'s
``b64decode`` as before, which, unlike the standard library's, refuses excess padding),
sample by sample."""

from __future__ import annotations

import base64
import binascii
import random
import string
from typing import Any

import pybase64
import pytest

from gemini_live.audio import (
    _alaw_decode_value,
    _ulaw_decode_value,
    alaw_to_pcm16,
    ulaw_to_pcm16,
)
from gemini_live.telephony import TwilioBridge
from gemini_live.telephony._twilio import _Call, _MediaBody


def _reference(data: bytes, value: Any) -> bytes:
    return b"".join(value(c).to_bytes(2, "little", signed=True) for c in data)


@pytest.mark.parametrize(
    ("decode", "value"), [(ulaw_to_pcm16, _ulaw_decode_value), (alaw_to_pcm16, _alaw_decode_value)]
)
def test_g711_decode_of_every_buffer_type_is_the_per_sample_decode(decode: Any, value: Any) -> None:
    rng = random.Random(711)
    for n in (0, 1, 2, 159, 160, 320, 1000):
        data = bytes(rng.randrange(256) for _ in range(n))
        want = _reference(data, value)
        for given in (data, bytearray(data), memoryview(data)):
            got = decode(given)
            assert type(got) is bytes
            assert got == want
        buf = bytearray(data)
        decode(buf)
        assert buf == data  # the input is not changed
    assert decode(bytes(range(256))) == _reference(bytes(range(256)), value)


class _Admit:
    def admit(self, size: int, now: float) -> bool:
        return True


def _call() -> _Call:
    bridge = TwilioBridge(lambda _c: None, insecure_no_signature=True)  # type: ignore[arg-type,return-value]
    scope = {
        "type": "websocket",
        "headers": [],
        "query_string": b"",
        "client": ("10.0.0.1", 1),
        "extensions": {},
    }

    async def receive() -> dict[str, Any]:
        raise AssertionError("not used")

    async def send(message: Any) -> None:
        raise AssertionError("not used")

    call = _Call(bridge, scope, receive, send)
    call._audio_meter = _Admit()  # type: ignore[assignment]
    return call


def test_media_payload_decodes_and_fails_as_the_plain_decode() -> None:
    rng = random.Random(24)
    call = _call()
    alphabet = string.ascii_letters + string.digits + "+/=-_ \n\xe9"
    payloads = [base64.b64encode(bytes(rng.randrange(256) for _ in range(160))).decode()]
    for _ in range(3000):
        if rng.random() < 0.5:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            text = base64.b64encode(raw).decode()
            if rng.random() < 0.5 and text:  # one character changed
                at = rng.randrange(len(text))
                text = text[:at] + rng.choice(alphabet) + text[at + 1 :]
        else:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        payloads.append(text)
    decoded = failed = 0
    for text in payloads:
        try:
            want = ulaw_to_pcm16(pybase64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            with pytest.raises(ValueError):
                call._media_pcm(_MediaBody(payload=text))
            failed += 1
            continue
        got = call._media_pcm(_MediaBody(payload=text))
        assert type(got) is bytes
        assert got == want
        decoded += 1
    assert decoded > 500 and failed > 500
    assert call.info.media_in == sum(1 for t in payloads if _valid_nonempty(t))


def _valid_nonempty(text: str) -> bool:
    try:
        return bool(pybase64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return False
