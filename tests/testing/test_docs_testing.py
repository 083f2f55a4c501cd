"""Every code block of docs/testing.md § "Testing your app offline" runs here."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer
from gemini_live.testing import script as s

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
SECTION = "## Testing your app offline"


def blocks(lang: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def test_the_section_has_its_blocks() -> None:
    assert len(blocks("python")) == 7  # the last two run in tests/test_docs_snippets.py
    assert len(blocks("json")) == 1
    assert len(blocks("bash")) == 1


#: Example 3 (goAway) holds only because the session re-sends what the resumed handle does
#: not cover: a session that resumed from a stale handle would lose "two" there.
@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_python_examples_run(index: int) -> None:
    code = blocks("python")[index]
    assert "asyncio.run(main())" in code
    namespace: dict[str, Any] = {"__name__": f"doc_example_{index}"}
    exec(compile(code, f"docs/testing.md example {index}", "exec"), namespace)


def test_json_script_equals_the_python_one() -> None:
    python = blocks("python")[2]
    namespace: dict[str, Any] = {"__name__": "doc_script"}
    exec(compile(python.replace("asyncio.run(main())", ""), "script", "exec"), namespace)
    assert s.Script.from_json(json.loads(blocks("json")[0])) == namespace["turns"]


async def greet(url: str) -> str:
    """The app of the cassette example: one text turn."""
    key = os.environ.get("GEMINI_API_KEY")  # recording: the app's own key; replay: none
    async with gl.connect(url=url, api_key=key, output_audio_transcription=True) as session:
        await session.send_text("hi")
        said = ""
        async with asyncio.timeout(5):
            async for event in session:
                if isinstance(event, ev.OutputTranscription):
                    said += event.text
                if isinstance(event, ev.TurnComplete):
                    return said
    raise AssertionError("no reply")


async def test_cassette_example_records_then_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = blocks("python")[4]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "doc_cassette", "greet": greet}
    exec(compile(code, "docs/testing.md cassette example", "exec"), namespace)
    test_greeting = namespace["test_greeting"]
    # Once: recorded through the proxy (here the "service" is a fake, with a key).
    async with FakeLiveServer(require_api_key="AIzaDOCS-0123456789abcdefghijklmnopqr") as up:
        monkeypatch.setenv("GEMINI_LIVE_RECORD", "1")
        monkeypatch.setenv("GEMINI_LIVE_UPSTREAM", up.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", "AIzaDOCS-0123456789abcdefghijklmnopqr")
        await test_greeting()
        assert up.connections[0].headers["x-goog-api-key"].startswith("AIzaDOCS")
    cassette = tmp_path / "tests" / "cassettes" / "greeting.jsonl"
    assert cassette.exists()
    assert "AIzaDOCS" not in cassette.read_text()
    # Forever after: replayed, no key, no network.
    monkeypatch.delenv("GEMINI_LIVE_RECORD")
    monkeypatch.delenv("GEMINI_LIVE_UPSTREAM")
    monkeypatch.delenv("GEMINI_API_KEY")
    await test_greeting()


def test_fake_server_command(tmp_path: Path) -> None:
    (command,) = [line for line in blocks("bash")[0].splitlines() if line.strip()]
    argv = command.split()
    assert argv[0] == "gemini-live"
    argv = [sys.executable, "-m", "gemini_live", *argv[1:]]
    argv[argv.index("--port") + 1] = "0"  # any free port in the test
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            if line.startswith("URL: "):
                url = line[5:].strip()
                break
        assert url.startswith("ws://127.0.0.1:") and url.endswith("BidiGenerateContent")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out.rstrip().endswith("stopped")


async def test_recording_against_the_fake_server_command_with_the_url_it_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GEMINI_LIVE_UPSTREAM`` set to the URL ``gemini-live fake-server`` prints, as is."""
    from gemini_live.testing import use_cassette

    argv = [sys.executable, "-m", "gemini_live", "fake-server", "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, env=env, cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        url = ""
        async with asyncio.timeout(20):
            while not url:
                line = (await proc.stdout.readline()).decode()
                assert line, "fake-server ended before printing its URL"
                if line.startswith("URL: "):
                    url = line[5:].strip()
        monkeypatch.setenv("GEMINI_LIVE_UPSTREAM", url)
        path = tmp_path / "greeting.jsonl"
        async with use_cassette(path, record=True) as proxy:
            recorded = await greet(proxy.url)
        monkeypatch.delenv("GEMINI_LIVE_UPSTREAM")
        assert "connect_failed" not in path.read_text()
        async with use_cassette(path, match="strict") as server:
            assert await greet(server.url) == recorded == "You said: hi"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
