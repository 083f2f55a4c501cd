"""Cassettes never pass silently: a missing one fails under CI, a failed recording writes
nothing, a divergence reaches the app as a cassette error carrying the sentence, the URL
``fake-server`` prints works as upstream, and ``match="strict"`` compares payloads."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import gemini_live as gl
from gemini_live.errors import CassetteDivergence, CassetteError, InvalidConfig
from gemini_live.testing import FakeLiveServer, use_cassette
from gemini_live.testing._server import set_cassette_mode
from gemini_live.testing.cassette import Cassette, upstream_base

from .test_cassette import KEY, app, config


@pytest.fixture(autouse=True)
def _no_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("CI", "GEMINI_LIVE_CASSETTES", "GEMINI_LIVE_RECORD", "GEMINI_LIVE_UPSTREAM"):
        monkeypatch.delenv(name, raising=False)
    set_cassette_mode(None)
    yield
    set_cassette_mode(None)


async def record(path: Path, text: str = "hello") -> list[str]:
    async with (
        FakeLiveServer() as live,
        use_cassette(path, record=True, upstream=live.url) as server,
    ):
        return await app(server.url, "websockets", key=None, text=text)


# --------------------------------------------------------------------------- missing


async def test_missing_cassette_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(CassetteError, match=r"no cassette .*missing cassettes fail: CI is set"):
        async with use_cassette(tmp_path / "nope.jsonl"):
            raise AssertionError("the block must not run")


@pytest.mark.parametrize("how", ["argument", "mode", "env"])
async def test_missing_cassette_fails_when_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    missing: str | None = None
    if how == "argument":
        missing = "fail"
    elif how == "mode":
        set_cassette_mode("replay-only")
    else:
        monkeypatch.setenv("GEMINI_LIVE_CASSETTES", "replay-only")
    with pytest.raises(CassetteError, match="missing cassettes fail"):
        async with use_cassette(tmp_path / "nope.jsonl", missing=missing):  # type: ignore[arg-type]
            pass


async def test_missing_cassette_skips_outside_ci_and_can_be_recorded(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="record it once"):
        async with use_cassette(tmp_path / "nope.jsonl"):
            pass
    path = tmp_path / "new.jsonl"
    async with (
        FakeLiveServer() as live,
        use_cassette(path, missing="record", upstream=live.url) as server,
    ):
        recorded = await app(server.url, "websockets", key=None)
    async with use_cassette(path, missing="fail") as server:
        assert await app(server.url, "websockets", key=None) == recorded


def test_bad_modes_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="cassette mode must be one of replay-only"):
        set_cassette_mode("replay")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- recording


async def test_a_failed_recording_leaves_no_file_and_keeps_the_good_one(tmp_path: Path) -> None:
    path = tmp_path / "greeting.jsonl"
    await record(path)
    good = path.read_bytes()
    # The app fails half-way through a new recording: nothing replaces the good cassette.
    async with FakeLiveServer() as live:
        with pytest.raises(RuntimeError, match="app broke"):
            async with use_cassette(path, record=True, upstream=live.url) as server:
                async with gl.connect(config(server.url, "websockets", key=None)) as session:
                    await session.send_text("hel")
                raise RuntimeError("app broke")
    assert path.read_bytes() == good
    assert names(tmp_path) == ["greeting.jsonl"]
    # A first recording that fails leaves no file at all.
    fresh = tmp_path / "fresh.jsonl"
    with pytest.raises(RuntimeError):
        async with use_cassette(fresh, record=True, upstream="ws://127.0.0.1:9"):
            raise RuntimeError("app broke")
    assert not fresh.exists()
    assert names(tmp_path) == ["greeting.jsonl"]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_upstream_is_an_error_not_a_cassette(tmp_path: Path) -> None:
    path = tmp_path / "greeting.jsonl"
    with pytest.raises(CassetteError, match="could not reach the upstream") as caught:
        async with use_cassette(
            path, record=True, upstream=f"ws://127.0.0.1:{free_port()}"
        ) as server:
            with pytest.raises(gl.errors.ServiceError, match="upstream connection failed"):
                await app(server.url, "websockets", key=None)
    assert "nothing written" in str(caught.value)
    assert not path.exists()


async def test_a_recording_without_any_connection_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "greeting.jsonl"
    with pytest.raises(CassetteError, match="never connected"):
        async with use_cassette(path, record=True, upstream="ws://127.0.0.1:9"):
            pass
    assert not path.exists()


async def test_the_url_fake_server_prints_is_a_valid_upstream(tmp_path: Path) -> None:
    path = tmp_path / "greeting.jsonl"
    async with FakeLiveServer(require_api_key=KEY) as live:
        # The full URL (path included), as `gemini-live fake-server` prints it.
        async with use_cassette(path, record=True, upstream=live.url) as server:
            recorded = await app(server.url, "websockets")
        assert len(live.connections) == 1 and live.connections[0].setup_completed
    assert KEY not in path.read_text()
    assert "connect_failed" not in path.read_text()
    async with use_cassette(path) as server:
        assert await app(server.url, "websockets", key=None) == recorded


def test_upstream_base_forms() -> None:
    assert upstream_base("ws://127.0.0.1:8765") == "ws://127.0.0.1:8765"
    assert upstream_base("ws://127.0.0.1:8765/") == "ws://127.0.0.1:8765"
    full = (
        "ws://127.0.0.1:8765/ws/google.ai.generativelanguage.v1beta."
        "GenerativeService.BidiGenerateContent"
    )
    assert upstream_base(full) == "ws://127.0.0.1:8765"
    assert upstream_base("https://generativelanguage.googleapis.com") == (
        "wss://generativelanguage.googleapis.com"
    )
    with pytest.raises(ValueError, match="ws:// or wss://"):
        upstream_base("127.0.0.1:8765")
    with pytest.raises(ValueError, match="query string"):
        upstream_base("ws://h/x?key=abc")


# --------------------------------------------------------------------------- divergence


async def test_a_divergence_reaches_the_app_as_a_cassette_error(tmp_path: Path) -> None:
    path = tmp_path / "greeting.jsonl"
    await record(path)
    seen: list[BaseException | None] = []
    with pytest.raises(CassetteDivergence) as caught:
        async with (
            use_cassette(path) as server,
            gl.connect(config(server.url, "websockets", key=None)) as session,
        ):
            # Recorded: a text turn first. This app ends an audio stream instead.
            await session.send_audio_stream_end()
            with pytest.raises(CassetteDivergence) as inside:
                async with asyncio.timeout(5):
                    async for _ in session.events():
                        pass
            seen.append(inside.value)
            seen.append(session.error)
    sentence = "client message 1 is realtimeInput.audioStreamEnd, the cassette expected"
    # The app's own session error says what happened, in the words of the report ...
    app_error = seen[0]
    assert isinstance(app_error, CassetteDivergence) and seen[1] is app_error
    assert not isinstance(app_error, InvalidConfig)
    assert isinstance(app_error, CassetteError) and not app_error.retryable
    assert sentence + " realtimeInput.text" in str(app_error)
    assert str(app_error).startswith("cassette replay diverged: ")
    # ... and the test gets the whole report: file, connection, recorded time.
    report = str(caught.value)
    assert f"{path}, connection 0: {sentence} realtimeInput.text (recorded at" in report


# --------------------------------------------------------------------------- strict


async def test_strict_matching_catches_a_changed_text_with_a_diff(tmp_path: Path) -> None:
    path = tmp_path / "greeting.jsonl"
    await record(path, text="hello")
    assert Cassette.load(path).connections[0].steps[1].frame == {"realtimeInput": {"text": "hello"}}
    # Loose matching (the default) only looks at kinds: a changed text still replays.
    async with use_cassette(path) as server:
        await app(server.url, "websockets", key=None, text="goodbye")
    # Strict matching compares the payloads and says how they differ.
    with pytest.raises(CassetteDivergence) as caught:
        async with use_cassette(path, match="strict") as server:
            with pytest.raises(CassetteDivergence, match=r"differs from the cassette"):
                await app(server.url, "websockets", key=None, text="goodbye")
    report = str(caught.value)
    assert "client message 1 (realtimeInput.text) differs from the cassette" in report
    assert '-  "text": "hello"' in report and '+  "text": "goodbye"' in report
    # The same app replays cleanly in strict mode.
    async with use_cassette(path, match="strict") as server:
        await app(server.url, "websockets", key=None, text="hello")


async def test_bad_match_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="match must be 'kind' or 'strict'"):
        async with use_cassette(tmp_path / "x.jsonl", match="exact"):  # type: ignore[arg-type]
            pass
