"""Bad input is refused before the wire with a typed error, and the session goes on.

Every case asserts that nothing reached the server and that the session still answers
afterwards. Config values are refused when the config is built; the front door is typed
(``mypy --strict`` catches a misspelt keyword).
"""

from __future__ import annotations

import asyncio
import logging
import math
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import gemini_live as gl
from gemini_live import errors
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer, ToolScript
from gemini_live.tools import ToolRegistry
from gemini_live.types import (
    UNSET,
    ClientContent,
    ClientMessage,
    Content,
    FunctionResponse,
    Part,
    RealtimeInput,
    Setup,
)

from .conftest import KEY, MODEL, config_for
from .test_session import collect_until, is_turn_complete, texts

Send = Callable[[gl.Session], Awaitable[None]]

BAD_SENDS: list[tuple[str, Send, type[Exception]]] = [
    ("text int", lambda s: s.send_text(123), errors.InvalidMessageError),  # type: ignore[arg-type]
    ("text bytes", lambda s: s.send_text(b"hi"), errors.InvalidMessageError),  # type: ignore[arg-type]
    ("text empty", lambda s: s.send_text(""), errors.ConfigError),
    (
        "part text int",
        lambda s: s.send_client_content(Content(parts=[Part(text=5)])),  # type: ignore[arg-type]
        errors.InvalidMessageError,
    ),
    (
        "system instruction int",
        lambda s: s.send_context_update(system_instruction=123),  # type: ignore[arg-type]
        errors.InvalidMessageError,
    ),
    (
        "tools int",
        lambda s: s.send_context_update(tools=[123]),  # type: ignore[list-item]
        errors.InvalidMessageError,
    ),
    (
        "response name int",
        lambda s: s.send_tool_response(FunctionResponse(id="c1", name=123, response={})),  # type: ignore[arg-type]
        errors.InvalidMessageError,
    ),
    (
        "response NaN",
        lambda s: s.send_tool_response(
            FunctionResponse(id="c1", name="f", response={"x": math.nan})
        ),
        errors.InvalidMessageError,
    ),
    (
        "unknown call id",
        lambda s: s.send_tool_response(FunctionResponse(id="nope", name="f", response={})),
        errors.UnknownToolCallError,
    ),
    (
        "audio odd bytes",
        lambda s: s.send_audio(b"\x00\x01\x02"),
        errors.AudioFormatError,
    ),
    ("video not bytes", lambda s: s.send_video("jpeg"), errors.InvalidMessageError),
    (
        "two payloads",
        lambda s: s.send_message(
            ClientMessage(realtime_input=RealtimeInput(text="a", audio_stream_end=True))
        ),
        errors.ConfigError,
    ),
    ("not a message", lambda s: s.send_message({"realtimeInput": {}}), errors.InvalidMessageError),  # type: ignore[arg-type]
    (
        "too large",
        lambda s: s.send_text("x" * (64 * 1024 + 1)),
        errors.MessageTooLargeError,
    ),
]


@pytest.mark.parametrize(("name", "send", "error"), BAD_SENDS, ids=[c[0] for c in BAD_SENDS])
async def test_bad_send_is_refused_and_the_session_still_answers(
    backend_name: str, name: str, send: Send, error: type[Exception]
) -> None:
    async with FakeLiveServer(validate_frames=True) as server:
        cfg = config_for(server, backend_name, max_message_size=64 * 1024)
        async with gl.connect(cfg) as session:
            await server.wait_for_messages(1)  # the setup
            with pytest.raises(error):
                await send(session)
            assert issubclass(error, errors.GeminiLiveError)
            assert len(server.received[0]) == 1, "something reached the server"
            await session.send_text("still there?")
            got = await collect_until(session, is_turn_complete)
    assert "You said: still there?" in texts(got)
    assert server.connections[0].close_code in (None, 1000)


async def test_a_tool_response_is_sent_once_per_call(backend_name: str) -> None:
    triggers = {"book": ToolScript("book", {"room": "1"})}
    async with (
        FakeLiveServer(tool_triggers=triggers, validate_frames=True) as server,
        gl.connect(config_for(server, backend_name)) as session,
    ):
        await session.send_text("book please")
        got = await collect_until(session, lambda e: isinstance(e, ev.ToolCall))
        call = got[-1]
        assert isinstance(call, ev.ToolCall)
        (fc,) = call.calls
        assert isinstance(fc.id, str)
        answer = FunctionResponse(id=fc.id, name="book", response={"output": "ok"})
        await session.send_tool_response(answer)
        with pytest.raises(errors.UnknownToolCallError, match="already answered"):
            await session.send_tool_response(answer)
        got = await collect_until(session, is_turn_complete)
    assert "book returned" in texts(got)
    responses = [m for m in server.received[0] if m.tool_response is not UNSET]
    assert len(responses) == 1  # the duplicate never left


BAD_CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("subscriber_queue 0", {"subscriber_queue": 0}),
    ("negative setup timeout", {"setup_timeout": -1.0}),
    ("NaN open timeout", {"open_timeout": math.nan}),
    ("infinite idle timeout", {"idle_timeout": math.inf}),
    ("zero idle timeout", {"idle_timeout": 0}),
    ("offline buffer 0", {"offline_buffer_bytes": 0}),
    ("negative margin", {"go_away_margin": -0.1}),
    ("empty model", {"model": ""}),
    ("model int", {"model": 7}),
    ("empty api key", {"api_key": ""}),
    ("api key int", {"api_key": 7}),
    ("malformed url", {"url": "ws://[::1"}),
    ("unknown backend name", {"backend": "curl"}),
    ("backend object", {"backend": object()}),
    ("input rate", {"input_rate": 96000}),
    ("drain", {"drain_input": "later"}),
    ("tools int", {"tools": [123]}),
    ("header injection", {"headers": [("X-A", "v\r\nX-B: 1")]}),
]


@pytest.mark.parametrize(("name", "options"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_values_are_refused_when_built(name: str, options: dict[str, Any]) -> None:
    options.setdefault("url", "ws://127.0.0.1:9/ws")
    with pytest.raises(errors.ConfigError):
        gl.build_config(**options)


def test_reconnect_policy_values_are_checked() -> None:
    for bad in ({"max_attempts": -1}, {"healthy_after": 0}, {"jitter": 1.5}):
        with pytest.raises(errors.ConfigError):
            gl.ReconnectPolicy(**bad)


def test_the_key_is_masked_in_every_repr() -> None:
    cfg = gl.build_config(
        api_key=KEY, headers=[("X-Secret", "hunter2-value")], proxy="http://u:p@proxy:1"
    )
    for text in (repr(cfg), repr(cfg.transport), str(cfg)):
        assert KEY not in text
        assert "hunter2-value" not in text
        assert "u:p@" not in text


async def test_a_second_iterator_of_the_main_stream_is_an_error(server: FakeLiveServer) -> None:
    async with gl.connect(config_for(server, "memory")) as session:
        assert isinstance(await session.next_event(), ev.SetupComplete)
        first = asyncio.create_task(session.next_event())
        await asyncio.sleep(0)  # let it park on the empty stream (no synchronisation needed)
        with pytest.raises(errors.ConcurrencyError):
            await session.next_event()
        await session.send_text("hi")
        async with asyncio.timeout(5):
            assert await first is not None


async def test_close_ends_every_waiting_iterator(server: FakeLiveServer) -> None:
    session = await gl.connect(config_for(server, "memory"))
    stream = session.events()
    await session.send_text("hi")
    await collect_until(stream, is_turn_complete)
    waiter = asyncio.create_task(collect_until(stream, lambda e: False, within=5.0))
    await asyncio.sleep(0)
    await session.close()
    with pytest.raises(AssertionError, match="stream ended"):
        await waiter


async def test_cancelling_connect_logs_nothing_at_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeLiveServer(send_setup_complete=False) as server:
        caplog.set_level(logging.DEBUG)

        async def connect() -> gl.Session:
            return await gl.connect(config_for(server, "picows"))

        task = asyncio.create_task(connect())
        await server.wait_for_messages(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_connect_with_a_registry_answers_from_the_first_frame(backend_name: str) -> None:
    registry = ToolRegistry()

    @registry.tool
    def lookup(q: str) -> str:
        """Look something up."""
        return f"found {q}"

    # The call arrives in the very first frames after setupComplete, before the app does
    # anything: the runner attached by connect() must answer it.
    async with FakeLiveServer(validate_frames=True) as server:
        cfg_kwargs: dict[str, Any] = {
            "url": server.url,
            "tools": registry,
            "output_audio_transcription": True,
        }
        if backend_name == "memory":
            cfg_kwargs["backend"] = server.memory_backend()
        else:
            cfg_kwargs["backend"] = backend_name
        async with gl.connect(**cfg_kwargs) as session:
            await server.send_tool_call(calls=[("call-1", "lookup", {"q": "x"})])
            got = await collect_until(session, is_turn_complete)
    assert "lookup returned" in texts(got)
    setup = server.received[0][0].setup
    assert setup is not UNSET and setup.tools is not UNSET  # declared as well


async def test_library_logs_carry_the_session_id_and_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gemini_live")
    async with FakeLiveServer(require_api_key=KEY, go_away_after_messages=1) as server:
        cfg = config_for(server, "websockets", auth=gl.Auth.api_key(KEY))
        async with gl.connect(cfg) as session:
            await session.send_text("hi")
            await collect_until(session, lambda e: isinstance(e, ev.Resumed))
            await server.drop()
            await collect_until(session, lambda e: isinstance(e, ev.Resumed))
    ours = [r for r in caplog.records if r.name.startswith("gemini_live.session")]
    messages = " | ".join(r.getMessage() for r in ours)
    for needle in ("connecting", "setup complete", "rotating", "reconnected", "reconnecting"):
        assert needle in messages, needle
    assert all(getattr(r, "session_id", None) for r in ours)
    assert all(KEY not in r.getMessage() for r in caplog.records)
    debug = [r.getMessage() for r in ours if r.levelno == logging.DEBUG]
    assert any(m.startswith("[fake-session-1] received a ") for m in debug)
    assert any("wrote a " in m for m in debug)
    assert not any("hi" in m.split(":")[-1] for m in debug if "wrote" in m)


def test_a_misspelt_keyword_is_a_type_error_for_mypy(tmp_path: Path) -> None:
    src = tmp_path / "typo.py"
    src.write_text(
        "import gemini_live as gl\n"
        "async def main() -> None:\n"
        "    async with gl.connect(output_audio_transcripton=True):\n"
        "        pass\n"
        "gl.build_config(input_audio_transcripton=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 1, out.stdout
    assert 'Unexpected keyword argument "output_audio_transcripton"' in out.stdout
    assert 'Unexpected keyword argument "input_audio_transcripton"' in out.stdout


def test_setup_objects_with_wrong_types_are_refused() -> None:
    with pytest.raises(errors.ConfigError):
        gl.Session(gl.SessionConfig(setup=Setup(model=MODEL, tools=[123])))  # type: ignore[list-item]
    with pytest.raises(errors.ConfigError):
        gl.build_config(
            setup=Setup(model=MODEL),
            url="ws://127.0.0.1:9/ws",
            tools="not a list",  # type: ignore[arg-type]
        )
    assert ClientContent(turn_complete=True).turn_complete is True
