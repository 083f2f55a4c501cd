"""The fake server's frame log is a bounded ring with a dropped counter, and
``gemini-live fake-server`` keeps no frames unless asked (issue 18 item 5: it used to
keep every received frame, +8.5 MiB per minute of audio)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from gemini_live.testing import FakeLiveServer
from gemini_live.testing._records import FrameLog

MODEL = "models/gemini-3.1-flash-live-preview"
#: 40 ms of 16 kHz PCM16 silence (silence: no turn is taken, nothing is answered).
CHUNK = bytes(1280)
AUDIO_MESSAGE = json.dumps(
    {
        "realtimeInput": {
            "audio": {"mimeType": "audio/pcm;rate=16000", "data": base64.b64encode(CHUNK).decode()}
        }
    }
)


def test_frame_log_is_a_ring_that_reads_like_a_list() -> None:
    log = FrameLog(3)
    for i in range(5):
        log.append(bytes([i]))
    assert len(log) == 3 and log.dropped == 2 and log.total == 5
    assert list(log) == [b"\x02", b"\x03", b"\x04"]
    assert log[0] == b"\x02" and log[-1] == b"\x04" and log[1:] == [b"\x03", b"\x04"]
    assert "dropped=2" in repr(log)


async def test_records_are_bounded_and_count_what_went() -> None:
    async with (
        FakeLiveServer(max_recorded_frames=50, max_recorded_audio=64_000) as server,
        asyncio.timeout(30),
        connect(server.url) as ws,
    ):
        await ws.send(json.dumps({"setup": {"model": MODEL}}))
        await ws.recv()
        for _ in range(200):
            await ws.send(AUDIO_MESSAGE)
        await server.wait_for_messages(201, within=20)
        rec = server.connections[0]
        assert len(rec.raw_received) == 50
        assert rec.raw_received.dropped == 201 - 50
        assert rec.frames_dropped == rec.raw_received.dropped + rec.sent.dropped
        assert rec.audio_bytes == 200 * len(CHUNK)
        assert len(rec.audio) <= 64_000
        assert rec.audio_dropped + len(rec.audio) == rec.audio_bytes
        # The decoded messages keep their payloads by default (tests read them).
        last = rec.received[-1].realtime_input
        assert last.audio.data  # type: ignore[union-attr]


async def test_without_payloads_received_audio_shares_one_message() -> None:
    async with (
        FakeLiveServer(record_frames=False, keep_audio_payloads=False, max_recorded_audio=0) as s,
        asyncio.timeout(30),
        connect(s.url) as ws,
    ):
        await ws.send(json.dumps({"setup": {"model": MODEL}}))
        await ws.recv()
        for _ in range(20):
            await ws.send(AUDIO_MESSAGE)
        await ws.send(json.dumps({"realtimeInput": {"text": "hello"}}))
        await s.wait_for_messages(22, within=20)
        rec = s.connections[0]
        assert len(rec.raw_received) == 0 and len(rec.sent) == 0 and len(rec.audio) == 0
        assert rec.audio_bytes == rec.audio_dropped == 20 * len(CHUNK)
        audio = rec.received[1:21]
        assert all(m is audio[0] for m in audio)
        assert audio[0].realtime_input.audio.data == ""  # type: ignore[union-attr]
        assert rec.received[21].realtime_input.text == "hello"  # type: ignore[union-attr]


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
async def test_cli_fake_server_memory_stays_flat_while_a_client_streams() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gemini_live", "fake-server", "--port", "0",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            url = ""
            while not url:
                line = (await proc.stdout.readline()).decode()
                assert line, "fake-server exited early"
                if line.startswith("URL: "):
                    url = line[5:].strip()
            async with connect(url) as ws:
                await ws.send(json.dumps({"setup": {"model": MODEL}}))
                await ws.recv()

                async def stream(n: int) -> None:
                    for _ in range(n):
                        await ws.send(AUDIO_MESSAGE)
                    # A text turn after the audio: its reply proves the server read it all.
                    await ws.send(json.dumps({"realtimeInput": {"text": "done?"}}))
                    while True:
                        frame = json.loads(await ws.recv())
                        if frame.get("serverContent", {}).get("turnComplete"):
                            return

                await stream(500)  # warm up: imports, caches, allocator arenas
                before = _rss(proc.pid)
                await stream(3000)  # two minutes of audio (~17 MiB kept before the fix)
                grown = _rss(proc.pid) - before
            proc.terminate()
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert grown < 6 * 1024 * 1024, f"fake-server grew {grown / 2**20:.1f} MiB"


def test_cli_record_frames_option() -> None:
    from gemini_live.cli import build_parser

    assert build_parser().parse_args(["fake-server"]).record_frames == 0
    args = build_parser().parse_args(["fake-server", "--record-frames", "500"])
    assert args.record_frames == 500
