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
    assert "sent activityStart + 50 chunks of 20 ms (as fast as possible) + activityEnd" in out
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
    assert "sent activityStart + 6 chunks of 50 ms (paced in real time) + activityEnd" in r.stdout
    assert "model: I heard 300 ms of audio." in r.stdout
    with wave.open(str(tmp_path / "reply.wav"), "rb") as w:  # the default --out
        assert w.getnframes() == REPLY_FRAMES


def two_bursts_wav(path: Path) -> Path:
    """Speech (0.5 s), a pause (0.6 s: longer than the fake's 300 ms end of speech), speech
    (0.5 s) at 16 kHz mono."""
    rate = 16000

    def tone(seconds: float) -> list[int]:
        return [
            int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate))
        ]

    samples = array("h", tone(0.5) + [0] * int(0.6 * rate) + tone(0.5))
    write_wav(path, samples, rate, 1)
    return path


def test_stream_answers_the_whole_file_as_one_turn(run_cli: CliRunner, tmp_path: Path) -> None:
    src = two_bursts_wav(tmp_path / "pause.wav")
    r = run_cli("stream", str(src), timeout=30)
    assert r.returncode == 0, r.stderr
    # The pause does not split the file: activity detection is off, one bracketed turn.
    assert "model: I heard 1600 ms of audio." in r.stdout, r.stdout
    assert "reply 2" not in r.stdout and "answered" not in r.stdout
    assert "latency: first audio" in r.stdout
    with wave.open(str(tmp_path / "reply.wav"), "rb") as w:
        assert w.getnframes() == REPLY_FRAMES


def test_stream_server_vad_saves_every_reply(run_cli: CliRunner, tmp_path: Path) -> None:
    src = two_bursts_wav(tmp_path / "pause.wav")
    r = run_cli("stream", str(src), "--server-vad", timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "sent 80 chunks of 20 ms (as fast as possible) + audioStreamEnd" in out
    assert "model (reply 1): I heard 500 ms of audio." in out, out
    assert "model (reply 2): I heard 500 ms of audio." in out
    assert "the model answered 2 times" in out
    assert "wrote reply.wav (0.240 s, 24000 Hz mono, 6 chunks, 2 replies)" in out
    # Every latency line has a number (the first reply came while the file was still
    # being sent: no end of input to measure from, said in words, not dashes).
    lines = [line for line in out.splitlines() if "latency:" in line]
    assert len(lines) == 2
    assert all("—" not in line for line in lines), lines
    with wave.open(str(tmp_path / "reply.wav"), "rb") as w:
        assert w.getnframes() == 2 * REPLY_FRAMES


def test_latency_line_never_all_dashes() -> None:
    from gemini_live.cli._stream import latency_line
    from gemini_live.metrics import TurnLatency

    assert latency_line(None) == "latency: not measured"
    no_input = TurnLatency(1, first_audio=1.0, turn_complete=2.0)
    assert latency_line(no_input).startswith("latency: not measured (")
    measured = TurnLatency(1, input_end=1.0, first_audio=1.2, turn_complete=1.5)
    assert latency_line(measured) == "latency: first audio 200 ms, turn complete 500 ms"


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
