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
