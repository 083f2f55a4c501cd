"""The bridge's outbound pacing, driven in memory: ``media_ms`` (several 20 ms frames per
``media`` message), its marks and barge-in, and the server's no-wait send.

Each failed before ``media_ms`` existed (every message carried one 20 ms frame, and the
pacer's messages went through the ASGI ``send`` even where the server offers a no-wait
send)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gemini_live import audio
from gemini_live import events as ev
from gemini_live._asgi import Message
from gemini_live._bridge import SEND_NOWAIT_EXTENSION, EventPump
from gemini_live.errors import AudioFormatError, ConfigError
from gemini_live.telephony import TwilioBridge, _twilio

from .test_twilio import STREAM, speech

#: 24 kHz PCM16, as the model sends it.
REPLY = speech(40, rate=24000)


class Phone:
    """The carrier's side: what the bridge wrote, by path; marks echoed at once when
    ``echo`` (everything before a mark has been played)."""

    def __init__(self, *, nowait: bool) -> None:
        self.messages: list[dict[str, Any]] = []
        self.via_send: list[str] = []
        self.via_nowait: list[str] = []
        self.call: _twilio._Call | None = None
        self.echo = True
        self.offer_nowait = nowait
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Any, within: float = 10.0) -> None:
        """Until ``predicate()`` holds, checked after every message the bridge writes."""
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def _seen(self, text: str) -> None:
        msg = json.loads(text)
        assert msg["streamSid"] == STREAM
        self.messages.append(msg)
        self._changed.set()
        if msg["event"] == "mark" and self.echo:
            assert self.call is not None
            self.call._mark_played(msg["mark"]["name"])

    async def send(self, message: Message) -> None:
        text = message["text"]
        self.via_send.append(text)
        self._seen(text)

    def send_nowait(self, data: bytes | str) -> bool:
        assert isinstance(data, str)
        self.via_nowait.append(data)
        self._seen(data)
        return True

    async def receive(self) -> Message:
        await asyncio.Event().wait()  # the carrier says nothing here
        raise AssertionError

    def media(self) -> list[bytes]:
        return [base64.b64decode(m["media"]["payload"]) for m in self.messages if "media" in m]

    def marks(self) -> list[str]:
        return [m["mark"]["name"] for m in self.messages if m["event"] == "mark"]


@asynccontextmanager
async def pacing(
    *, nowait: bool = True, **options: Any
) -> AsyncIterator[tuple[TwilioBridge, _twilio._Call, Phone]]:
    bridge = TwilioBridge(
        lambda _c: None,  # type: ignore[arg-type,return-value]  # no session is opened
        insecure_no_signature=True,
        **options,
    )
    phone = Phone(nowait=nowait)
    scope: dict[str, Any] = {"type": "websocket", "headers": [], "query_string": b""}
    if nowait:
        scope["extensions"] = {SEND_NOWAIT_EXTENSION: phone.send_nowait}
    call = _twilio._Call(bridge, scope, phone.receive, phone.send)
    call.info.stream_sid = STREAM
    phone.call = call
    pacer = asyncio.create_task(call._pacer())
    try:
        yield bridge, call, phone
    finally:
        pacer.cancel()
        await asyncio.gather(pacer, return_exceptions=True)


async def _reply(call: _twilio._Call, chunks: int) -> None:
    """One reply of ``chunks`` x 40 ms, all at once (a model faster than real time)."""
    for _ in range(chunks):
        await call._events(ev.ModelAudio(data=REPLY))
    await call._events(ev.TurnComplete())


async def _played(bridge: TwilioBridge, call: _twilio._Call, reply: int = 1) -> None:
    info = call.info

    def done() -> bool:
        return not call._queue and info.sent_ms.get(reply, -1) == info.heard_ms.get(reply)

    await bridge.wait_until(done, within=10)


@pytest.mark.parametrize("media_ms", [20, 100, 160])
async def test_media_ms_sends_whole_frames_up_to_the_limit_with_the_same_audio_and_marks(
    media_ms: int,
) -> None:
    async with pacing(media_ms=20) as (bridge, call, phone):
        await _reply(call, 8)  # 320 ms
        await _played(bridge, call)
        reference, reference_info = phone.media(), call.info
    async with pacing(media_ms=media_ms, mark_every_ms=200) as (bridge, call, phone):
        await _reply(call, 8)
        await _played(bridge, call)
        media = phone.media()
        info = call.info
    assert b"".join(media) == b"".join(reference)  # the same audio, cut differently
    assert all(len(m) % 160 == 0 and 0 < len(m) <= media_ms * 8 for m in media)
    assert len(media) == -(-len(b"".join(reference)) // (media_ms * 8))  # as few as fit
    assert info.media_out == len(media)
    assert info.sent_ms == reference_info.sent_ms == {1: len(b"".join(reference)) // 8}
    assert info.heard_ms == info.sent_ms  # every mark came back
    # A mark after the message that reaches each 200 ms of the reply, and at its end.
    expected, ms = 0, 0
    for k, m in enumerate(media):
        before, ms = ms, ms + len(m) // 8
        expected += ms // 200 > before // 200 or k == len(media) - 1
    names = phone.marks()
    assert len(names) == expected == info.marks_sent and expected >= 1
    assert all(name.startswith("r1-") for name in names)
    assert phone.messages[-1]["event"] == "mark"


async def test_the_reply_goes_through_the_float32_decimator_with_the_streams_timing() -> None:
    # The model's 24 kHz goes down to 8 kHz through audio._Decimator (one BLAS product per
    # chunk, G.711 by lookup): the very codes it gives, 20 ms frames as the float64 sinc
    # stream cuts them (the same filter and timing), the tail flushed at the reply's end.
    async with pacing(media_ms=20) as (bridge, call, phone):
        assert isinstance(call._down, audio._Decimator)
        await _reply(call, 8)
        await _played(bridge, call)
        media = b"".join(phone.media())
    decimator = audio._Decimator.create(24000, 8000)
    assert decimator is not None
    codes = b"".join(decimator.process_g711(REPLY) for _ in range(8))
    codes += audio.pcm16_to_ulaw(decimator.flush())
    plain = audio.Resampler(24000, 8000, backend="numpy")
    reference = b"".join(plain.process(REPLY) for _ in range(8)) + plain.flush()
    assert len(codes) == len(reference) // 2
    assert media == codes + bytes([0xFF]) * (-len(codes) % 160)  # the last frame padded


async def test_chunks_that_come_while_the_pacer_waits_are_resampled_in_one_step() -> None:
    # A model faster than real time: the chunks that arrive before the pacer runs go down
    # to 8 kHz in one decimator call (one per message, not one per chunk), with the codes
    # chunk by chunk would give; a rate change resamples the audio before it at its rate,
    # and audio that is not whole PCM16 samples still fails in the event, typed.
    async with pacing(media_ms=100) as (bridge, call, phone):
        calls: list[int] = []
        down = call._down

        class Counted:
            def process_g711(self, chunk: Any, law: Any = "ulaw") -> bytes:
                calls.append(len(chunk))
                return down.process_g711(chunk, law)

            def flush(self) -> bytes:
                return down.flush()

            def reset(self) -> None:
                down.reset()

        call._down = Counted()  # type: ignore[assignment]
        for _ in range(5):
            await call._events(ev.ModelAudio(data=REPLY))
        assert calls == []  # held until the pacer takes it
        await call._events(ev.TurnComplete())
        assert calls == [5 * len(REPLY)]  # the reply's end: resampled, then flushed
        await _played(bridge, call)
        media = b"".join(phone.media())
        with pytest.raises(AudioFormatError):
            await call._events(ev.ModelAudio(data=REPLY[:-1]))
    decimator = audio._Decimator.create(24000, 8000)
    assert decimator is not None
    codes = b"".join(decimator.process_g711(REPLY) for _ in range(5))
    codes += audio.pcm16_to_ulaw(decimator.flush())
    assert media == codes + bytes([0xFF]) * (-len(codes) % 160)
    # A rate change mid-reply: the audio held before it goes down at its own rate.
    async with pacing(media_ms=100) as (bridge, call, phone):
        await call._events(ev.ModelAudio(data=REPLY))  # 40 ms at 24 kHz, held
        slow = speech(40, rate=16000)
        await call._events(ev.ModelAudio(data=slow, sample_rate=16000))
        await call._events(ev.TurnComplete())
        await _played(bridge, call)
        media = b"".join(phone.media())
    first = audio._Decimator.create(24000, 8000)
    second = audio._Decimator.create(16000, 8000)
    assert first is not None and second is not None
    codes = first.process_g711(REPLY) + second.process_g711(slow)
    codes += audio.pcm16_to_ulaw(second.flush())
    assert media == codes + bytes([0xFF]) * (-len(codes) % 160)


async def _waiting(*calls: _twilio._Call) -> None:
    """Until every call's pacer waits for audio (its batch ran, it sent what it had):
    the pacer's own state, which no event announces; one loop iteration per check."""
    async with asyncio.timeout(5):
        while any(c._wake is None or c._batched for c in calls):  # noqa: ASYNC110
            await asyncio.sleep(0)


async def test_a_busy_bridge_resamples_one_iterations_chunks_of_all_calls_in_one_product(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # From _BATCH_FROM_CALLS calls (here: always) the chunks that reach waiting pacers in
    # one loop iteration go down to 8 kHz in one product for all calls, and the messages
    # due are written right there (the pacers' tasks go on waiting: no wake-up): each
    # call's caller hears the very codes its own decimator gives chunk by chunk. A
    # barge-in between a chunk and the batch drops that chunk with the reply.
    monkeypatch.setattr(_twilio, "_BATCH_FROM_CALLS", 0)
    sizes: list[int] = []
    product = audio._DecimateBatch.process_g711

    def counted(self: audio._DecimateBatch, jobs: Any, law: Any = "ulaw") -> list[bytes]:
        sizes.append(len(jobs))
        return product(self, jobs, law)

    monkeypatch.setattr(audio._DecimateBatch, "process_g711", counted)
    other = speech(40, rate=24000, freq=240.0)
    # A lead of a second: every message is due at once (no pacing wait in the test).
    async with (
        pacing(media_ms=20, lead_ms=1000) as (bridge, a, pa),
        pacing(media_ms=20, lead_ms=1000) as (_, b, pb),
    ):
        await _waiting(a, b)
        waits = a._wake, b._wake
        for _ in range(6):
            had = len(pa.media()), len(pb.media())
            await a._events(ev.ModelAudio(data=REPLY))
            await b._events(ev.ModelAudio(data=other))
            assert a._batched and b._batched  # held for the loop's batch, not resampled
            await _waiting(a, b)
            assert len(pa.media()) > had[0] and len(pb.media()) > had[1]  # by the batch
        assert (a._wake, b._wake) == waits and not any(w.done() for w in waits if w)
        await a._events(ev.TurnComplete())
        await b._events(ev.TurnComplete())
        await _played(bridge, a)
        await _played(b.bridge, b)
        assert 2 in sizes and max(sizes) == 2
        for phone, chunk in ((pa, REPLY), (pb, other)):
            decimator = audio._Decimator.create(24000, 8000)
            assert decimator is not None
            codes = b"".join(decimator.process_g711(chunk) for _ in range(6))
            codes += audio.pcm16_to_ulaw(decimator.flush())
            assert b"".join(phone.media()) == codes + bytes([0xFF]) * (-len(codes) % 160)
        # A barge-in before the batch runs: the held chunk goes with the reply.
        await _waiting(a)
        n, runs = len(pa.media()), len(sizes)
        await a._events(ev.ModelAudio(data=REPLY))
        await a._events(ev.Interrupted())
        assert not a._queue
        await a._events(ev.ModelAudio(data=REPLY))  # the next reply, from scratch
        await a._events(ev.TurnComplete())
        await _played(bridge, a, reply=3)
        # The batch found nothing held: the cleared chunk was dropped, the next reply's
        # resampled at its end.
        assert len(sizes) == runs and not a._batched
        decimator = audio._Decimator.create(24000, 8000)
        assert decimator is not None
        codes = decimator.process_g711(REPLY) + audio.pcm16_to_ulaw(decimator.flush())
        assert b"".join(pa.media()[n:]) == codes + bytes([0xFF]) * (-len(codes) % 160)


async def test_a_failed_batch_ends_the_calls_as_their_event_handler_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (Never seen: the chunks were checked.) The calls in the failed product end with the
    # error, as when their event handler raises it: the pump's run raises it.
    monkeypatch.setattr(_twilio, "_BATCH_FROM_CALLS", 0)

    def broken(self: audio._DecimateBatch, jobs: Any, law: Any = "ulaw") -> list[bytes]:
        raise RuntimeError("no product")

    monkeypatch.setattr(audio._DecimateBatch, "process_g711", broken)
    async with pacing() as (_, call, _phone):
        pump = call._pump = EventPump(call._events, limit=8)
        await _waiting(call)
        await call._events(ev.ModelAudio(data=REPLY))
        with pytest.raises(RuntimeError, match="no product"):
            await asyncio.wait_for(pump.run(), 5)
        assert pump.ended


async def test_media_ms_barge_in_clears_and_sends_nothing_more_of_the_reply() -> None:
    async with pacing(media_ms=200, lead_ms=60) as (bridge, call, phone):
        phone.echo = False  # nothing is played yet
        await _reply(call, 100)  # 4 s, all at once
        await phone.wait_for(lambda: call.info.sent_ms.get(1, 0) >= 200)
        await call._events(ev.Interrupted())
        sent = call.info.sent_ms[1]
        assert phone.messages[-1]["event"] == "clear" and call.info.clears == 1
        assert not call._queue and not call._marks  # dropped; its marks are not "played"
        # The next reply is paced from scratch; nothing more of the first one is sent.
        phone.echo = True
        n = len(phone.media())
        await _reply(call, 2)
        await _played(bridge, call, reply=2)
        assert call.info.sent_ms[1] == sent and 1 not in call.info.heard_ms
        assert sum(len(m) for m in phone.media()[n:]) // 8 == call.info.sent_ms[2]
        # At most media_ms + lead_ms were ahead of the caller's ear when it was cleared.
        assert sent <= 200 + 60 + 200


@pytest.mark.parametrize("nowait", [True, False])
async def test_the_pacer_writes_through_the_servers_no_wait_send_when_offered(
    nowait: bool,
) -> None:
    async with pacing(nowait=nowait, media_ms=20) as (bridge, call, phone):
        await _reply(call, 3)
        await _played(bridge, call)
        await call._clear()
    kinds = [json.loads(t)["event"] for t in (phone.via_nowait if nowait else phone.via_send)]
    assert kinds.count("media") == call.info.media_out == 6
    assert kinds.count("mark") == call.info.marks_sent >= 1 and kinds[-1] == "clear"
    assert not (phone.via_send if nowait else phone.via_nowait)


@pytest.mark.parametrize("value", [0, 10, 30, 1020, 2000, True, 40.0, "40"])
def test_bad_media_ms_is_refused(value: Any) -> None:
    with pytest.raises(ConfigError, match="media_ms"):
        TwilioBridge(lambda _c: None, insecure_no_signature=True, media_ms=value)  # type: ignore[arg-type,return-value]


def test_media_ms_defaults_to_100() -> None:
    bridge = TwilioBridge(lambda _c: None, insecure_no_signature=True)  # type: ignore[arg-type,return-value]
    assert bridge.media_ms == 100
