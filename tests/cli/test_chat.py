"""``gemini-live chat``: piped lines, and a real terminal driven with pexpect."""

from __future__ import annotations

import importlib.util
import sys
import wave
from pathlib import Path

import pytest

from gemini_live.testing import FakeLiveServer

from .conftest import CliRunner, offline_env, run_cli_async

SCRIPT = """\
hello there
what's the weather like?
/status
/usage
/tools
/save last.wav
/audio off
/audio
/nope
/quit
this line is never read
"""


def test_chat_with_piped_input(run_cli: CliRunner, tmp_path: Path) -> None:
    r = run_cli("chat", input=SCRIPT, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    expected = [
        "connected to embedded fake server (offline), session fake-session-1",
        "model> You said: hello there",
        'tool> get_weather({"city": "Paris"})',
        "tool< get_weather -> ",
        'model> get_weather returned {"city":"Paris"',
        "connection: open · embedded fake server (offline) · session fake-session-1",
        "reconnects 0",
        "last turn: first audio",
        "usage, last turn: prompt",
        "usage, session (2 turns):",
        "get_weather: Current weather for a city.",
        "saved last.wav (0.120 s, 24000 Hz mono)",
        "reply audio is discarded",
        "audio is off; /audio on|off",
        "unknown command /nope",
        "bye",
    ]
    for line in expected:
        assert line in out, f"missing {line!r} in:\n{out}"
    positions = [out.index(line) for line in expected]
    assert positions == sorted(positions)
    assert "never read" not in out
    with wave.open(str(tmp_path / "last.wav"), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (24000, 1, 2880)


def test_chat_ends_at_end_of_input(run_cli: CliRunner) -> None:
    r = run_cli("chat", input="one last thing\n", timeout=30)
    assert r.returncode == 0, r.stderr
    assert "model> You said: one last thing" in r.stdout
    assert r.stdout.rstrip().endswith("bye")


@pytest.mark.skipif(importlib.util.find_spec("pexpect") is None, reason="needs pexpect")
@pytest.mark.parametrize("plain", [False, True], ids=["prompt_toolkit", "plain"])
def test_chat_in_a_terminal(tmp_path: Path, plain: bool) -> None:
    import pexpect

    env = offline_env(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
    args = ["-m", "gemini_live", "chat", *(["--plain"] if plain else [])]
    child = pexpect.spawn(
        sys.executable, args, env=env, cwd=str(tmp_path), encoding="utf-8", timeout=20
    )
    try:
        child.expect("you>")
        child.sendline("hello from a terminal")
        child.expect("model> You said: hello from a terminal")
        child.expect("you>")
        child.sendline("/status")
        child.expect("connection: open")
        child.expect("last turn: first audio")
        child.sendline("/quit")
        child.expect("bye")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


async def test_chat_shows_go_away_and_resume(tmp_path: Path) -> None:
    async with FakeLiveServer(go_away_after_messages=1) as server:
        code, out, err = await run_cli_async(
            "--url", server.url, "chat", stdin=b"first\nsecond\n/status\n", cwd=tmp_path
        )
        # "second" may go out before the goAway frame is read (then it is answered on the
        # old connection, which rotates after it); either way each line is answered once.
        rotated = len(server.connections) >= 2
        if rotated:
            assert server.connections[1].resumed_from is not None
    assert code == 0, err
    assert out.count("model> You said: first") == 1
    assert out.count("model> You said: second") == 1
    assert "[goAway: 1.0 s left, rotating the connection]" in out
    if rotated:
        for line in (
            "[reconnecting (attempt 1, in 0.00 s): goAway: rotating connection]",
            "[resumed: state restored]",
        ):
            assert line in out, f"missing {line!r} in:\n{out}"
