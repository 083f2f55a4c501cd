"""Every example runs offline (no GEMINI_API_KEY) against FakeLiveServer."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import pytest

from .conftest import offline_env

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

CASES = {
    "text_chat.py": ["model: You said: Hi!", "usage: prompt"],
    "audio_file_round_trip.py": [
        "heard: 1000 ms of audio",
        "model: I heard 1000 ms of audio.",
        "wrote reply.wav: 0.120 s at 24000 Hz",
    ],
    "reconnect_demo.py": [
        "goAway: 1.0 s left -> rotating now",
        "resumed, history kept",
        "connections 2, rotations 1, resumed 1",
        "model: You said: Which number",
    ],
    "tool_call.py": ["model asks for: get_weather", "tool:  get_weather(", "returned"],
}


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs_offline(name: str, tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=30,
        env=offline_env(),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "offline FakeLiveServer" in r.stdout
    for line in CASES[name]:
        assert line in r.stdout, f"missing {line!r} in:\n{r.stdout}"
    if name == "audio_file_round_trip.py":
        with wave.open(str(tmp_path / "reply.wav"), "rb") as w:
            assert (w.getframerate(), w.getnchannels()) == (24000, 1)
