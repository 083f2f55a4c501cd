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

from gemini_live import events as ev
from gemini_live._asgi import Message
from gemini_live._bridge import SEND_NOWAIT_EXTENSION
from gemini_live.errors import ConfigError
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
        self.pacer: asyncio.Task[None] | None = None  # the call's pacer task (pacing)
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
    pacer = phone.pacer = asyncio.create_task(call._pacer())
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


class _Refusing(Phone):
    """A phone whose no-wait send refuses the messages numbered in ``refuse`` (counted
    over every no-wait attempt): the bridge must send those the waiting way, in order."""

    def __init__(self, refuse: set[int]) -> None:
        super().__init__(nowait=True)
        self.refuse = refuse
        self.attempts = 0

    def send_nowait(self, data: bytes | str) -> bool:
        self.attempts += 1
        if self.attempts in self.refuse:
            return False
        return super().send_nowait(data)


async def _parked(call: _twilio._Call) -> None:
    """Let the just-created pacer task take its first step (it waits for audio)."""
    await asyncio.sleep(0)  # one loop iteration: the task's first step runs
    assert call._parked


async def test_whole_messages_due_at_once_go_out_from_the_event_itself() -> None:
    # With media_ms=20 every frame is a whole message: sent before _events returns,
    # through the no-wait send, without a wake-up of the pacer task.
    async with pacing(media_ms=20) as (bridge, call, phone):
        await _parked(call)
        await call._events(ev.ModelAudio(data=REPLY))  # 40 ms: 1 whole frame (+ filter delay)
        assert [m["event"] for m in phone.messages] == ["media"]
        assert call._parked and not call._out_event.is_set()
        await call._events(ev.ModelAudio(data=REPLY))
        assert len(phone.media()) == 3 and call.info.media_out == 3
        await call._events(ev.TurnComplete())  # the reply's last frame and its mark
        assert phone.messages[-1]["event"] == "mark" and not call._queue
        assert call._parked and not call._out_event.is_set()
        assert not phone.via_send
        await _played(bridge, call)


async def test_short_messages_wait_for_the_rest_of_the_loop_iteration() -> None:
    # Under media_ms a message could still grow: it goes at the point the pacer's
    # wake-up would run (after the iteration's other events), from a callback.
    async with pacing(media_ms=100) as (bridge, call, phone):
        await _parked(call)
        for _ in range(2):  # two chunks in one iteration: one message, as the pacer cuts
            await call._events(ev.ModelAudio(data=REPLY))
        assert not phone.messages
        await asyncio.sleep(0)  # the next iteration
        assert [len(m) for m in phone.media()] == [480]
        assert call._parked and not call._out_event.is_set()
        await call._events(ev.TurnComplete())
        await _played(bridge, call)
        assert call.info.sent_ms == {1: sum(len(m) for m in phone.media()) // 8}


@pytest.mark.parametrize("seed", range(6))
async def test_sends_from_events_equal_the_pacers_messages(seed: int) -> None:
    # Random chunk sizes, loop iterations, reply ends and barge-ins: the messages (their
    # audio, cut, marks and clears) are the ones the pacer task alone sends (a server
    # without the no-wait send). A large lead keeps real time out of it.
    import random

    rng = random.Random(seed)
    script: list[tuple[str, int]] = []
    for _ in range(60):
        r = rng.random()
        if r < 0.7:
            script.append(("audio", rng.randrange(1, 120) * 2 * 24))  # 1-119 ms
        elif r < 0.82:
            script.append(("yield", 0))
        elif r < 0.95:
            script.append(("turn", 0))
        else:
            # A barge-in in a later loop iteration than the audio before it (in the same
            # one, a whole message sent from the event went out first: one iteration
            # earlier than the pacer task would, and Twilio drops it with the clear).
            script += [("yield", 0), ("interrupt", 0)]
    script.append(("turn", 0))
    pcm = speech(3000, rate=24000)

    async def run(nowait: bool, media_ms: int) -> tuple[list[Any], Any]:
        async with pacing(nowait=nowait, media_ms=media_ms, lead_ms=600_000) as (
            bridge,
            call,
            phone,
        ):
            await _parked(call)
            at = 0
            for kind, size in script:
                if kind == "audio":
                    chunk = pcm[at : at + size] or pcm[:size]
                    at = (at + size) % len(pcm)
                    await call._events(ev.ModelAudio(data=chunk))
                elif kind == "yield":
                    await asyncio.sleep(0)
                elif kind == "turn":
                    await call._events(ev.TurnComplete())
                else:
                    await call._events(ev.Interrupted())
            await bridge.wait_until(lambda: not call._queue, within=10)
            info = call.info
            return phone.messages, (info.sent_ms, info.heard_ms, info.marks_sent)

    for media_ms in (20, 100):
        fast = await run(True, media_ms)
        assert fast == await run(False, media_ms)
        assert any(m["event"] == "media" for m in fast[0])


async def test_a_message_the_no_wait_send_refuses_goes_the_waiting_way_in_order() -> None:
    async with pacing(media_ms=20) as (bridge, call, phone):
        reference_phone = phone
        await _parked(call)
        await _reply(call, 4)
        await _played(bridge, call)
    for refuse in ({1}, {2}, {3, 4}):
        async with pacing(media_ms=20) as (bridge, call, _):
            phone = _Refusing(refuse)
            phone.call = call
            call._send_nowait = phone.send_nowait
            call._send = phone.send
            await _parked(call)
            await _reply(call, 4)
            await _played(bridge, call)
        assert phone.messages == reference_phone.messages
        # Each refused message was sent again by the pacer task (no-wait once more, else
        # the ASGI send: the case of two refusals in a row).
        assert phone.attempts == len(phone.via_nowait) + len(refuse)
        assert len(phone.via_send) == (refuse == {3, 4})


async def test_a_held_message_is_dropped_by_a_barge_in() -> None:
    async with pacing(media_ms=20) as (bridge, call, _):
        phone = _Refusing({1})
        phone.call = call
        call._send_nowait = phone.send_nowait
        call._send = phone.send
        await _parked(call)
        await call._events(ev.ModelAudio(data=REPLY))  # its one frame: refused, held
        assert call._held is not None and not phone.messages
        await call._events(ev.Interrupted())  # before the pacer took it
        await call._events(ev.ModelAudio(data=REPLY))
        await call._events(ev.TurnComplete())
        await _played(bridge, call, reply=2)
        events = [m["event"] for m in phone.messages]
        assert events[0] == "clear" and call.info.sent_ms[1] == 0  # none of reply 1 went


async def test_an_error_in_the_deferred_send_ends_the_pacer_task() -> None:
    # A short message goes from a loop callback; what goes wrong there comes out of the
    # pacer task (the call ends on it), not out of the loop's exception handler.
    async with pacing(media_ms=100) as (_bridge, call, phone):
        await _parked(call)

        def broken(data: bytes | str) -> bool:
            raise RuntimeError("socket exploded")

        call._send_nowait = broken
        await call._events(ev.ModelAudio(data=REPLY))
        assert phone.pacer is not None
        async with asyncio.timeout(5):
            with pytest.raises(RuntimeError, match="socket exploded"):
                await phone.pacer
        assert not phone.messages


@pytest.mark.parametrize("sid_field", ["streamSid", "stream_id", 'odd"key%s'])
async def test_pre_encoded_messages_are_the_json_encoders_bytes(sid_field: str) -> None:
    # (The Telnyx bridge names the field its own way: a class attribute.)
    async with pacing() as (_bridge, call, _phone):
        call._sid_key = sid_field
        call.info.stream_sid = 'MZ"\\é1'
        name_before = call.info.marks_sent
        text = call._mark_text(3, 240)
        assert call.info.marks_sent == name_before + 1
        (name,) = [k for k, v in call._marks.items() if v == (3, 240)]
        sid = call.info.stream_sid
        expected = {"event": "mark", sid_field: sid, "mark": {"name": name}}
        assert text == _twilio._encode(expected).decode()
        seg = _twilio._Segment(3, bytearray(b"\xff" * 200))
        media, n, last = call._cut(seg)
        payload = base64.b64encode(b"\xff" * 160).decode()
        assert (n, last) == (1, False)
        expected = {"event": "media", sid_field: sid, "media": {"payload": payload}}
        assert media == _twilio._encode(expected).decode()
