"""Cassettes: record (Recorder, RecordingProxy, the CLI), replay, report divergence."""

from __future__ import annotations

import array
import asyncio
import json
import math
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer, use_cassette
from gemini_live.testing.cassette import (
    CASSETTE_VERSION,
    Cassette,
    CassetteError,
    Recorder,
)

KEY = "AIzaSyCASSETTE-0123456789abcdefghijklm"
MODEL = "models/gemini-3.8-live"


def tone(ms: int, rate: int = 16000) -> bytes:
    n = rate * ms // 1000
    return array.array(
        "h", (int(8000 * math.sin(2 * math.pi * 300 * i / rate)) for i in range(n))
    ).tobytes()


def silence(ms: int, rate: int = 16000) -> bytes:
    return bytes(rate * ms // 1000 * 2)


def config(url: str, backend: Any, *, key: str | None = KEY) -> gl.SessionConfig:
    return gl.SessionConfig(
        setup=gl.types.Setup(
            model=MODEL,
            input_audio_transcription=gl.types.AudioTranscriptionConfig(),
            output_audio_transcription=gl.types.AudioTranscriptionConfig(),
            session_resumption=gl.types.SessionResumptionConfig(),
        ),
        transport=gl.TransportConfig(
            endpoint=gl.Endpoint.custom(url),
            auth=gl.Auth.api_key(key) if key else gl.Auth.none(),
            backend=backend,
            open_timeout=5.0,
        ),
        setup_timeout=5.0,
    )


def summary(events: list[ev.Event]) -> list[str]:
    """What an app sees, without timing: event kinds and their texts."""
    out: list[str] = []
    for e in events:
        if isinstance(e, ev.OutputTranscription | ev.InputTranscription):
            out.append(f"{type(e).__name__}:{e.text}")
        elif isinstance(e, ev.ModelAudio):
            out.append(f"audio:{len(e.data)}")
        elif not isinstance(e, ev.SessionResumptionUpdate | ev.Usage):
            out.append(type(e).__name__)
    return out


async def turn(session: gl.Session, events: AsyncIterator[ev.Event]) -> list[ev.Event]:
    got: list[ev.Event] = []
    async with asyncio.timeout(5):
        async for e in events:
            got.append(e)
            if isinstance(e, ev.TurnComplete):
                return got
    raise AssertionError(f"no TurnComplete: {got}")


async def app(url: str, backend: Any, *, key: str | None = KEY, text: str = "hello") -> list[str]:
    """A small voice app: one text turn, then one spoken turn ended by a pause."""
    async with gl.connect(config(url, backend, key=key)) as session:
        events = session.events()
        await session.send_text(text)
        seen = await turn(session, events)
        pcm = tone(300) + silence(400)
        for i in range(0, len(pcm), 640):
            await session.send_audio(pcm[i : i + 640])
        seen += await turn(session, events)
    return summary(seen)


async def test_record_then_replay_gives_the_same_events(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    async with FakeLiveServer(require_api_key=KEY, validate_frames=True) as live:
        recorder = Recorder(path, "websockets")
        recorded = await app(live.url, recorder)
        recorder.close()
    text = path.read_text()
    assert KEY not in text
    first = json.loads(text.splitlines()[0])
    assert first["event"] == "cassette" and first["version"] == CASSETTE_VERSION
    kinds = [json.loads(line).get("kind") for line in text.splitlines()]
    assert "setup" in kinds and "realtimeInput.text" in kinds and "realtimeInput.audio" in kinds
    assert "<base64 redacted: " in text  # audio not kept by default
    loaded = Cassette.load(path)
    assert [s.kind for s in loaded.connections[0].steps] == [
        "setup",
        "realtimeInput.text",
        "realtimeInput.audio",
    ]
    async with FakeLiveServer.replay(path, validate_frames=True) as replay:
        replayed = await app(replay.url, "websockets", key=None)
        assert replay.divergences == []
    assert replayed == recorded
    said = "".join(x.split(":", 1)[1] for x in replayed if x.startswith("OutputTranscription"))
    assert said == "You said: helloI heard 300 ms of audio."


async def test_replay_chunking_may_differ(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    async with FakeLiveServer() as live:
        recorder = Recorder(path, live.memory_backend())
        recorded = await app(live.url, recorder, key=None)
        recorder.close()

    async def app_40ms(url: str, backend: Any) -> list[str]:
        async with gl.connect(config(url, backend, key=None)) as session:
            events = session.events()
            await session.send_text("hello")
            seen = await turn(session, events)
            pcm = tone(300) + silence(400)
            for i in range(0, len(pcm), 1280):  # 40 ms chunks instead of 20 ms
                await session.send_audio(pcm[i : i + 1280])
            seen += await turn(session, events)
        return summary(seen)

    async with FakeLiveServer.replay(path) as replay:
        assert await app_40ms(replay.url, replay.memory_backend()) == recorded


async def test_a_different_client_is_reported_as_divergence(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    async with FakeLiveServer() as live:
        recorder = Recorder(path, live.memory_backend())
        await app(live.url, recorder, key=None)
        recorder.close()
    replay = FakeLiveServer.replay(path)
    async with replay:
        cfg = config(replay.url, replay.memory_backend(), key=None)
        async with gl.connect(cfg) as session:
            # Recorded: text, then audio. This client ends an audio stream instead.
            await session.send_audio_stream_end()
            await replay.wait_for_close(connection=0)
        with pytest.raises(AssertionError, match="the client diverged from the cassette"):
            replay.check()
        (message,) = replay.divergences[:1]
        assert "connection 0: client message 1 is realtimeInput.audioStreamEnd" in message
        assert "expected realtimeInput.text (recorded at" in message
        replay.divergences.clear()  # reported; let the block exit cleanly
    assert replay.connections[0].close_code == 1007
    assert (replay.connections[0].close_reason or "").startswith(
        "cassette replay diverged: client message 1 is realtimeInput.audioStreamEnd"
    )


async def test_a_client_that_stops_early_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    async with FakeLiveServer() as live:
        recorder = Recorder(path, live.memory_backend())
        await app(live.url, recorder, key=None)
        recorder.close()
    replay = FakeLiveServer.replay(path)
    async with replay:
        async with gl.connect(config(replay.url, replay.memory_backend(), key=None)) as session:
            events = session.events()
            await session.send_text("hello")
            await turn(session, events)
        await replay.wait_for_close()
        assert any("before sending realtimeInput.audio" in d for d in replay.divergences)
        replay.divergences.clear()


async def test_recording_proxy_and_the_three_line_helper(tmp_path: Path) -> None:
    path = tmp_path / "cassettes" / "greeting.jsonl"
    async with FakeLiveServer(require_api_key=KEY) as upstream:
        # Recording: the helper forwards to the service (here: a fake) with the app's key.
        async with use_cassette(path, record=True, upstream=upstream.base_url) as server:
            recorded = await app(server.url, "websockets")
        assert upstream.connections[0].headers["x-goog-api-key"] == KEY
    assert KEY not in path.read_text()
    # Replay in CI forever: three lines.
    async with use_cassette(path) as server:
        replayed = await app(server.url, "websockets", key=None)
    assert replayed == recorded


async def test_missing_cassette_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GEMINI_LIVE_CASSETTES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="record it once"):
        async with use_cassette(tmp_path / "nope.jsonl", record=False):
            pass


def test_bad_cassettes_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(CassetteError, match=r"bad\.jsonl:1: not JSON"):
        Cassette.load(bad)
    bad.write_text('{"t":0,"conn":0,"dir":"meta","event":"cassette","version":99}\n')
    with pytest.raises(CassetteError, match="unsupported cassette version 99"):
        Cassette.load(bad)
    with pytest.raises(CassetteError, match="cannot read cassette"):
        Cassette.load(tmp_path / "missing.jsonl")


# --------------------------------------------------------------------------- CLI


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def _cli(*args: str, cwd: Path, within: float = 30.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gemini_live",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(within):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _wav(path: Path) -> Path:
    from gemini_live.audio import write_wav

    write_wav(path, tone(800), 16000, 1)
    return path


def _lines(out: str) -> list[str]:
    keep = ("you (transcribed):", "model:", "wrote ")
    return [
        line.split("] ", 1)[-1].strip() for line in out.splitlines() if any(k in line for k in keep)
    ]


async def test_cli_record_then_replay_same_output(tmp_path: Path) -> None:
    wav = _wav(tmp_path / "q.wav")
    code, out, err = await _cli("--record", "rec.jsonl", "stream", str(wav), cwd=tmp_path)
    assert code == 0, err
    recorded = _lines(out)
    assert "model: I heard 800 ms of audio." in " ".join(recorded)
    async with FakeLiveServer.replay(tmp_path / "rec.jsonl") as replay:
        code, out2, err2 = await _cli("--url", replay.url, "stream", str(wav), cwd=tmp_path)
        assert code == 0, err2
        assert replay.divergences == []
    assert _lines(out2) == recorded
    # A different client (a text chat) against the same cassette diverges.
    async with FakeLiveServer.replay(tmp_path / "rec.jsonl") as replay:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gemini_live", "--url", replay.url, "chat", "--plain",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=_env(), cwd=tmp_path,
        )  # fmt: skip
        async with asyncio.timeout(30):
            await proc.communicate(b"hello\n")
        assert replay.divergences
        assert (
            # `stream` brackets the file: its first client message is activityStart.
            "realtimeInput.text, the cassette expected realtimeInput.activityStart"
            in (replay.divergences[0])
        )
        replay.divergences.clear()


async def test_fake_server_subprocess_serves_stream_and_google_genai(tmp_path: Path) -> None:
    wav = _wav(tmp_path / "q.wav")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gemini_live", "fake-server", "--port", "0",
        "--require-api-key", KEY, "--latency", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(), cwd=tmp_path,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            url = ""
            while not url:
                line = (await proc.stdout.readline()).decode()
                assert line, "fake-server exited early"
                if line.startswith("URL: "):
                    url = line[5:].strip()
            base = url.split("/ws/", 1)[0]
            code, out, err = await _cli(
                "--url", url, "--api-key", KEY, "stream", str(wav), cwd=tmp_path
            )
            assert code == 0, err
            assert "model: I heard 800 ms of audio." in out
            # The unmodified official client, too.
            from google import genai
            from google.genai import types

            client = genai.Client(api_key=KEY)
            api = client._api_client
            api._websocket_base_url = lambda http_options=None: base  # type: ignore[method-assign]
            api._websocket_ssl_ctx = {}
            cfg = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO])
            async with client.aio.live.connect(model="gemini-3.8-live", config=cfg) as live:
                await live.send_realtime_input(text="hi there")
                said = []
                async for msg in live.receive():
                    if msg.server_content and msg.server_content.model_turn:
                        said.append(msg)
                    if msg.server_content and msg.server_content.turn_complete:
                        break
            assert said
            proc.send_signal(signal.SIGINT)
            rest, errs = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = rest.decode()
    assert proc.returncode == 0, errs.decode()
    assert "connection 0: opened" in log and "connection 1: setup model=" in log
    assert "connection 0: closed" in log
    assert log.rstrip().endswith("stopped")
    assert KEY not in log


async def test_fake_server_cli_bad_input(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"rules": [{"when": {"bogus": 1}, "do": []}]}')
    code, _, err = await _cli("fake-server", "--script", "s.json", cwd=tmp_path)
    assert code == 1 and "unknown trigger 'bogus'" in err
    code, _, err = await _cli("fake-server", "--cassette", "missing.jsonl", cwd=tmp_path)
    assert code == 2 and "cannot read missing.jsonl" in err


async def test_replay_timing_keeps_the_recorded_gaps(tmp_path: Path) -> None:
    path = tmp_path / "slow.jsonl"
    async with FakeLiveServer(reply_chunks=3, chunk_interval=0.1) as live:
        recorder = Recorder(path, live.memory_backend())
        recorded = await app(live.url, recorder, key=None)
        recorder.close()
    loop = asyncio.get_running_loop()
    async with FakeLiveServer.replay(path) as fast:
        start = loop.time()
        assert await app(fast.url, fast.memory_backend(), key=None) == recorded
        fast_s = loop.time() - start
    async with FakeLiveServer.replay(path, replay_timing=True) as timed:
        start = loop.time()
        assert await app(timed.url, timed.memory_backend(), key=None) == recorded
        timed_s = loop.time() - start
    # Two replies of three chunks, 0.1 s apart: at least 0.4 s of recorded gaps.
    assert timed_s >= 0.4
    assert fast_s < timed_s


def test_fake_server_cli_takes_assumed_playback() -> None:
    from gemini_live.cli import build_parser

    args = build_parser().parse_args(["fake-server", "--assumed-playback"])
    assert args.assumed_playback is True
    assert build_parser().parse_args(["fake-server"]).assumed_playback is False
