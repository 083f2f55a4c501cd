"""The caller's audio goes upstream in writes of ``upstream_ms`` (by default 100 with the
bridge's VAD, 40 with the service's turn detection: two carrier frames a write):
nothing dropped or reordered, the frames held back go out before a turn edge, a mark, a
key press, barge-in and the end of the call."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from gemini_live import events as ev
from gemini_live._bridge import ON_MESSAGE_EXTENSION, PeerClose
from gemini_live.audio import pcm16_to_ulaw, ulaw_to_pcm16
from gemini_live.errors import ConfigError
from gemini_live.telephony import TwilioBridge, _twilio
from gemini_live.vad import ActivityDetector

from .test_twilio import fake_config

Handler = Callable[[bytes | str], bool]
Log = list[tuple[str, bytes]]


class _Session:
    """A session stub that records, in order, what reaches it; its no-wait write refuses
    the chunks whose numbers are in ``refuse`` (as under backpressure)."""

    def __init__(self, refuse: tuple[int, ...] = ()) -> None:
        self.log: Log = []
        self.refuse = refuse
        self._tries = 0

    def send_audio_nowait(self, pcm: bytes, *, sample_rate: int | None = None) -> bool:
        self._tries += 1
        if self._tries in self.refuse:
            return False
        self.log.append(("audio", pcm))
        return True

    async def send_audio(self, pcm: object, *, sample_rate: int | None = None) -> None:
        await asyncio.sleep(0)  # it may wait
        assert isinstance(pcm, bytes)
        self.log.append(("audio", pcm))

    async def send_activity_start(self) -> None:
        self.log.append(("start", b""))

    async def send_activity_end(self) -> None:
        self.log.append(("end", b""))

    async def send_audio_stream_end(self) -> None:
        self.log.append(("stream_end", b""))


def _media(frame: bytes) -> str:
    return json.dumps({"event": "media", "media": {"payload": base64.b64encode(frame).decode()}})


def _mark(name: str) -> str:
    return json.dumps({"event": "mark", "mark": {"name": name}})


async def _run(
    messages: list[str], session: _Session, inline: bool = True, **options: Any
) -> _twilio._Call:
    """One call of a bridge with ``options`` fed ``messages`` (ending with ``stop``) as
    the server does: inline while nothing is queued (unless ``inline`` is False), the
    rest through the task that receives."""
    handlers: list[Handler | None] = []
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(_message: Any) -> None:
        pass

    extensions = {ON_MESSAGE_EXTENSION: handlers.append} if inline else {}
    scope = {"type": "websocket", "headers": [], "query_string": b"", "extensions": extensions}
    bridge = TwilioBridge(fake_config(None), insecure_no_signature=True, **options)  # type: ignore[arg-type]
    call = _twilio._Call(bridge, scope, inbox.get, send)
    call._setup_input(session)
    call.session = session  # type: ignore[assignment]
    entry = handlers[0] if inline and call.receive_inline() else None
    for text in messages:
        if entry is not None and not inbox.qsize() and entry(text):
            continue
        inbox.put_nowait({"type": "websocket.receive", "text": text})
    async with asyncio.timeout(5):
        with pytest.raises(PeerClose) as caught:
            await call._inbound(session)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.reason) == (1000, "call ended")
    return call


def _frames(n: int, level: int = 3) -> list[bytes]:
    return [bytes([(i * 16 + level) & 0x7F]) * 160 for i in range(n)]


def _audio(log: Log) -> list[bytes]:
    return [pcm for kind, pcm in log if kind == "audio"]


@pytest.mark.parametrize("inline", [True, False])
async def test_two_frames_a_write_and_the_odd_one_at_the_stop(inline: bool) -> None:
    frames = _frames(7)
    session = _Session()
    await _run([*map(_media, frames), '{"event":"stop"}'], session, inline, turn_detection="server")
    pcm = [ulaw_to_pcm16(f) for f in frames]
    assert _audio(session.log) == [pcm[0] + pcm[1], pcm[2] + pcm[3], pcm[4] + pcm[5], pcm[6]]


async def test_upstream_ms_20_writes_every_frame_and_60_three() -> None:
    frames = _frames(7)
    pcm = [ulaw_to_pcm16(f) for f in frames]
    messages = [*map(_media, frames), '{"event":"stop"}']
    session = _Session()
    await _run(messages, session, turn_detection="server", upstream_ms=20)
    assert _audio(session.log) == pcm
    session = _Session()
    await _run(messages, session, turn_detection="server", upstream_ms=60)
    assert _audio(session.log) == [b"".join(pcm[0:3]), b"".join(pcm[3:6]), pcm[6]]


@pytest.mark.parametrize("refuse", [(1,), (2,), (1, 2, 3)])
async def test_a_write_that_has_to_wait_keeps_the_order(refuse: tuple[int, ...]) -> None:
    frames = _frames(6)
    session = _Session(refuse)
    await _run([*map(_media, frames), '{"event":"stop"}'], session, turn_detection="server")
    pcm = [ulaw_to_pcm16(f) for f in frames]
    assert _audio(session.log) == [pcm[0] + pcm[1], pcm[2] + pcm[3], pcm[4] + pcm[5]]


@pytest.mark.parametrize("inline", [True, False])
async def test_a_mark_and_a_key_press_send_the_held_frame(inline: bool) -> None:
    frames = _frames(3)
    pcm = [ulaw_to_pcm16(f) for f in frames]
    session = _Session()

    def on_dtmf(_call: Any, digit: str, _session: Any) -> None:
        session.log.append(("dtmf", digit.encode()))

    messages = [
        _media(frames[0]),
        _mark("r1-1"),
        _media(frames[1]),
        _media(frames[2]),
        json.dumps({"event": "dtmf", "dtmf": {"digit": "5"}}),
        '{"event":"stop"}',
    ]
    await _run(messages, session, inline, turn_detection="server", on_dtmf=on_dtmf)
    assert session.log == [("audio", pcm[0]), ("audio", pcm[1] + pcm[2]), ("dtmf", b"5")]


async def test_a_held_mark_flush_that_has_to_wait_finishes_in_order() -> None:
    frames = _frames(2)
    pcm = [ulaw_to_pcm16(f) for f in frames]
    session = _Session(refuse=(1,))  # the mark's flush cannot be written at once
    messages = [_media(frames[0]), _mark("r1-1"), *map(_media, frames), '{"event":"stop"}']
    await _run(messages, session, turn_detection="server")
    assert _audio(session.log) == [pcm[0], pcm[0] + pcm[1]]


def _speech_frames() -> list[bytes]:
    loud = pcm16_to_ulaw(b"\x00\x30" * 160)  # about -8 dBFS
    quiet = bytes([0xFF]) * 160  # mu-law zero
    return [quiet] * 5 + [loud] * 9 + [quiet] * 9 + [loud] * 5 + [quiet] * 8


async def test_turn_edges_see_the_same_audio_before_them() -> None:
    """With the VAD, each ``activityStart``/``activityEnd`` comes after exactly the
    audio it comes after with one write per frame: the held frame goes first."""

    def detector() -> ActivityDetector:
        return ActivityDetector(sample_rate=8000, start_ms=40, end_ms=100, pre_roll_ms=60)

    messages = [*map(_media, _speech_frames()), '{"event":"stop"}']
    logs: dict[int, Log] = {}
    for ms in (20, 40, 100):
        session = _Session()
        await _run(messages, session, detector=detector, upstream_ms=ms)
        logs[ms] = session.log
    session = _Session()
    await _run(messages, session, detector=detector)  # the VAD's default: 100
    assert session.log == logs[100]

    def turns(log: Log) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        for kind, pcm in log:
            if kind == "audio" and out and out[-1][0] == "audio":
                out[-1] = ("audio", out[-1][1] + pcm)
            else:
                out.append((kind, pcm))
        return out

    assert [k for k, _ in turns(logs[20])] == ["start", "audio", "end"] * 2
    for ms in (40, 100):
        assert turns(logs[ms]) == turns(logs[20])
    assert len(_audio(logs[100])) < len(_audio(logs[40])) < len(_audio(logs[20]))
    # Only the write just before an edge (or the call's end) may be shorter.
    for ms in (40, 100):
        for i, (kind, pcm) in enumerate(logs[ms]):
            nxt = logs[ms][i + 1][0] if i + 1 < len(logs[ms]) else "end"
            if kind == "audio" and nxt == "audio":
                assert len(pcm) >= 16 * ms  # 8 kHz PCM16


def test_upstream_ms_defaults_to_100_with_the_vad_and_40_with_the_service() -> None:
    vad = TwilioBridge(fake_config(None), insecure_no_signature=True)  # type: ignore[arg-type]
    server = TwilioBridge(fake_config(None), insecure_no_signature=True, turn_detection="server")  # type: ignore[arg-type]
    assert (vad.upstream_ms, server.upstream_ms) == (100, 40)
    given = TwilioBridge(fake_config(None), insecure_no_signature=True, upstream_ms=60)  # type: ignore[arg-type]
    assert given.upstream_ms == 60


def _held_call(session: _Session, send: Any) -> tuple[_twilio._Call, _twilio._Upstream]:
    """A call (server turn detection) writing to ``session``, its upstream buffer, and
    ``send`` for what goes to the carrier: for the barge-in tests."""
    bridge = TwilioBridge(fake_config(None), insecure_no_signature=True, turn_detection="server")  # type: ignore[arg-type]
    scope = {"type": "websocket", "headers": [], "query_string": b""}
    call = _twilio._Call(bridge, scope, None, send)  # type: ignore[arg-type]
    call._setup_input(session)
    call.session = session  # type: ignore[assignment]
    upstream = call._upstream
    assert upstream is not None
    return call, upstream


async def test_barge_in_sends_the_held_frame_first() -> None:
    frames = _frames(1)
    session = _Session()
    sent: list[str] = []

    async def send(message: Any) -> None:
        sent.append(message.get("text", ""))

    call, upstream = _held_call(session, send)
    assert upstream.send_audio_nowait(ulaw_to_pcm16(frames[0]))
    assert session.log == []  # held: half of a 40 ms write
    async with asyncio.timeout(5):
        await call._events(ev.Interrupted())
    assert session.log == [("audio", ulaw_to_pcm16(frames[0]))]
    assert any('"clear"' in text for text in sent)


@pytest.mark.parametrize("bad", [0, 10, 30, 220, True, 40.0])
def test_upstream_ms_is_checked(bad: Any) -> None:
    with pytest.raises(ConfigError, match="upstream_ms"):
        TwilioBridge(fake_config(None), insecure_no_signature=True, upstream_ms=bad)  # type: ignore[arg-type]


async def test_barge_in_never_lets_a_later_frame_pass_the_held_one() -> None:
    # The session cannot take the held frame at once: it stays first in the next write.
    frames = [ulaw_to_pcm16(f) for f in _frames(2)]
    session = _Session(refuse=(1,))

    async def send(_message: Any) -> None:
        pass

    call, upstream = _held_call(session, send)
    assert upstream.send_audio_nowait(frames[0])
    async with asyncio.timeout(5):
        await call._events(ev.Interrupted())
    assert session.log == []
    assert upstream.send_audio_nowait(frames[1])
    assert _audio(session.log) == [frames[0] + frames[1]]
