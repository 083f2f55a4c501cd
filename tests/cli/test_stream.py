"""``gemini-live stream FILE.wav``: any WAV in, 24 kHz mono reply out."""

from __future__ import annotations

import io
import math
import wave
from array import array
from pathlib import Path

import pytest

from gemini_live.audio import write_wav

from .conftest import CliRunner

#: What the fake server answers per turn: 3 chunks of 40 ms at 24 kHz.
REPLY_FRAMES = 3 * 40 * 24


def tone_wav(path: Path, *, seconds: float, rate: int, channels: int) -> Path:
    n = int(seconds * rate)
    samples = array(
        "h",
        (
            int(8000 * math.sin(2 * math.pi * 440 * i / rate))
            for i in range(n)
            for _ in range(channels)
        ),
    )
    write_wav(path, samples, rate, channels)
    return path


def test_stream_any_wav_writes_the_reply(run_cli: CliRunner, tmp_path: Path) -> None:
    src = tone_wav(tmp_path / "question.wav", seconds=1.0, rate=44100, channels=2)
    r = run_cli("stream", str(src), "--out", "answer.wav", timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "read question.wav: 1.000 s, 44100 Hz, 2 channel(s) -> 1.000 s at 16000 Hz mono" in out
    assert "sent 50 chunks of 20 ms (as fast as possible) + audioStreamEnd" in out
    assert "you (transcribed): 1000 ms of audio" in out
    assert "model: I heard 1000 ms of audio." in out
    assert "wrote answer.wav (0.120 s, 24000 Hz mono, 3 chunks)" in out
    assert "latency: first audio" in out
    with wave.open(str(tmp_path / "answer.wav"), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        assert w.getnframes() == REPLY_FRAMES


def test_stream_realtime_paces_the_upload(run_cli: CliRunner, tmp_path: Path) -> None:
    src = tone_wav(tmp_path / "short.wav", seconds=0.3, rate=8000, channels=1)
    r = run_cli("stream", str(src), "--realtime", "--chunk-ms", "50", timeout=30)
    assert r.returncode == 0, r.stderr
    assert "sent 6 chunks of 50 ms (paced in real time) + audioStreamEnd" in r.stdout
    assert "model: I heard 300 ms of audio." in r.stdout
    with wave.open(str(tmp_path / "reply.wav"), "rb") as w:  # the default --out
        assert w.getnframes() == REPLY_FRAMES


def test_stream_missing_or_bad_file_is_a_usage_error(run_cli: CliRunner, tmp_path: Path) -> None:
    r = run_cli("stream", "nope.wav", timeout=30)
    assert r.returncode == 2
    assert "no such file: nope.wav" in r.stderr
    (tmp_path / "text.wav").write_text("not a wav")
    r = run_cli("stream", "text.wav", timeout=30)
    assert r.returncode == 2
    assert "cannot read WAV" in r.stderr


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_and_level_meter() -> None:
    from gemini_live.cli._stream import Progress, level_dbfs

    loud = array("h", [32767, -32767] * 80).tobytes()
    assert level_dbfs(loud) == pytest.approx(0.0, abs=0.01)
    assert level_dbfs(bytes(320)) == -math.inf
    p = Progress(2.0, out=io.StringIO())
    assert p.line(1.0, -30.0) == "streaming   1.00 / 2.00 s  [##########----------] -30.0 dBFS"
    assert p.line(0.0, -math.inf).endswith("[--------------------] silence")
    # Not a terminal: about one line a second, plus the last one.
    for i in range(25):
        p.update(i / 10, loud)
    p.update(2.0, loud, final=True)
    assert isinstance(p.out, io.StringIO)
    assert len(p.out.getvalue().splitlines()) == 4  # at 0.0, 1.0 and 2.0 s, plus the final
    # A terminal: redrawn in place, a newline only at the end.
    tty = _Tty()
    t = Progress(1.0, out=tty)
    t.update(0.0, loud)
    t.update(0.5, loud)
    t.clear()  # other output is coming: erase the meter, redraw it at the next update
    t.update(0.55, loud)
    t.update(1.0, loud, final=True)
    text = tty.getvalue()
    assert text.count("\r\x1b[K") == 5 and text.endswith("dBFS\n") and text.count("\n") == 1
    assert "0.55 / 1.00 s" in text
    Progress(1.0, out=io.StringIO()).clear()  # not a terminal: nothing to erase
