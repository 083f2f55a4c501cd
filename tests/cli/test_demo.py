"""``gemini-live demo`` end to end, offline against the embedded fake server."""

from __future__ import annotations

import re
import time

import pytest

from .conftest import FAKE_KEY, CliRunner, offline_env

TIMELINE = re.compile(r"^\[\s*\d+\.\d{3}s\] ", re.MULTILINE)


@pytest.mark.parametrize("backend", ["picows", "websockets"])
def test_demo_offline_tells_the_whole_story(run_cli: CliRunner, backend: str) -> None:
    started = time.monotonic()
    r = run_cli("demo", "--backend", backend, timeout=30)
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    out = r.stdout
    expected = [
        "connecting to the embedded fake server (offline; no GEMINI_API_KEY)",
        "connected session=fake-session-1",
        # 1. text
        "model: You said: Hello! Please introduce yourself in one sentence.",
        # 2. audio from a generated WAV: 0.6 s chirp, 20 ms chunks
        "sent 30 chunks of 20 ms + audioStreamEnd",
        "heard: 600 ms of audio",
        "model: I heard 600 ms of audio.",
        # 3. tool call round trip through gemini_live.tools
        'tool call -> get_weather({"city": "Paris"})',
        "tool result <- get_weather:",
        'model: get_weather returned {"city":"Paris"',
        # 4. goAway + resumption
        "goAway (1.0 s left) -> rotating",
        "resumed (state restored)",
        "model: You said: Are you still there after the reconnect?",
        "connections 2, goAway rotations 1, resumed 1, session=fake-session-1",
        # metrics
        "usage, last turn: prompt",
        "usage, session (4 turns):",
        "turn 1: first audio",
        "turn 3: tool call",
        "average time to first audio:",
    ]
    for line in expected:
        assert line in out, f"missing {line!r} in:\n{out}"
    # The story is told in order, as a timeline.
    positions = [out.index(line) for line in expected]
    assert positions == sorted(positions)
    assert len(TIMELINE.findall(out)) >= 20
    assert "first audio —" not in out  # every turn measured a latency
    assert r.stderr == ""
    assert elapsed < 30


def test_demo_with_fake_flag_never_prints_the_key(run_cli: CliRunner) -> None:
    r = run_cli("--fake", "demo", env=offline_env(GEMINI_API_KEY=FAKE_KEY), timeout=30)
    assert r.returncode == 0, r.stderr
    assert "resumed (state restored)" in r.stdout
    assert FAKE_KEY not in r.stdout + r.stderr
