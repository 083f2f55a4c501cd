"""``gemini-live talk`` without an audio stack: a clear message and exit 2."""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import math
import sys
import threading
from array import array
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import pytest

from gemini_live import events as ev
from gemini_live.cli import main
from gemini_live.cli._talk import MIC_MS, PAUSE_MS
from gemini_live.media import Speaker
from gemini_live.vad import ActivityDetector, ActivitySender


def _check(capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["talk"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    assert "pip install 'gemini-live[audio]'" in err
    assert "PortAudio" in err
    return err


def test_talk_without_sounddevice_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import -> ImportError
    assert "import of sounddevice halted" in _check(capsys)


class _NoPortAudio(importlib.abc.MetaPathFinder):
    """sounddevice raises OSError on import when the PortAudio library is missing."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_talk_without_portaudio_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    assert "PortAudio library not found" in _check(capsys)


# --------------------------------------------------------------------------- with a fake sound card


def _tone(ms: int, rate: int = 16000, amplitude: int = 8000) -> bytes:
    n = rate * ms // 1000
    samples = array(
        "h", (int(amplitude * math.sin(2 * math.pi * 300 * i / rate)) for i in range(n))
    )
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


class _FakeCard:
    """A stand-in for the sounddevice module: a scripted microphone and a recording speaker.

    Streams run their callbacks on a thread of their own, 10x faster than real time, like
    a sound card (``auto=False``: the test pulls speaker blocks itself with :meth:`pull`).
    """

    def __init__(self, mic_script: bytes, *, auto: bool = True) -> None:
        self.mic_script = mic_script
        self.played = bytearray()
        self.opened: list[dict[str, object]] = []
        self.streams: list[Any] = []
        card = self

        class _Stream:
            def __init__(self, **kw: Any) -> None:
                card.opened.append(kw)
                card.streams.append(self)
                self.kw = kw
                self.active = False
                self.closed = False
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, daemon=True)

            # The sounddevice stream API: start/stop/close, or a context manager.
            def start(self) -> None:
                self.active = True
                if auto:
                    self._thread.start()

            def stop(self) -> None:
                self.active = False
                self._stop.set()
                if self._thread.is_alive():
                    self._thread.join(5)

            def close(self) -> None:
                self.closed = True

            def __enter__(self) -> _Stream:
                self.start()
                return self

            def __exit__(self, *exc: object) -> None:
                self.stop()
                self.close()

            def _run(self) -> None:
                raise NotImplementedError

        class RawInputStream(_Stream):
            def _run(self) -> None:
                size = int(self.kw["blocksize"]) * 2
                data = card.mic_script
                pos = 0
                # 10x faster than real time; silence once the script is over.
                while not self._stop.wait(0.002):
                    chunk = data[pos : pos + size]
                    pos += size
                    chunk += bytes(size - len(chunk))
                    self.kw["callback"](chunk, size // 2, None, None)

        class RawOutputStream(_Stream):
            def _run(self) -> None:
                frames = int(self.kw["blocksize"])
                while not self._stop.wait(0.002):
                    out = bytearray(frames * 2)
                    self.kw["callback"](out, frames, None, None)
                    card.played += out

        self.module = ModuleType("sounddevice")
        self.module.RawInputStream = RawInputStream  # type: ignore[attr-defined]
        self.module.RawOutputStream = RawOutputStream  # type: ignore[attr-defined]
        self.module.query_devices = lambda kind: {"name": f"fake {kind}"}  # type: ignore[attr-defined]

    def pull(self, frames: int) -> bytes:
        """What the speaker plays in the next ``frames`` (the open output stream's callback)."""
        (out_stream,) = [
            s for s in self.streams if "RawOutputStream" in type(s).__name__ and s.active
        ]
        out = bytearray(frames * 2)
        out_stream.kw["callback"](out, frames, None, None)
        self.played += out
        return bytes(out)


def test_talk_round_trip_with_a_fake_sound_card(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    card = _FakeCard(_tone(400))  # 0.4 s of "speech", then silence
    monkeypatch.setitem(sys.modules, "sounddevice", card.module)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    rc = main(["talk", "--max-turns", "1", "--turn-timeout", "20"])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "offline fake server" in out
    assert "you: " in out and " ms of audio" in out  # the fake's input transcription
    assert "model: I heard" in out, out
    assert "[first audio" in out
    assert "usage, session (1 turn)" in out, out
    # Mic at 16 kHz, speaker at 24 kHz, 20 ms blocks, PCM16 mono.
    rates = sorted((kw["samplerate"], kw["blocksize"]) for kw in card.opened)
    assert rates == [(16000, 320), (24000, 480)]
    assert all(kw["channels"] == 1 and kw["dtype"] == "int16" for kw in card.opened)
    assert any(card.played), f"the reply never reached the speaker:\n{out}"


class _Recorder:
    """A session that records what the microphone side sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_audio(self, pcm: object, *, sample_rate: int | None = None) -> None:
        self.sent.append("audio")

    async def send_activity_start(self) -> None:
        self.sent.append("activity_start")

    async def send_activity_end(self) -> None:
        self.sent.append("activity_end")

    async def send_audio_stream_end(self) -> None:
        self.sent.append("stream_end")


async def test_talk_turn_taking_sends_all_audio_and_one_stream_end_per_pause() -> None:
    """What talk's uplink does: the service's VAD decides, the client flushes on a pause."""
    rec = _Recorder()
    sender = ActivitySender(
        rec, ActivityDetector(frame_ms=MIC_MS, end_ms=PAUSE_MS), mode="stream_end"
    )
    quiet, loud = bytes(640), _tone(MIC_MS)
    pause_chunks = PAUSE_MS // MIC_MS
    for _ in range(3 * pause_chunks):  # silence before speech is not a pause
        await sender.feed(quiet)
    assert rec.sent == ["audio"] * (3 * pause_chunks)
    for _ in range(5):
        await sender.feed(loud)
    for _ in range(pause_chunks - 1):
        await sender.feed(quiet)
    assert "stream_end" not in rec.sent  # a shorter pause keeps the utterance open
    await sender.feed(quiet)
    assert rec.sent[-2:] == ["audio", "stream_end"]
    for _ in range(3 * pause_chunks):
        await sender.feed(quiet)
    assert rec.sent.count("stream_end") == 1  # one per utterance
    assert rec.sent.count("audio") == 3 * pause_chunks + 5 + pause_chunks + 3 * pause_chunks


def test_speaker_flushes_on_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speaker talk uses (gemini_live.media.Speaker): barge-in silences it at once."""
    card = _FakeCard(b"", auto=False)
    monkeypatch.setitem(sys.modules, "sounddevice", card.module)
    with Speaker(block_ms=20) as sp:
        assert card.opened[-1]["blocksize"] == 480 and card.opened[-1]["samplerate"] == 24000
        sp.on_event(ev.ModelAudio(_tone(100, 24000)))
        assert sp.queued_seconds == pytest.approx(0.1)
        assert any(card.pull(480))
        sp.on_event(ev.Interrupted())
        assert sp.last_dropped_seconds == pytest.approx(0.08)
        assert sp.buffer.heard_before_flush == pytest.approx(0.02)
        assert sp.queued_seconds == 0 and sp.interruptions == 1 and not sp.playing
        assert not any(card.pull(480))  # silence right after the barge-in
        sp.on_event(ev.ModelAudio(_tone(20, 16000), sample_rate=16000))  # resampled to 24 kHz
        assert sp.buffer.queued_bytes == 960
    assert card.streams[-1].closed


async def test_speaker_drain_waits_for_the_card(monkeypatch: pytest.MonkeyPatch) -> None:
    card = _FakeCard(b"", auto=False)
    monkeypatch.setitem(sys.modules, "sounddevice", card.module)
    with Speaker() as sp:
        assert await sp.drain(1.0)  # nothing queued
        sp.play(_tone(40, 24000))
        waiter = asyncio.ensure_future(sp.drain(30.0))
        await asyncio.sleep(0)
        assert not waiter.done()
        card.pull(480)
        await asyncio.sleep(0)
        assert not waiter.done()  # half of it still queued
        await asyncio.to_thread(card.pull, 480)  # the card's own thread empties it
        async with asyncio.timeout(5):
            assert await waiter
        sp.play(_tone(40, 24000))
        assert not await sp.drain(0.01)  # nobody plays it: times out, says so


@pytest.mark.parametrize("stream", ["RawInputStream", "RawOutputStream"])
def test_talk_device_failure_is_one_clear_line(
    stream: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    card = _FakeCard(_tone(400))

    class PortAudioError(Exception):
        pass

    def broken(**kw: Any) -> Any:
        raise PortAudioError(f"Error opening {stream}: Device unavailable [PaErrorCode -9985]")

    card.module.PortAudioError = PortAudioError  # type: ignore[attr-defined]
    setattr(card.module, stream, broken)
    monkeypatch.setitem(sys.modules, "sounddevice", card.module)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    assert main(["talk", "--max-turns", "1", "--turn-timeout", "20"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "the audio device failed" in lines[0] and "Device unavailable" in lines[0]


def test_talk_barge_in_interrupts_the_reply_with_a_fake_sound_card(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Speaking over the model: the fake server interrupts, talk silences the speaker."""
    import gemini_live.testing as testing

    class PacedFake(testing.FakeLiveServer):
        # A 2 s reply that plays out in the microphone's time, so the user can talk over it.
        def __init__(self, **kw: Any) -> None:
            super().__init__(reply_chunks=50, paced_by_input=True, **kw)

    monkeypatch.setattr(testing, "FakeLiveServer", PacedFake)
    # Speech, a pause the service's VAD ends the turn on (300 ms) but shorter than talk's
    # own PAUSE_MS (no audioStreamEnd, which would release the whole reply), then speech
    # over the reply, then quiet.
    script = _tone(400) + bytes(16 * 400 * 2) + _tone(400)
    card = _FakeCard(script)
    monkeypatch.setitem(sys.modules, "sounddevice", card.module)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    # No echo cancellation here: the fake card has no echo path, and a canceller that has
    # not converged yet (the first seconds of the first reply) damps a user talking over it.
    rc = main(["talk", "--max-turns", "2", "--turn-timeout", "20", "--no-aec"])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "interrupted: heard " in out, out
    assert out.count("you: ") == 2, out  # both utterances reached the service
    assert out.index("interrupted: heard ") < out.rindex("you: "), out  # during reply 1
    assert any(card.played), out


# --------------------------------------------------------------------------- echo cancellation


def _run_talk(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[str, _FakeCard]:
    card = _FakeCard(_tone(400))
    monkeypatch.setitem(sys.modules, "sounddevice", card.module)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    rc = main(["talk", "--max-turns", "1", "--turn-timeout", "20", *argv])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "model: I heard" in out, out
    return out, card


def test_talk_cancels_echo_by_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("livekit.rtc")
    from gemini_live.audio import EchoCanceller

    made: list[EchoCanceller] = []
    references: list[int] = []

    class Recording(EchoCanceller):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            made.append(self)

        def playback(self, pcm: object) -> None:
            references.append(len(pcm))  # type: ignore[arg-type]
            super().playback(pcm)

    monkeypatch.setattr("gemini_live.cli._talk.EchoCanceller", Recording)
    out, card = _run_talk([], monkeypatch, capsys)
    assert "echo cancellation on (--no-aec turns it off)" in out
    (aec,) = made
    assert (aec.rate, aec.far_rate) == (16000, 24000)
    # Every speaker block is the reference; every microphone chunk went through it.
    assert references and set(references) == {960}
    assert aec.frames >= 40  # the 0.4 s of speech alone is 40 frames
    assert "us CPU per 10 ms frame" in out
    assert any(card.played)


def test_talk_no_aec_sends_the_microphone_as_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*a: Any, **kw: Any) -> None:
        raise AssertionError("--no-aec made an echo canceller")

    monkeypatch.setattr("gemini_live.cli._talk.EchoCanceller", refuse)
    out, _ = _run_talk(["--no-aec"], monkeypatch, capsys)
    assert "echo cancellation off (--no-aec): use headphones" in out
    assert "us CPU per 10 ms frame" not in out


def test_talk_without_the_aec_extra_says_so_and_talks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "livekit", None)
    out, _ = _run_talk([], monkeypatch, capsys)
    assert "echo cancellation unavailable (install the aec extra: pip install" in out
    assert "gemini-live[aec]" in out
