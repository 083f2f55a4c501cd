"""Media helpers: paced audio sending, JPEG frames with bounds, fps cap, screen, speaker."""

from __future__ import annotations

import asyncio
import io
import sys
import types
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

import gemini_live as gl
from gemini_live.audio import PlaybackBuffer
from gemini_live.errors import ConfigError
from gemini_live.media import (
    Speaker,
    VideoSender,
    encode_jpeg,
    microphone,
    screen_frames,
    stream_audio,
)
from gemini_live.testing import FakeLiveServer
from gemini_live.types import UNSET


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.audio: list[tuple[float, int]] = []
        self.video: list[bytes] = []
        self.ends = 0
        self.delay = delay

    async def send_audio(self, pcm: object, *, sample_rate: int | None = None) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow connection
        assert isinstance(pcm, (bytes, bytearray, memoryview))
        self.audio.append((asyncio.get_running_loop().time(), len(pcm)))

    async def send_audio_stream_end(self) -> None:
        self.ends += 1

    async def send_video(self, frame: bytes, *, mime_type: str = "image/jpeg") -> None:
        assert mime_type == "image/jpeg"
        self.video.append(frame)


async def test_stream_audio_paces_in_real_time() -> None:
    rec = Recorder()
    pcm = bytes(16000 * 2 * 300 // 1000)  # 300 ms
    stats = await stream_audio(rec, pcm, chunk_ms=20, end_of_stream=True)
    assert stats.chunks == 15 and stats.bytes == len(pcm) and rec.ends == 1
    assert stats.audio_seconds == pytest.approx(0.3)
    t0 = rec.audio[0][0]
    for i, (t, n) in enumerate(rec.audio):
        assert n == 640
        assert t - t0 >= i * 0.020 - 0.002  # never ahead of real time
    assert stats.wall_seconds >= 0.28 - 0.002


async def test_stream_audio_fast_iterables_and_backpressure() -> None:
    rec = Recorder()
    stats = await stream_audio(rec, [bytes(640)] * 50, realtime=False)
    assert stats.chunks == 50 and stats.wall_seconds < 0.5

    async def gen() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield bytes(640)

    slow = Recorder(delay=0.03)  # each send takes longer than the 20 ms of audio
    stats = await stream_audio(slow, gen())
    assert stats.chunks == 5 and stats.max_lag > 0  # it waited for the sends: no pile-up
    with pytest.raises(ConfigError, match="takes PCM16 bytes"):
        await stream_audio(rec, 42)
    with pytest.raises(ConfigError):
        await stream_audio(rec, b"\x00\x01", chunk_ms=0)


async def test_stream_audio_into_a_session() -> None:
    async with FakeLiveServer() as server, gl.connect(url=server.url) as session:
        stats = await stream_audio(session, bytes(6400), end_of_stream=True)
        assert stats.chunks == 10  # 200 ms in 20 ms chunks
        async with asyncio.timeout(10):
            async for event in session:
                if isinstance(event, gl.events.TurnComplete):
                    break
        assert len(server.connections[0].audio) == 6400
        last = server.received[0][-1].realtime_input
        assert last is not UNSET and last.audio_stream_end is True


def _decode(jpeg: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG"
    return img


def test_encode_jpeg_bounds() -> None:
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, size=(1080, 1920, 3), dtype=np.uint8)  # worst case: noise
    jpeg = encode_jpeg(frame, max_side=1024, max_bytes=200_000)
    assert len(jpeg) <= 200_000
    assert max(_decode(jpeg).size) <= 1024
    small = encode_jpeg(np.zeros((100, 50), dtype=np.uint8))
    assert _decode(small).size == (50, 100)  # never upscaled
    rgba = encode_jpeg(np.ones((64, 64, 4), dtype=np.float32))
    assert _decode(rgba).mode == "RGB"
    pil = encode_jpeg(Image.new("RGB", (3000, 1000), "red"), max_side=600)
    assert _decode(pil).size == (600, 200)
    for bad in ("x", np.zeros((4, 4, 2), dtype=np.uint8), np.zeros((4, 4), dtype=np.int32)):
        with pytest.raises(ConfigError):
            encode_jpeg(bad)
    with pytest.raises(ConfigError):
        encode_jpeg(frame, quality=99)


async def test_video_sender_fps_cap_pause_resume() -> None:
    now = [100.0]
    rec = Recorder()
    sender = VideoSender(rec, fps=1.0, clock=lambda: now[0])
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    assert await sender.send(frame) is True
    now[0] += 0.5
    assert await sender.send(frame) is False  # too soon
    now[0] += 0.5
    assert await sender.send(frame) is True
    sender.pause()
    now[0] += 5
    assert await sender.send(frame) is False
    sender.resume()
    assert await sender.send(frame) is True
    assert (sender.sent, sender.skipped, sender.paused_frames) == (3, 1, 1)
    assert len(rec.video) == 3 and _decode(rec.video[0]).size == (64, 48)
    with pytest.raises(ConfigError):
        VideoSender(rec, fps=0)


async def test_video_into_a_session() -> None:
    async with FakeLiveServer() as server, gl.connect(url=server.url) as session:
        sender = VideoSender(session)
        assert await sender.send(np.full((32, 32, 3), 200, dtype=np.uint8))
        await server.wait_for_messages(2)
        video = server.received[0][1].realtime_input
        assert video is not UNSET and video.video is not UNSET
        assert video.video.mime_type == "image/jpeg"


async def test_screen_frames_with_a_stub_grabber() -> None:
    class Shot:
        width, height = 4, 2
        bgra = bytes([10, 20, 30, 255]) * 8

    class Grabber:
        calls = 0

        def __init__(self) -> None:
            self.monitors = [None, {"left": 0, "top": 0, "width": 4, "height": 2}]

        def grab(self, area: Any) -> Shot:
            Grabber.calls += 1
            return Shot()

    frames = screen_frames(fps=30, grabber=Grabber())
    first = await anext(frames)
    await anext(frames)
    assert first.shape == (2, 4, 3) and tuple(first[0, 0]) == (30, 20, 10)  # BGRA -> RGB
    assert Grabber.calls == 2
    await frames.aclose()


def test_playback_buffer_reports_what_was_heard() -> None:
    now = [0.0]
    buf = PlaybackBuffer(24000, clock=lambda: now[0])
    assert buf.heard_before_flush is None
    buf.push(bytes(48 * 100))  # 100 ms
    frames = 0
    while frames < 3:
        if buf.read_frame() is not None:
            frames += 1
        now[0] += 0.02
    buf.flush()
    assert buf.heard_before_flush == pytest.approx(0.06)
    assert buf.played_seconds == 0.0


class _FakeStream:
    def __init__(self, callback: Any, **kw: Any) -> None:
        self.callback = callback
        self.kw = kw
        self.started: bool = False
        self.closed: bool = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> _FakeStream:
        return self

    def __exit__(self, *a: object) -> None:
        self.closed = True


async def test_speaker_and_microphone_with_a_stub_sounddevice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[_FakeStream] = []
    opened = asyncio.Event()

    def factory(**kw: Any) -> _FakeStream:
        s = _FakeStream(kw.pop("callback"), **kw)
        made.append(s)
        opened.set()
        return s

    sd = types.ModuleType("sounddevice")
    sd.RawOutputStream = factory  # type: ignore[attr-defined]
    sd.RawInputStream = factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    with Speaker() as speaker:
        out = made[-1]
        assert out.started and out.kw["samplerate"] == 24000
        speaker.on_event(gl.events.ModelAudio(bytes(4800)))  # 100 ms
        buf = bytearray(960)
        out.callback(memoryview(buf), 480, None, None)  # the card takes 20 ms
        assert speaker.playing
        speaker.on_event(gl.events.Interrupted())
        assert speaker.buffer.queued_bytes == 0
        assert speaker.buffer.heard_before_flush == pytest.approx(0.02)
    assert out.closed

    mic = microphone(chunk_ms=20)
    opened.clear()
    task = asyncio.ensure_future(anext(mic))
    async with asyncio.timeout(5):
        await opened.wait()
    made[-1].callback(b"\x01\x00" * 320, 320, None, None)
    async with asyncio.timeout(5):
        chunk = await task
    assert chunk == b"\x01\x00" * 320 and made[-1].kw["blocksize"] == 320
    await mic.aclose()


def test_speaker_heard_counts_only_the_interrupted_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[_FakeStream] = []

    def factory(**kw: Any) -> _FakeStream:
        s = _FakeStream(kw.pop("callback"), **kw)
        made.append(s)
        return s

    sd = types.ModuleType("sounddevice")
    sd.RawOutputStream = factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    E = gl.events

    def card_takes(ms: int) -> None:
        buf = bytearray(48 * ms)
        made[-1].callback(memoryview(buf), 24 * ms, None, None)

    with Speaker() as speaker:
        speaker.on_event(E.ModelAudio(bytes(4800)))  # reply 1: 100 ms
        speaker.on_event(E.TurnComplete(interaction_status="IN_PROGRESS"))  # not the end
        speaker.on_event(E.ModelAudio(bytes(4800)))  # still reply 1 (3.8 Extended Thinking)
        card_takes(150)
        assert speaker.interrupt() == pytest.approx(0.15)  # the whole answer so far
        speaker.on_event(E.ModelAudio(bytes(4800)))  # reply 1 goes on after the barge-in
        card_takes(100)
        speaker.on_event(E.TurnComplete(interaction_status="IDLE"))  # the answer is over
        speaker.on_event(E.ModelAudio(bytes(9600)))  # reply 2: 200 ms
        card_takes(60)
        assert speaker.interrupt() == pytest.approx(0.06)  # not 0.26
        speaker.on_event(E.InteractionTimeout(seconds=30.0))  # also ends an interaction
        speaker.on_event(E.ModelAudio(bytes(4800)))
        card_takes(20)
        speaker.on_event(E.TurnComplete())  # no status (before 3.8): the end
        speaker.on_event(E.ModelAudio(bytes(4800)))
        card_takes(100)  # the rest of that reply, then 20 ms of the next
        speaker.on_event(E.Interrupted())
        assert speaker.buffer.heard_before_flush == pytest.approx(0.02)
        assert speaker.interruptions == 3


async def test_session_sends_pictures_and_streams_audio_itself() -> None:
    import numpy as np

    import gemini_live as gl
    from gemini_live.testing import FakeLiveServer
    from gemini_live.types import UNSET

    async with FakeLiveServer() as server, gl.connect(url=server.url) as session:
        picture = np.zeros((64, 48, 3), dtype=np.uint8)
        await session.send_video(picture)  # a numpy frame: encoded as a bounded JPEG
        stats = await session.stream_audio(bytes(3200), realtime=False, end_of_stream=True)
        await server.wait_for_messages(1 + 1 + 5 + 1)
    msgs = server.received[0]
    video = msgs[1].realtime_input
    assert video is not UNSET and video.video is not UNSET
    assert video.video.mime_type == "image/jpeg"
    assert video.video.decoded()[:2] == b"\xff\xd8"  # a JPEG
    assert stats.chunks == 5
    last = msgs[-1].realtime_input
    assert last is not UNSET and last.audio_stream_end is True
