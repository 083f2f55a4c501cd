"""Session over FakeLiveServer, on every backend (memory, picows, websockets)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterable, Callable
from pathlib import Path

import pytest

import gemini_live as gl
from gemini_live import errors
from gemini_live import events as ev
from gemini_live.codec import decode_events
from gemini_live.testing import FakeLiveServer
from gemini_live.transport._picows import PicowsTransport
from gemini_live.types import (
    UNSET,
    FunctionCall,
    FunctionDeclaration,
    FunctionResponse,
    Setup,
    Tool,
)

from .conftest import KEY, MODEL, config_for

Predicate = Callable[[ev.Event], bool]


async def collect_until(
    stream: AsyncIterable[ev.Event], stop: Predicate, *, within: float = 5.0
) -> list[ev.Event]:
    """Read events until one matches ``stop`` (included); bounded by ``within`` seconds."""
    out: list[ev.Event] = []
    async with asyncio.timeout(within):
        async for event in stream:
            out.append(event)
            if stop(event):
                return out
    raise AssertionError(f"stream ended before the expected event; got {out}")


def is_turn_complete(e: ev.Event) -> bool:
    return isinstance(e, ev.TurnComplete)


def texts(events: list[ev.Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, ev.OutputTranscription))


async def test_text_turn_streams_every_event_kind(
    server: FakeLiveServer, backend_name: str
) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        assert session.status == "open"
        assert session.session_id
        await session.send_text("hello there")
        events = await collect_until(session, is_turn_complete)
        # The trailing resumption update arrives after turnComplete and is not lost.
        trailing = await collect_until(session, lambda e: isinstance(e, ev.SessionResumptionUpdate))
    kinds = [type(e) for e in events]
    assert kinds[0] is ev.SetupComplete
    assert ev.ModelAudio in kinds
    assert ev.GenerationComplete in kinds
    assert kinds.index(ev.GenerationComplete) < kinds.index(ev.TurnComplete)
    assert "hello there" in texts(events)
    audio = [e for e in events if isinstance(e, ev.ModelAudio)]
    assert all(a.sample_rate == 24000 and len(a.data) == 1920 for a in audio)
    assert isinstance(trailing[-1], ev.SessionResumptionUpdate)
    assert trailing[-1].resumable
    # Usage comes in the same frame as turnComplete, right after it.
    usage = [e for e in events + trailing if isinstance(e, ev.Usage)]
    assert usage and usage[0].metadata.total_token_count
    received = server.received[0]
    assert received[0].setup is not gl.types.UNSET
    assert received[1].realtime_input.text == "hello there"  # type: ignore[union-attr]


async def test_await_form_and_next_event(server: FakeLiveServer, backend_name: str) -> None:
    session = await gl.connect(config_for(server, backend_name))
    try:
        first = await session.next_event()
        assert isinstance(first, ev.SetupComplete)
    finally:
        await session.close()
        await session.close()  # idempotent
    assert session.status == "closed"
    rest = []
    async with asyncio.timeout(2):
        while (item := await session.next_event()) is not None:
            rest.append(item)
    assert isinstance(rest[-1], ev.Closed)
    with pytest.raises(errors.SessionClosedError):
        await session.send_text("late")


async def test_audio_is_refused_once_close_has_begun(
    server: FakeLiveServer, backend_name: str
) -> None:
    # The audio hot path (Session._write_audio) ends when close() begins, while the
    # connection may still be open for the closing handshake.
    pcm = b"\0\0" * 320
    session = await gl.connect(config_for(server, backend_name))
    await session.send_audio(pcm)
    assert session._write_audio is not None or backend_name in ("websockets", "memory")
    closing = asyncio.create_task(session.close())
    async with asyncio.timeout(5):
        # close()'s first step flips the status: yield until the task has taken it.
        while session.status != "closed":  # noqa: ASYNC110
            await asyncio.sleep(0)
    assert session._write_audio is None
    assert not closing.done()  # the close handshake is still under way
    with pytest.raises(errors.SessionClosedError):
        await session.send_audio(pcm)
    async with asyncio.timeout(5):
        await closing
    for rate in (None, 16000):
        with pytest.raises(errors.SessionClosedError):
            await session.send_audio(pcm, sample_rate=rate)


async def test_a_chunk_on_the_audio_hot_path_is_the_meters_latest_input(
    server: FakeLiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fused writer leaves each chunk's time in the outbox (not the session record):
    # the meters take the later of it and the record's own input time, then neither.
    clock = [100.0]
    monkeypatch.setattr("gemini_live.session._monotonic", lambda: clock[0])
    async with gl.connect(config_for(server, "picows", metrics=True)) as session:
        assert session._write_audio is not None
        record, outbox = session._record, session.protocol._outbox

        def inputs() -> tuple[float | None, float | None]:
            return outbox.input_at, record.input_at

        await session.send_audio(b"\1\0" * 160)
        assert inputs() == (100.0, None)
        assert session.send_audio_nowait(b"\1\0" * 160)
        clock[0] = 101.0
        record.user_input(100.5)  # a text, say
        await session.send_audio(b"\1\0" * 160)
        assert record._take_input() == 101.0  # the latest of the two
        assert inputs() == (None, None)
        record.user_input(102.0)
        await session.send_audio(b"\1\0" * 160)  # at 101.0: earlier than the text
        assert record._take_input() == 102.0
        with pytest.raises(errors.AudioFormatError):
            await session.send_audio(b"\1")  # refused before anything changes
        assert record._take_input() is None


async def test_the_audio_hot_path_follows_the_transports_backpressure(
    server: FakeLiveServer,
) -> None:
    # picows writes audio without a check per write; under backpressure the session's
    # hot path must go back to try_send (which refuses: the chunk is queued and flushed).
    pcm = b"\1\0" * 160
    async with gl.connect(config_for(server, "picows")) as session:
        transport = session._connector.transport
        assert isinstance(transport, PicowsTransport)
        assert session._direct is transport
        outbox = session.protocol._outbox
        direct = session._write_audio
        assert direct is not None
        # It calls the backend's own send (DirectSend), with no wrapper object around it.
        defaults = direct.__defaults__ or ()
        assert any(d == transport._ws.send for d in defaults if callable(d))
        assert not any(isinstance(d, functools.partial) for d in defaults)
        transport.pause_writing()  # what asyncio calls above the high-water mark
        checked = session._write_audio
        assert checked is not None and checked is not direct
        assert checked(pcm, time.monotonic()) is False
        assert len(outbox.pending) == 1
        sent = session.stats.frames_sent
        transport.resume_writing()
        assert session._write_audio is not checked
        async with asyncio.timeout(5):
            await session._flush()
        assert not outbox.pending and session.stats.frames_sent == sent + 1
        await session.send_audio(pcm)  # the direct writer again
        assert session.stats.frames_sent == sent + 2
    assert session._write_audio is None and session._direct is None


async def test_audio_at_the_input_rate_takes_the_hot_path_whatever_says_it(
    server: FakeLiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # send_audio(pcm) and send_audio(pcm, sample_rate=<the session's input rate>) are the
    # same frames: both go the fused path; another rate goes the general one.
    pcm = b"\0\0" * 160
    config = config_for(server, "picows", input_rate=8000)
    async with gl.connect(config) as session:
        general: list[int | None] = []
        real = session.protocol.send_audio

        def spy(pcm: object, now: float, sample_rate: int | None = None) -> bytes | None:
            general.append(sample_rate)
            return real(pcm, now, sample_rate)

        monkeypatch.setattr(session.protocol, "send_audio", spy)
        assert session._write_audio is not None
        await session.send_audio(pcm)
        await session.send_audio(pcm, sample_rate=8000)
        assert general == []
        await session.send_audio(pcm, sample_rate=16000)
        assert general == [16000]
        assert session.stats.frames_sent >= 3  # the three chunks


async def test_setup_is_public_read_only_and_follows_changes(
    server: FakeLiveServer, backend_name: str
) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        assert session.setup.model == MODEL
        assert session.setup is session.protocol.setup  # adapted by the model table
        with pytest.raises(AttributeError):
            session.setup = session.setup  # type: ignore[misc]
        await session.send_context_update(system_instruction="be brief")
        instruction = session.setup.system_instruction
        assert not isinstance(instruction, type(UNSET))
        assert instruction.parts[0].text == "be brief"  # type: ignore[index]


async def test_audio_round_trip(server: FakeLiveServer, backend_name: str) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        chunk = bytes(640)
        for _ in range(5):
            await session.send_audio(chunk)
        await session.send_audio_stream_end()
        events = await collect_until(session, is_turn_complete)
    assert any(isinstance(e, ev.InputTranscription) for e in events)
    assert sum(len(e.data) for e in events if isinstance(e, ev.ModelAudio)) > 0
    audio_msgs = [
        m.realtime_input.audio
        for m in server.received[0]
        if m.realtime_input is not gl.types.UNSET and m.realtime_input.audio is not gl.types.UNSET
    ]
    assert len(audio_msgs) == 5
    assert all(a.mime_type == "audio/pcm;rate=16000" and a.decoded() == chunk for a in audio_msgs)


async def test_bad_input_is_refused_before_sending(
    server: FakeLiveServer, backend_name: str
) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        with pytest.raises(errors.AudioFormatError):
            await session.send_audio(b"\x00\x01\x02")  # odd byte count
        with pytest.raises(errors.ConfigError):
            await session.send_audio(b"")
        with pytest.raises(errors.ConfigError):
            await session.send_video(b"\xff\xd8", mime_type="video/mp4")
        with pytest.raises(errors.ConfigError):
            await session.send_text("")
        with pytest.raises(errors.ConfigError):
            await session.send_raw(gl.types.ClientMessage())
        with pytest.raises(errors.ConfigError, match="no id"):
            await session.send_tool_response(FunctionResponse(name="f", response={}))
        with pytest.raises(errors.ConfigError):
            await session.send_raw(gl.types.ClientMessage(setup=Setup(model=MODEL)))
        await session.send_text("still fine")
        await collect_until(session, is_turn_complete)
    assert len(server.received[0]) == 2  # setup + the one valid text


@pytest.mark.parametrize("mode", ["header", "query"])
async def test_api_key_auth(backend_name: str, mode: str) -> None:
    async with FakeLiveServer(require_api_key=KEY) as server:
        url = server.url + (f"?key={KEY}" if mode == "query" else "")
        auth = gl.Auth.api_key(KEY) if mode == "header" else gl.Auth.none()
        async with gl.connect(config_for(server, backend_name, url=url, auth=auth)) as session:
            assert session.status == "open"
        conn = server.connections[0]
        if mode == "header":
            assert conn.headers.get("x-goog-api-key") == KEY
            assert "key=" not in conn.path


async def test_wrong_key_is_auth_error_not_retried(backend_name: str) -> None:
    async with FakeLiveServer(require_api_key=KEY) as server:
        cfg = config_for(
            server,
            backend_name,
            auth=gl.Auth.api_key("AIzaWRONGKEY000000000000000000"),
            reconnect=gl.ReconnectPolicy(retry_initial=True, base_backoff=0.01),
        )
        with pytest.raises(errors.AuthError) as info:
            await gl.connect(cfg)
        assert info.value.code == 1007
        assert "API key not valid" in info.value.reason
        assert not info.value.retryable
        assert len(server.connections) == 1
        assert "WRONGKEY" not in str(info.value)


@pytest.mark.parametrize("in_query", [False, True])
async def test_ephemeral_token_on_constrained_endpoint(backend_name: str, in_query: bool) -> None:
    token = "auth_tokens/abc123"
    async with FakeLiveServer(require_token=token) as server:
        url = server.url_for(kind="constrained", version="v1alpha")
        auth = gl.Auth.ephemeral_token(token, in_query=in_query)
        async with gl.connect(config_for(server, backend_name, url=url, auth=auth)) as session:
            assert session.status == "open"
        conn = server.connections[0]
        if in_query:
            assert "access_token" in conn.query
        else:
            assert conn.headers.get("authorization") == f"Token {token}"


async def test_vertex_bearer_provider_is_called_on_every_connect(backend_name: str) -> None:
    tokens = iter(["ya29.first", "ya29.second", "ya29.third"])
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return next(tokens)

    async with FakeLiveServer(require_bearer=None) as server:
        url = server.url_for(kind="vertex", version="v1beta1")
        setup = Setup(model="projects/p/locations/us-central1/publishers/google/models/m")
        cfg = config_for(
            server, backend_name, url=url, auth=gl.Auth.bearer_provider(provider), setup=setup
        )
        async with gl.connect(cfg) as session:
            await collect_until(session, lambda e: isinstance(e, ev.SetupComplete))
            await server.drop()
            await collect_until(session, lambda e: isinstance(e, ev.Resumed))
        assert calls == 2
        auths = [c.headers.get("authorization") for c in server.connections]
        assert auths == ["Bearer ya29.first", "Bearer ya29.second"]


async def test_setup_timeout(backend_name: str) -> None:
    async with FakeLiveServer(send_setup_complete=False) as server:
        cfg = config_for(server, backend_name, setup_timeout=0.3)
        with pytest.raises(errors.SetupTimeout):
            await gl.connect(cfg)


async def test_setup_rejected_is_invalid_config_not_retried(backend_name: str) -> None:
    async with FakeLiveServer(reject_setup=(1007, "Request contains an invalid argument.")) as srv:
        cfg = config_for(srv, backend_name, reconnect=gl.ReconnectPolicy(retry_initial=True))
        with pytest.raises(errors.InvalidConfig) as info:
            await gl.connect(cfg)
        assert info.value.phase == "setup"
        assert len(srv.connections) == 1


async def test_concurrent_senders_and_subscribers(
    server: FakeLiveServer, backend_name: str
) -> None:
    cfg = config_for(server, backend_name, subscriber_queue=16)
    async with gl.connect(cfg) as session:
        fast_a = session.events()
        fast_b = session.events()
        slow = session.events()

        async def sender(task_id: int) -> None:
            for i in range(20):
                await session.send_audio(bytes([task_id, i]) * 320)

        async with asyncio.timeout(10):
            await asyncio.gather(*(sender(t) for t in range(10)))
            await session.send_text("done")
            got_a = await collect_until(fast_a, is_turn_complete)
            got_b = await collect_until(fast_b, is_turn_complete)
            # Produce more than the slow subscriber can hold, then read it.
            for _ in range(3):
                await session.send_text("again")
                await collect_until(fast_a, is_turn_complete)
            lagged = await collect_until(slow, lambda e: isinstance(e, ev.Lagged))
    assert got_a == got_b
    assert isinstance(lagged[0], ev.Lagged) and lagged[0].count > 0
    audio = [
        m.realtime_input.audio.decoded()
        for m in server.received[0]
        if m.realtime_input is not gl.types.UNSET and m.realtime_input.audio is not gl.types.UNSET
    ]
    assert len(audio) == 200
    per_task: dict[int, list[int]] = {}
    for pcm in audio:
        per_task.setdefault(pcm[0], []).append(pcm[1])
    assert all(seq == list(range(20)) for seq in per_task.values())  # order per sender kept


async def test_go_away_rotates_and_resumes(server: FakeLiveServer, backend_name: str) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        await session.send_text("first")
        await collect_until(session, lambda e: isinstance(e, ev.SessionResumptionUpdate))
        sid = session.session_id
        await server.send_go_away(time_left=2.0)
        events = await collect_until(session, lambda e: isinstance(e, ev.Resumed))
        assert isinstance(events[-1], ev.Resumed) and events[-1].state_restored
        assert any(isinstance(e, ev.GoAway) for e in events)
        await session.send_text("second")
        await collect_until(session, is_turn_complete)
        assert session.session_id == sid
        assert session.stats.go_away_rotations == 1
    assert len(server.connections) == 2
    assert server.connections[1].resumed_from is not None
    # The old socket was closed by us before the new one was opened.
    assert server.connections[0].close_code == 1000


async def test_messages_sent_while_disconnected_arrive_once_in_order(
    server: FakeLiveServer, backend_name: str
) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        await session.send_text("warm up")
        await collect_until(session, lambda e: isinstance(e, ev.SessionResumptionUpdate))
        await server.drop()
        await collect_until(session, lambda e: isinstance(e, ev.Reconnecting))
        for i in range(5):
            await session.send_text(f"queued {i}")
        await collect_until(session, lambda e: isinstance(e, ev.Resumed))
        await server.wait_for_messages(6, connection=1)
    texts_rx = [
        m.realtime_input.text for m in server.received[1] if m.realtime_input is not gl.types.UNSET
    ]
    assert texts_rx[:5] == [f"queued {i}" for i in range(5)]


async def test_offline_buffer_overflow_raises(server: FakeLiveServer, backend_name: str) -> None:
    cfg = config_for(
        server,
        backend_name,
        offline_buffer_bytes=4000,
        reconnect=gl.ReconnectPolicy(base_backoff=5.0, max_backoff=5.0),
    )
    async with gl.connect(cfg) as session:
        # The connection was not healthy yet (no turn, < 10 s), so even the first retry
        # waits 5 s: the session stays offline meanwhile.
        await server.close(1011, "Internal error encountered.")
        await collect_until(session, lambda e: isinstance(e, ev.Reconnecting) and e.attempt == 1)
        sent = 0
        with pytest.raises(errors.QueueFullError):
            for _ in range(100):
                await session.send_audio(bytes(640))
                sent += 1
        assert 0 < sent < 100
        assert session.stats.frames_queued_offline == sent


async def test_server_errors_back_off_and_give_up(backend_name: str) -> None:
    async with FakeLiveServer(reject_setup=None) as server:
        cfg = config_for(
            server,
            backend_name,
            reconnect=gl.ReconnectPolicy(base_backoff=0.01, max_backoff=0.02, max_attempts=3),
        )
        session = await gl.connect(cfg)
        server.reject_next_setups(10, (1011, "Internal error encountered."))
        await server.close(1011, "Internal error encountered.")
        seen: list[ev.Event] = []
        with pytest.raises(errors.ServerError):
            async with asyncio.timeout(5):
                async for event in session:
                    seen.append(event)  # noqa: PERF401 - keep what came before the error
        attempts = [e.attempt for e in seen if isinstance(e, ev.Reconnecting)]
        assert attempts == [1, 2, 3]
        assert isinstance(seen[-1], ev.Closed)
        assert session.status == "closed"


async def test_stale_handle_starts_fresh_session(server: FakeLiveServer, backend_name: str) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        await session.send_text("remember me")
        await collect_until(session, lambda e: isinstance(e, ev.SessionResumptionUpdate))
        server.expire_handles()
        await server.drop()
        events = await collect_until(session, lambda e: isinstance(e, ev.Resumed))
        # the conversation so far (the user's text and the model's reply) seeds it
        assert events[-1] == ev.Resumed(state_restored=False, reseeded=True, turns=2)
        assert session.stats.fresh_sessions_after_loss == 1
        await session.send_text("what did I say?")
        got = await collect_until(session, is_turn_complete)
    assert "Earlier you said: remember me" in texts(got)  # the fresh session remembers
    fresh = server.connections[-1]  # [1] was the rejected resume
    assert fresh.resumed_from is None and server.connections[1].close_code == 1008
    assert fresh.setup is not None and fresh.setup.history_config is not UNSET
    seed = fresh.received[1].client_content
    assert seed is not UNSET and seed.turn_complete is not True
    assert seed.turns is not UNSET
    assert [c.role for c in seed.turns] == ["user", "model"]
    assert seed.turns[0].parts is not UNSET and seed.turns[0].parts[0].text == "remember me"
    nxt = fresh.received[2].realtime_input
    assert nxt is not UNSET and nxt.text == "what did I say?"


async def test_reseeding_can_be_turned_off(server: FakeLiveServer, backend_name: str) -> None:
    async with gl.connect(config_for(server, backend_name, reseed=False)) as session:
        assert session.history is None
        await session.send_text("remember me")
        await collect_until(session, lambda e: isinstance(e, ev.SessionResumptionUpdate))
        server.expire_handles()
        await server.drop()
        events = await collect_until(session, lambda e: isinstance(e, ev.Resumed))
        assert events[-1] == ev.Resumed(state_restored=False)
        await session.send_text("what did I say?")
        got = await collect_until(session, is_turn_complete)
    assert "Earlier you said: nothing" in texts(got)  # without the seed it forgot


async def test_connect_with_history_seeds_a_brand_new_session(
    server: FakeLiveServer, backend_name: str
) -> None:
    cfg = config_for(
        server, backend_name, history=[("user", "my name is Ada"), ("model", "Hi Ada")]
    )
    async with gl.connect(cfg) as session:
        assert session.history is not None and len(session.history) == 2
        await session.send_text("what did I say?")
        got = await collect_until(session, is_turn_complete)
    assert "Earlier you said: my name is Ada" in texts(got)
    seed = server.connections[0].received[1].client_content
    assert seed is not UNSET and seed.turns is not UNSET and len(seed.turns) == 2


async def test_go_away_waits_for_pending_blocking_tool_call(
    server: FakeLiveServer, backend_name: str
) -> None:
    setup = Setup(
        model=MODEL,
        tools=[Tool.functions(FunctionDeclaration(name="lookup", behavior="BLOCKING"))],
    )
    async with gl.connect(config_for(server, backend_name, setup=setup)) as session:
        await server.send_tool_call(calls=[("call-9", "lookup", {"q": "x"})])
        events = await collect_until(session, lambda e: isinstance(e, ev.ToolCall))
        call = events[-1]
        assert isinstance(call, ev.ToolCall)
        assert call.calls == (FunctionCall(id="call-9", name="lookup", args={"q": "x"}),)
        await server.send_go_away(time_left=3.0)
        await collect_until(session, lambda e: isinstance(e, ev.GoAway))
        await session.send_tool_response(
            FunctionResponse(id="call-9", name="lookup", response={"output": "42"})
        )
        await collect_until(session, lambda e: isinstance(e, ev.Resumed), within=6)
    first_conn = server.received[0]
    assert any(m.tool_response is not gl.types.UNSET for m in first_conn)


async def test_secrets_never_leak(backend_name: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = "AIzaSECRETSECRETSECRET0123456789"
    caplog.set_level(logging.DEBUG)
    async with FakeLiveServer(require_api_key=KEY) as server:
        cfg = config_for(server, backend_name, auth=gl.Auth.api_key(secret))
        with pytest.raises(errors.AuthError) as info:
            await gl.connect(cfg)
        session = gl.Session(cfg)
    texts_seen = [str(info.value), repr(info.value), repr(session), repr(cfg), caplog.text]
    for text in texts_seen:
        assert secret not in text


async def test_context_update_survives_a_resume(server: FakeLiveServer, backend_name: str) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        new_tools = [Tool.functions(FunctionDeclaration(name="fresh", behavior="NON_BLOCKING"))]
        await session.send_context_update(system_instruction="Be brief.", tools=new_tools)
        await session.send_text("hi")
        await collect_until(session, lambda e: isinstance(e, ev.SessionResumptionUpdate))
        await server.send_go_away(time_left=2.0)
        await collect_until(session, lambda e: isinstance(e, ev.Resumed))
    update = server.received[0][1].context_update
    assert update is not gl.types.UNSET and update.tools is not gl.types.UNSET
    resumed_setup = server.connections[1].setup
    assert resumed_setup is not None
    assert resumed_setup.tools == new_tools
    si = resumed_setup.system_instruction
    assert si is not gl.types.UNSET and si.parts is not gl.types.UNSET
    assert si.parts[0].text == "Be brief."


async def test_idle_watchdog_reconnects_a_silent_connection(
    server: FakeLiveServer, backend_name: str
) -> None:
    cfg = config_for(server, backend_name, idle_timeout=0.3)
    async with gl.connect(cfg) as session:
        await session.send_text("hi")
        await collect_until(session, lambda e: isinstance(e, ev.SessionResumptionUpdate))
        # The server now stays silent: the watchdog gives up on the socket and resumes.
        events = await collect_until(session, lambda e: isinstance(e, ev.Resumed))
    reconnecting = [e for e in events if isinstance(e, ev.Reconnecting)]
    assert reconnecting and "idle" in reconnecting[0].cause
    assert events[-1] == ev.Resumed(state_restored=True)
    assert session.stats.abrupt_drops == 1


FRAMES = Path(__file__).resolve().parents[1] / "frames"

#: Golden frames whose events the app must see (setupComplete and goAway are exercised
#: by the lifecycle tests; goAway here would rotate the connection).
INJECTED = [
    "server_content_text_thought",
    "server_content_multi_part",
    "server_content_interrupted_audio",
    "server_content_interim_input_transcription",
    "server_content_input_transcription",
    "server_content_output_transcription",
    "grounding_metadata",
    "tool_call_parallel",
    "tool_call_cancellation",
    "voice_activity",
    "voice_activity_detection_signal",
    "turn_complete_reason",
    "multi_field",
    "usage_vertex_candidates",
    "error_body",
    "unknown_top_level_field",
]


async def test_every_event_kind_reaches_the_app_in_frame_order(backend_name: str) -> None:
    frames = [(FRAMES / f"{name}.json").read_bytes() for name in INJECTED]
    expected: list[ev.Event] = []
    for data in frames:
        expected.extend(decode_events(data))
    # No oracle validation here: some of these frames carry Vertex names, unknown fields or
    # an error body on purpose, which google-genai's strict types reject.
    async with FakeLiveServer() as server, gl.connect(config_for(server, backend_name)) as session:
        first = await session.next_event()
        assert isinstance(first, ev.SetupComplete)
        for data in frames:
            await server.send(data)
        got: list[ev.Event] = []
        async with asyncio.timeout(5):
            while len(got) < len(expected):
                item = await session.next_event()
                assert item is not None
                got.append(item)
    assert got == expected
    missing = {
        ev.ModelText,
        ev.ModelAudio,
        ev.Interrupted,
        ev.InputTranscription,
        ev.OutputTranscription,
        ev.Grounding,
        ev.ToolCall,
        ev.ToolCallCancellation,
        ev.VoiceActivity,
        ev.VadSignal,
        ev.TurnComplete,
        ev.Usage,
        ev.SessionResumptionUpdate,
        ev.ErrorReport,
    } - {type(e) for e in got}
    assert not missing


async def test_on_event_callbacks_see_the_stream_in_order(
    server: FakeLiveServer, backend_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[ev.Event] = []
    done = asyncio.Event()

    def record(event: ev.Event) -> None:
        seen.append(event)
        if isinstance(event, ev.TurnComplete):
            done.set()

    def broken(event: ev.Event) -> None:
        raise RuntimeError("bug in the app")

    async with gl.connect(config_for(server, backend_name)) as session:
        remove = session.on_event(record)
        remove_broken = session.on_event(broken)
        await session.send_text("hello")
        streamed = await collect_until(session, is_turn_complete)
        async with asyncio.timeout(5):
            await done.wait()
        remove()
        remove_broken()
        errors_seen = session.stats.callback_errors
        await session.send_text("again")
        await collect_until(session, is_turn_complete)
    # Up to the turn's end, the callback saw exactly what the stream delivered after it was
    # registered (SetupComplete came before); trailing events may follow before removal.
    end = next(i for i, e in enumerate(seen) if isinstance(e, ev.TurnComplete))
    assert seen[: end + 1] == streamed[1:]
    assert errors_seen == len(seen)
    assert session.stats.callback_errors == errors_seen  # removed: not called again
    assert "an on_event callback raised" in caplog.text


async def test_callbacks_only_session(server: FakeLiveServer, backend_name: str) -> None:
    got: list[ev.Event] = []
    turn = asyncio.Event()

    def on(event: ev.Event) -> None:
        got.append(event)
        if isinstance(event, ev.TurnComplete):
            turn.set()

    cfg = config_for(server, backend_name, main_stream=False)
    async with gl.connect(cfg) as session:
        session.on_event(on)
        with pytest.raises(errors.ConfigError, match="main_stream"):
            await session.next_event()
        with pytest.raises(errors.ConfigError):
            aiter(session)
        await session.send_text("hi")
        async with asyncio.timeout(5):
            await turn.wait()
    assert any(isinstance(e, ev.ModelAudio) for e in got)
    assert isinstance(got[-1], ev.Closed)


async def test_the_only_callback_gets_events_directly_and_its_errors_are_counted(
    server: FakeLiveServer, backend_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # One on_event callback and no stream: the frame paths call it without the fan-out
    # (Session._route_events); what it raises is still counted and logged, and a stream
    # subscribed later gets its events as well.
    calls: list[type] = []
    turn = asyncio.Event()

    def broken(event: ev.Event) -> None:
        calls.append(type(event))
        if isinstance(event, ev.TurnComplete):
            turn.set()
        raise RuntimeError("bug in the app")

    cfg = config_for(server, backend_name, main_stream=False)
    async with gl.connect(cfg) as session:
        session.on_event(broken)
        await session.send_text("hi")
        async with asyncio.timeout(5):
            await turn.wait()
        assert ev.ModelAudio in calls
        assert session.stats.callback_errors == len(calls)
        stream = session.events()
        turn.clear()
        await session.send_text("again")
        extra = await collect_until(stream, is_turn_complete)
        async with asyncio.timeout(5):
            await turn.wait()
        turn.clear()
        before = len(calls)
        await session.send_text("third")
        async with asyncio.timeout(5):
            await turn.wait()
        assert ev.ModelAudio in calls[before:]
    assert any(isinstance(e, ev.ModelAudio) for e in extra)
    assert session.stats.callback_errors == len(calls)
    assert "an on_event callback raised" in caplog.text


async def test_session_metrics_track_each_turn(server: FakeLiveServer, backend_name: str) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        for text in ("one", "two"):
            await session.send_text(text)
            await collect_until(session, is_turn_complete)
        await collect_until(session, lambda e: isinstance(e, ev.SessionResumptionUpdate))
    assert session.latency is not None and session.usage is not None
    turns = list(session.latency.turns)
    assert len(turns) == 2
    for turn in turns:
        first_audio, done = turn.time_to_first_audio, turn.time_to_turn_complete
        assert first_audio is not None and done is not None
        assert 0 <= first_audio <= done < 5
    usage = list(session.usage.turns)
    assert len(usage) == 2
    assert session.usage.session.total == sum(t.tokens.total for t in usage) > 0
