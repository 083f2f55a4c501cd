"""``--record FILE.jsonl``: both directions, timestamps, no audio payloads, no keys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gemini_live.cli._record import scrub_frame
from gemini_live.testing import FakeLiveServer, ToolScript

from .conftest import FAKE_KEY, CliRunner, offline_env, run_cli_async

#: A run of base64 this long would be an audio payload that escaped redaction.
LONG_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{120,}={0,2}")


def load(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def blob_data(obj: Any) -> list[str]:
    """Every ``data`` value of a blob (a dict with a MIME type) anywhere in ``obj``."""
    out: list[str] = []
    if isinstance(obj, dict):
        if "mimeType" in obj and "data" in obj:
            out.append(obj["data"])
        for v in obj.values():
            out.extend(blob_data(v))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(blob_data(v))
    return out


def check_recording(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert FAKE_KEY not in text
    assert not LONG_BASE64.search(text)
    records = load(path)
    dirs = {r["dir"] for r in records}
    assert {"client", "server", "meta"} <= dirs
    times = [r["t"] for r in records]
    assert times == sorted(times)
    assert all("wall" in r and "conn" in r for r in records)
    blobs = [d for r in records for d in blob_data(r.get("frame"))]
    assert blobs, "the recording holds no audio frames at all"
    assert all(d.startswith("<base64 redacted: ") for d in blobs)
    return records


def test_record_demo_both_directions(run_cli: CliRunner, tmp_path: Path) -> None:
    r = run_cli("--record", "wire.jsonl", "demo", timeout=30)
    assert r.returncode == 0, r.stderr
    records = check_recording(tmp_path / "wire.jsonl")
    frames = [r for r in records if "frame" in r]
    client = [r["frame"] for r in frames if r["dir"] == "client"]
    server = [r["frame"] for r in frames if r["dir"] == "server"]
    assert "setup" in client[0]
    assert any("toolResponse" in f for f in client)
    assert any("realtimeInput" in f and "audio" in f["realtimeInput"] for f in client)
    assert any("toolCall" in f for f in server)
    assert any("goAway" in f for f in server)
    # The goAway rotation is visible as a second connection that resumed.
    assert {r["conn"] for r in frames} == {1, 2}
    second_setup = next(r["frame"] for r in frames if r["conn"] == 2 and r["dir"] == "client")
    assert second_setup["setup"]["sessionResumption"]["handle"].startswith("fake-handle-")
    events = [r.get("event") for r in records if r["dir"] == "meta"]
    assert events.count("connect") == 2
    assert "close" in events
    # The fake server reports per-turn usage: the CLI's session usage must be the sum of
    # the turns' snapshots on the wire (each counted once).
    usage = [f["usageMetadata"] for f in server if "usageMetadata" in f]
    assert len(usage) == 4
    m = re.search(r"usage, session \(4 turns\): prompt (\d+) .* total (\d+)", r.stdout)
    assert m is not None, r.stdout
    assert (int(m[1]), int(m[2])) == (
        sum(int(u["promptTokenCount"]) for u in usage),
        sum(int(u["totalTokenCount"]) for u in usage),
    )


async def test_key_is_sent_but_never_printed_logged_or_recorded(tmp_path: Path) -> None:
    record = tmp_path / "wire.jsonl"
    async with FakeLiveServer(
        require_api_key=FAKE_KEY,
        tool_triggers={"weather": ToolScript("get_weather", {"city": "Paris"})},
    ) as server:
        code, out, err = await run_cli_async(
            "--url",
            server.url,
            "--log-level",
            "DEBUG",
            "--record",
            str(record),
            "demo",
            env=offline_env(GEMINI_API_KEY=FAKE_KEY),
            cwd=tmp_path,
        )
        assert code == 0, err
        # The key really was used (the server demands it) ...
        assert server.connections[0].headers["x-goog-api-key"] == FAKE_KEY
    # ... and shows up nowhere.
    assert FAKE_KEY not in out
    assert FAKE_KEY not in err
    assert "goAway can't be forced" in out
    check_recording(record)


def test_scrub_frame_redacts_blobs_in_both_spellings() -> None:
    audio = "QUFB" * 100
    client = json.dumps(
        {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": audio}}}
    ).encode()
    assert scrub_frame(client) == {
        "frame": {
            "realtimeInput": {
                "audio": {
                    "mimeType": "audio/pcm;rate=16000",
                    "data": "<base64 redacted: 400 chars = 300 bytes>",
                }
            }
        }
    }
    snake = json.dumps(
        {"realtime_input": {"media_chunks": [{"mime_type": "audio/pcm", "data": audio}]}}
    ).encode()
    assert audio not in json.dumps(scrub_frame(snake))
    text = json.dumps({"clientContent": {"turns": [{"parts": [{"text": "data"}]}]}}).encode()
    assert scrub_frame(text) == {"frame": json.loads(text)}
    assert scrub_frame(b"not json") == {"text": "not json"}
    assert scrub_frame(b"\xff\xfe") == {"binary": True}
