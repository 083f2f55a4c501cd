"""``gemini-live talk`` without an audio stack: a clear message and exit 2."""

from __future__ import annotations

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
from gemini_live.cli._talk import PauseDetector, Speaker


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
    """A stand-in for the sounddevice module: a scripted microphone and a recording speaker."""

    def __init__(self, mic_script: bytes) -> None:
        self.mic_script = mic_script
        self.played = bytearray()
        self.opened: list[dict[str, object]] = []
        card = self

        class _Stream:
            def __init__(self, **kw: Any) -> None:
                card.opened.append(kw)
                self.kw = kw
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, daemon=True)

            def __enter__(self) -> _Stream:
                self._thread.start()
                return self

            def __exit__(self, *exc: object) -> None:
                self._stop.set()
                self._thread.join(5)

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


def test_pause_detector() -> None:
    d = PauseDetector(threshold=500, pause_ms=60)
    quiet, loud = bytes(640), _tone(20)
    assert d.feed(quiet) is None  # silence before speech is not a pause
    assert d.feed(loud) == "speech"
    assert [d.feed(quiet) for _ in range(3)] == [None, None, "pause"]
    assert d.feed(quiet) is None  # one pause per utterance


def test_speaker_flushes_on_interrupted() -> None:
    sp = Speaker()
    sp.on_event(ev.ModelAudio(_tone(100, 24000)))
    assert sp.buffer.queued_seconds == pytest.approx(0.1)
    out = bytearray(480 * 2)
    sp.callback(out, 480, None, None)
    assert any(out)
    dropped = sp.on_event(ev.Interrupted())
    assert dropped == pytest.approx(0.08)
    assert sp.buffer.queued_bytes == 0 and sp.interruptions == 1
    silent = bytearray(b"\x01" * 960)
    sp.callback(silent, 480, None, None)
    assert not any(silent)
    sp.on_event(ev.ModelAudio(_tone(20, 16000), sample_rate=16000))  # resampled to 24 kHz
    assert sp.buffer.queued_bytes == 960
