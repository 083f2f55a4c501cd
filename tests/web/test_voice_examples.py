"""Every example in examples/voice runs offline (no GEMINI_API_KEY) against FakeLiveServer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VOICE = Path(__file__).resolve().parents[2] / "examples" / "voice"

CASES = {
    "web_relay_app.py": [
        "input_transcript: 1500 ms of audio",
        "reply audio: 0.12 s at 24 kHz",
        "relay: 1 connection(s), closes {'closed by the browser': 1}",
    ],
    "twilio_bridge.py": [
        "caller pressed 1",
        "caller heard 6 frames of 20 ms mu-law",
        "call ended: 1 turn(s); heard reply 1: 120 ms; marks 1",
    ],
    "screen_share.py": ["frames offered 24, sent ", "model: You said: What is on my screen?"],
}


def test_every_voice_example_is_covered() -> None:
    assert sorted(p.name for p in VOICE.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_voice_example_runs_offline(name: str, tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_MODEL")
    }
    r = subprocess.run(
        [sys.executable, str(VOICE / name)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=45,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "offline FakeLiveServer" in r.stdout
    for line in CASES[name]:
        assert line in r.stdout, f"missing {line!r} in:\n{r.stdout}"


async def test_twilio_example_serves_on_loopback_by_default(tmp_path: Path) -> None:
    import asyncio
    import signal

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_MODEL", "BRIDGE_HOST")
    }
    env.update(PYTHONUNBUFFERED="1", BRIDGE_PORT="0", TWILIO_AUTH_TOKEN="test-only-auth-token")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(VOICE / "twilio_bridge.py"),
        "--serve",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = b""
            while not line.startswith(b"http://"):
                line = await proc.stdout.readline()
                assert line, "the example exited before it listened"
        assert line.startswith(b"http://127.0.0.1:"), line
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
