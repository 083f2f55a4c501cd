"""Every CLI failure is one line on stderr and a non-zero exit; pipes and encodings work."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from array import array
from pathlib import Path

import pytest

from gemini_live.audio import write_wav

from .conftest import FAKE_KEY, CliRunner, offline_env


def one_line(stderr: str) -> str:
    """The single line a failure prints (fails when there are more, or a traceback)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def _tone_wav(path: Path, seconds: float = 0.3, rate: int = 16000) -> Path:
    n = int(seconds * rate)
    samples = array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n)))
    write_wav(path, samples, rate)
    return path


def _run_python(
    code: str, tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=30,
        stdin=subprocess.DEVNULL,
        env=env if env is not None else offline_env(),
        cwd=tmp_path,
        check=False,
    )


_CRASH = """
    import sys
    import gemini_live.cli as cli

    async def boom(args):
        raise RuntimeError("something unexpected")

    cli._runner = lambda command: boom
    sys.exit(cli.main(sys.argv[1:] or {argv!r}))
"""


def test_an_unexpected_error_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    r = _run_python(_CRASH.format(argv=["demo"]), tmp_path)
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert line == (
        "gemini-live demo: internal error: RuntimeError: something unexpected"
        " (run again with --debug for the traceback)"
    )


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    r = _run_python(_CRASH.format(argv=["--debug", "demo"]), tmp_path)
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr
    assert r.stderr.strip().endswith("internal error: RuntimeError: something unexpected")


_NO_DEVICE = """
class PortAudioError(Exception):
    pass


def query_devices(kind=None):
    raise PortAudioError("Error querying device -1")
"""


def test_talk_without_a_device_is_one_line_before_connecting(
    run_cli: CliRunner, tmp_path: Path
) -> None:
    fake = tmp_path / "fakesd"
    fake.mkdir()
    (fake / "sounddevice.py").write_text(_NO_DEVICE)
    env = offline_env(PYTHONPATH=os.pathsep.join([str(fake), *sys.path]))
    r = run_cli("talk", env=env)
    assert r.returncode == 2
    assert one_line(r.stderr) == (
        "gemini-live talk: no audio input device (microphone) found: Error querying device -1;"
        " list devices with: python -m sounddevice"
    )
    assert "connecting" not in r.stdout


def _encode(name: str, pcm: bytes, rate: int) -> bytes:
    """Hand-built WAV files in formats the stdlib ``wave`` module cannot write."""
    samples = array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    channels = 1
    if name == "float32":
        tag, bits = 3, 32
        floats = array("f", (s / 32768 for s in samples))
        if sys.byteorder == "big":
            floats.byteswap()
        data = floats.tobytes()
    elif name == "pcm24-extensible":
        tag, bits = 0xFFFE, 24
        data = b"".join(b"\x00" + (s & 0xFFFF).to_bytes(2, "little") for s in samples)
    elif name == "mulaw":
        from gemini_live.audio import pcm16_to_ulaw

        tag, bits = 7, 8
        data = pcm16_to_ulaw(pcm)
    else:  # "pcm16-3ch"
        tag, bits, channels = 1, 16, 3
        data = b"".join(pcm[i : i + 2] * 3 for i in range(0, len(pcm), 2))
    align = bits // 8 * channels
    fmt = (
        (0xFFFE if tag == 0xFFFE else tag).to_bytes(2, "little")
        + channels.to_bytes(2, "little")
        + rate.to_bytes(4, "little")
        + (rate * align).to_bytes(4, "little")
        + align.to_bytes(2, "little")
        + bits.to_bytes(2, "little")
    )
    if tag == 0xFFFE:
        guid_tail = bytes.fromhex("000000001000800000aa00389b71")
        fmt += (22).to_bytes(2, "little") + bits.to_bytes(2, "little") + (4).to_bytes(4, "little")
        fmt += (1).to_bytes(2, "little") + guid_tail
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    body += b"data" + len(data).to_bytes(4, "little") + data
    return b"RIFF" + len(body).to_bytes(4, "little") + body


@pytest.mark.parametrize("name", ["pcm24-extensible", "float32", "mulaw", "pcm16-3ch"])
def test_stream_accepts_every_wav_format(run_cli: CliRunner, tmp_path: Path, name: str) -> None:
    pcm = _tone_wav(tmp_path / "src.wav").read_bytes()[44:]
    (tmp_path / "in.wav").write_bytes(_encode(name, pcm, 16000))
    r = run_cli("stream", "in.wav", "--out", "out.wav")
    assert r.returncode == 0, r.stderr
    assert "model: I heard 300 ms of audio." in r.stdout
    assert "usage, session (1 turn)" in r.stdout


def test_stream_empty_wav_says_why(run_cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    r = run_cli("stream", "empty.wav")
    assert r.returncode == 2
    assert one_line(r.stderr) == (
        "gemini-live stream: empty.wav: cannot read WAV: the file is empty (0 bytes)"
    )
    write_wav(tmp_path / "silent.wav", b"", 16000)  # a header and no frames
    r = run_cli("stream", "silent.wav")
    assert r.returncode == 2
    assert one_line(r.stderr) == "gemini-live stream: silent.wav: the file holds no audio"


def test_stream_unsupported_wav_names_the_encoding(run_cli: CliRunner, tmp_path: Path) -> None:
    wav = bytearray(_encode("pcm16-3ch", bytes(640), 16000))
    wav[20:22] = (0x0055).to_bytes(2, "little")  # MP3 inside a WAV container
    (tmp_path / "mp3.wav").write_bytes(bytes(wav))
    r = run_cli("stream", "mp3.wav")
    assert r.returncode == 2
    assert "MP3 (format tag 0x0055) is not supported" in one_line(r.stderr)


def test_stream_realtime_shows_progress(run_cli: CliRunner, tmp_path: Path) -> None:
    _tone_wav(tmp_path / "q.wav", seconds=0.3)
    r = run_cli("stream", "q.wav", "--realtime", "--chunk-ms", "50")
    assert r.returncode == 0, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("streaming   0.30 / 0.30 s  [")
    assert last.endswith(" dBFS")


def test_chunk_ms_zero_is_refused_before_reading(run_cli: CliRunner) -> None:
    r = run_cli("stream", "does-not-exist.wav", "--chunk-ms", "0")
    assert r.returncode == 2
    assert one_line(r.stderr) == (
        "gemini-live stream: error: argument --chunk-ms: must be at least 1, got 0"
        " (see gemini-live stream --help)"
    )
    assert r.stdout == ""


def test_out_directory_is_refused_before_connecting(run_cli: CliRunner, tmp_path: Path) -> None:
    _tone_wav(tmp_path / "q.wav")
    (tmp_path / "replies").mkdir()
    r = run_cli("stream", "q.wav", "--out", "replies")
    assert r.returncode == 2
    assert one_line(r.stderr) == (
        "gemini-live stream: cannot write replies: it is a directory (give a file name)"
    )
    assert r.stdout == ""  # nothing read, nothing connected


def test_latin1_stdout_does_not_crash(run_cli: CliRunner) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "gemini_live", "demo"],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env=offline_env(PYTHONIOENCODING="latin-1"),
        check=False,
    )
    assert r.returncode == 0, r.stderr.decode("latin-1")
    assert b"1. text turn" in r.stdout
    assert r.stderr == b""


def test_demo_into_head_has_no_broken_pipe(tmp_path: Path) -> None:
    r = subprocess.run(
        f'"{sys.executable}" -m gemini_live demo | head -3',
        shell=True,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env=offline_env(),
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 0
    assert len(r.stdout.splitlines()) == 3
    assert r.stderr == ""


def test_fake_with_a_key_set_does_not_claim_there_is_no_key(run_cli: CliRunner) -> None:
    r = run_cli("--fake", "demo", env=offline_env(GEMINI_API_KEY=FAKE_KEY))
    assert r.returncode == 0, r.stderr
    assert "no GEMINI_API_KEY" not in r.stdout
    assert "the embedded fake server (offline; --fake)" in r.stdout
    assert FAKE_KEY not in r.stdout + r.stderr


def test_version_help_lists_only_its_own_options(run_cli: CliRunner) -> None:
    r = run_cli("version", "--help")
    assert r.returncode == 0
    assert "--model" not in r.stdout and "connection options" not in r.stdout
    assert "-h, --help" in r.stdout


def test_bad_numbers_are_one_line(run_cli: CliRunner) -> None:
    for args, message in (
        (["--turn-timeout", "0", "demo"], "argument --turn-timeout: must be a positive number"),
        (["talk", "--max-turns", "x"], "argument --max-turns: expected a whole number, got 'x'"),
    ):
        r = run_cli(*args)
        assert r.returncode == 2
        assert message in one_line(r.stderr)


_NOISY = """
    import logging, sys, threading
    import gemini_live.cli as cli

    async def noisy(args):
        try:
            raise ValueError("from a callback")
        except ValueError:
            logging.getLogger("gemini_live.session").exception("an on_event callback raised")
        def fail():
            raise KeyError("in a thread")
        t = threading.Thread(target=fail, name="worker")
        t.start()
        t.join()
        return 0

    cli._runner = lambda command: noisy
    sys.exit(cli.main({argv!r}))
"""


def test_logged_exceptions_and_thread_errors_are_one_line_each(tmp_path: Path) -> None:
    r = _run_python(_NOISY.format(argv=["demo"]), tmp_path)
    assert r.returncode == 0
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr
    assert len(lines) == 2, r.stderr
    assert lines[0].endswith(
        "ERROR gemini_live.session: an on_event callback raised: ValueError: from a callback"
    )
    assert lines[1] == "gemini-live: thread worker: KeyError: 'in a thread'"
    r = _run_python(_NOISY.format(argv=["--debug", "demo"]), tmp_path)
    assert r.stderr.count("Traceback") == 2  # --debug shows both
