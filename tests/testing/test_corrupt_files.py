"""Corrupt cassette and script files: one clear typed error, bounded allocation, and for
``gemini-live fake-server`` one stderr line and exit status 1 (issue 18 item 6).

Before: 9 of 16 corrupt files crashed the CLI with a traceback, and a 283-byte cassette
line declaring a huge redacted blob made the loader allocate 1.1 GiB of silence.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tracemalloc
from pathlib import Path

import pytest

from gemini_live.errors import CassetteError, ConfigError, ScriptError
from gemini_live.testing import CassetteError as KitCassetteError
from gemini_live.testing import ScriptError as KitScriptError
from gemini_live.testing.cassette import MAX_BLOB_BYTES, MAX_LINE_CHARS, Cassette
from gemini_live.testing.script import MAX_SCRIPT_BYTES, Script

HEADER = json.dumps(
    {
        "t": 0.0,
        "wall": "2026-12-06T00:00:00.000+00:00",
        "conn": 0,
        "dir": "meta",
        "event": "cassette",
        "version": 1,
        "keep_audio": False,
    }
)
SETUP = json.dumps(
    {"t": 0.01, "conn": 1, "dir": "client", "kind": "setup", "frame": {"setup": {"model": "m"}}}
)


def _server_audio(data: str, parts: int = 1) -> str:
    blob = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}
    frame = {"serverContent": {"modelTurn": {"parts": [blob] * parts}}}
    return json.dumps({"t": 0.02, "conn": 1, "dir": "server", "frame": frame})


def _client_audio(mime: str) -> str:
    frame = {"realtimeInput": {"audio": {"mimeType": mime, "data": "AAAA"}}}
    return json.dumps(
        {"t": 0.1, "conn": 1, "dir": "client", "kind": "realtimeInput.audio", "frame": frame}
    )


#: The 283-byte line of the issue: a redacted blob that declares 1.1 GiB.
HUGE_BLOB = _server_audio("<base64 redacted: 1574821340 chars = 1181116005 bytes>")
#: Four 10 MiB blobs in one frame: each under the limit, 40 MiB together.
MANY_BLOBS = _server_audio("<base64 redacted: 13981016 chars = 10485760 bytes>", parts=4)


def _lines(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _record(**fields: object) -> str:
    return json.dumps({"t": 0.1, "conn": 1, "dir": "server", **fields})


#: name -> (file contents, a word the one-line message must contain)
CORRUPT_CASSETTES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "empty cassette"),
    "blank-lines": (b"\n  \n\n", "empty cassette"),
    "truncated-json": (_lines(HEADER, SETUP)[:-20], "not JSON"),
    "binary-garbage": (bytes(range(256)) * 4, "UTF-8"),
    "not-an-object": (_lines(HEADER, "[1, 2, 3]"), "not a cassette record"),
    "missing-fields": (_lines(HEADER, '{"t": 1}'), "not a cassette record"),
    "wrong-version": (_lines(HEADER.replace('"version": 1', '"version": 99'), SETUP), "version 99"),
    "version-not-a-number": (
        _lines(HEADER.replace('"version": 1', '"version": "one"'), SETUP),
        "'version' must be an integer",
    ),
    "conn-not-a-number": (_lines(HEADER, _record(conn="first")), "'conn' must be an integer"),
    "t-not-a-number": (_lines(HEADER, _record(t="soon", frame={})), "'t' must be a finite"),
    "bad-direction": (_lines(HEADER, _record(dir="sideways")), "'dir' must be"),
    "frame-not-an-object": (_lines(HEADER, SETUP, _record(frame="hello")), "JSON object"),
    "huge-declared-blob": (_lines(HEADER, SETUP, HUGE_BLOB), "1181116005 bytes"),
    "many-blobs-in-one-frame": (_lines(HEADER, SETUP, MANY_BLOBS), "redacted audio"),
    "unreadable-blob-size": (
        _lines(HEADER, SETUP, HUGE_BLOB.replace("1181116005 bytes", "lots bytes")),
        "unreadable redacted blob",
    ),
    "bad-close-code": (
        _lines(HEADER, SETUP, _record(dir="meta", event="close", code=99999, by="server")),
        "close code 99999",
    ),
    "close-code-not-a-number": (
        _lines(HEADER, SETUP, _record(dir="meta", event="close", code=[1], by="server")),
        "'code' must be an integer",
    ),
    "zero-sample-rate": (_lines(HEADER, _client_audio("audio/pcm;rate=0")), "sample rate"),
    "nested-too-deeply": (_lines(HEADER, '{"conn":1,"dir":"server","frame":' + "[" * 100_000), ""),
}

#: name -> (file contents, a word the one-line message must contain)
CORRUPT_SCRIPTS: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "not JSON"),
    "truncated-json": (b'{"rules": [{"when": {"text": "x"}, "do": [{"rep', "not JSON"),
    "binary-garbage": (bytes(range(256)) * 4, "UTF-8"),
    "not-an-object": (b"[1, 2]", "JSON object"),
    "wrong-version": (b'{"version": 7, "rules": []}', "version 7"),
    "rules-not-a-list": (b'{"rules": {"a": 1}}', "'rules' must be a list"),
    "rule-not-an-object": (b'{"rules": [42]}', "needs 'when' and 'do'"),
    "unknown-trigger": (b'{"rules": [{"when": {"bogus": 1}, "do": []}]}', "unknown trigger"),
    "call-not-an-object": (
        b'{"rules": [{"when": {"any": true}, "do": [{"call": ["get_weather"]}]}]}',
        "'name' string",
    ),
    "huge-chunks": (
        b'{"rules": [{"when": {"any": true}, "do": [{"reply": "x", "chunks": 1e12}]}]}',
        "chunks must be between",
    ),
    "infinite-wait": (
        b'{"rules": [{"when": {"any": true}, "do": [{"wait": 1e999}]}]}',
        "wait must be between",
    ),
    "nan-tone": (
        b'{"rules": [{"when": {"any": true}, "do": [{"reply": "x", "toneHz": NaN}]}]}',
        "toneHz must be between",
    ),
    "bad-close-code": (
        b'{"rules": [{"when": {"any": true}, "do": [{"close": [70000, "bye"]}]}]}',
        "close code 70000",
    ),
    "send-not-an-object": (
        b'{"rules": [{"when": {"any": true}, "do": [{"send": "raw text"}]}]}',
        "JSON object",
    ),
    "trigger-overflow": (
        b'{"rules": [{"when": {"utterance": 1e999}, "do": []}]}',
        "bad trigger",
    ),
    "nested-too-deeply": (b"[" * 100_000, ""),
}


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_there_are_many_kinds_of_corrupt_files() -> None:
    assert len(CORRUPT_CASSETTES) >= 16
    assert len(CORRUPT_SCRIPTS) >= 16


def test_the_errors_are_typed_and_exported() -> None:
    assert KitCassetteError is CassetteError and KitScriptError is ScriptError
    assert issubclass(CassetteError, ConfigError) and issubclass(ScriptError, ConfigError)
    assert issubclass(CassetteError, ValueError)  # as before


@pytest.mark.parametrize("name", sorted(CORRUPT_CASSETTES))
def test_corrupt_cassette_is_one_clear_error(tmp_path: Path, name: str) -> None:
    data, word = CORRUPT_CASSETTES[name]
    path = _write(tmp_path, f"{name}.jsonl", data)
    tracemalloc.start()
    try:
        with pytest.raises(CassetteError) as raised:
            Cassette.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(raised.value)
    assert "\n" not in message and str(path) in message and word in message
    assert len(message) <= 1200
    assert peak < 32 * 1024 * 1024, f"loading {name} allocated {peak} bytes"


@pytest.mark.parametrize("name", sorted(CORRUPT_SCRIPTS))
def test_corrupt_script_is_one_clear_error(tmp_path: Path, name: str) -> None:
    data, word = CORRUPT_SCRIPTS[name]
    path = _write(tmp_path, f"{name}.json", data)
    with pytest.raises(ScriptError) as raised:
        Script.load(path)
    message = str(raised.value)
    assert "\n" not in message and str(path) in message and word in message
    assert len(message) <= 1200


def test_line_length_and_file_size_are_capped(tmp_path: Path) -> None:
    long_line = _write(tmp_path, "long.jsonl", b"x" * (MAX_LINE_CHARS + 10))
    tracemalloc.start()
    try:
        with pytest.raises(CassetteError, match="line longer than"):
            Cassette.load(long_line)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The line is read up to the cap once (characters, so up to 4 bytes each), no more.
    assert peak < 6 * MAX_LINE_CHARS
    big = _write(tmp_path, "big.json", b" " * (MAX_SCRIPT_BYTES + 1))
    with pytest.raises(ScriptError, match="larger than"):
        Script.load(big)


def test_a_declared_blob_at_the_limit_loads_and_is_made_only_when_sent(tmp_path: Path) -> None:
    chars = MAX_BLOB_BYTES * 4 // 3
    ok = HUGE_BLOB.replace("1574821340 chars = 1181116005 bytes", f"{chars} chars = 4800 bytes")
    path = _write(tmp_path, "ok.jsonl", _lines(HEADER, SETUP, ok))
    cassette = Cassette.load(path)
    (item,) = cassette.connections[0].items
    assert item.frame is None and item.template is not None
    sent = json.loads(item.payload())
    data = sent["serverContent"]["modelTurn"]["parts"][0]["inlineData"]["data"]
    assert len(data) == 6400  # 4800 bytes of silence as base64


async def _run_cli(path: Path, flag: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gemini_live", "fake-server", flag, str(path), "--port", "0",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env, cwd=path.parent,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def test_cli_refuses_every_corrupt_file_in_one_line(tmp_path: Path) -> None:
    jobs: list[tuple[str, Path, str, str]] = []
    for name, (data, word) in CORRUPT_CASSETTES.items():
        jobs.append((name, _write(tmp_path, f"{name}.jsonl", data), "--cassette", word))
    for name, (data, word) in CORRUPT_SCRIPTS.items():
        jobs.append((name, _write(tmp_path, f"{name}.json", data), "--script", word))
    gate = asyncio.Semaphore(4)

    async def one(path: Path, flag: str) -> tuple[int, str, str]:
        async with gate:
            return await _run_cli(path, flag)

    results = await asyncio.gather(*(one(path, flag) for _, path, flag, _ in jobs))
    for (name, _, flag, word), (code, out, err) in zip(jobs, results, strict=True):
        what = f"{flag} {name}: exit {code}, stderr {err!r}"
        assert code == 1, what
        assert "Traceback" not in err and "Traceback" not in out, what
        lines = err.strip().splitlines()
        assert len(lines) == 1, what
        assert lines[0].startswith("gemini-live fake-server: ") and word in lines[0], what
        assert "listening" not in out, what
