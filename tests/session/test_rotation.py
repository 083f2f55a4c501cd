"""Nothing is lost across goAway, drops and flapping servers (every backend).

The fake server behaves as the service documents: after ``goAway`` it keeps serving the
connection until the deadline; a resume restores exactly the state of the handle, and
input consumed after that handle is forgotten (``ConnectionRecord.consumed`` leaves it
out). So these tests see a loss if the client does not re-send what a handle does not
cover.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct

import pytest

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer
from gemini_live.types import UNSET, ClientMessage, Content, Part, ServerContent, ServerMessage

from .conftest import config_for
from .test_session import collect_until, is_turn_complete, texts

CHUNK_MS = 20


def consumed_texts(server: FakeLiveServer) -> list[str]:
    """User texts the service's session state holds, in order (across resumes)."""
    out = []
    for conn in server.consumed:
        for msg in conn:
            ri = msg.realtime_input
            if ri is not UNSET and ri.text is not UNSET:
                out.append(ri.text)
    return out


def consumed_audio_seqs(server: FakeLiveServer) -> list[int]:
    out = []
    for conn in server.consumed:
        for msg in conn:
            ri = msg.realtime_input
            if ri is not UNSET and ri.audio is not UNSET:
                out.append(struct.unpack_from("<I", ri.audio.decoded())[0])
    return out


def chunk(seq: int) -> bytes:
    """20 ms of 16 kHz PCM16 whose first 4 bytes carry a sequence number."""
    return struct.pack("<I", seq) + bytes(636)


async def test_text_turn_after_go_away_is_answered_exactly_once(backend_name: str) -> None:
    async with (
        FakeLiveServer(
            go_away_after_messages=2, go_away_time_left=5.0, validate_frames=True
        ) as server,
        gl.connect(config_for(server, backend_name)) as session,
    ):
        replies = []
        for text in ("one", "two", "three"):
            await session.send_text(text)
            got = await collect_until(session, is_turn_complete)
            replies.append(texts(got))
        # The conversation goes on after the rotation, too.
        await session.send_text("four")
        replies.append(texts(await collect_until(session, is_turn_complete)))
        rotations = session.stats.go_away_rotations
    assert [r.count("You said: ") for r in replies] == [1, 1, 1, 1]
    assert "three" in replies[2] and "four" in replies[3]
    assert consumed_texts(server) == ["one", "two", "three", "four"]
    assert rotations == 1
    # the rotation waited for a clean point: the old connection closed cleanly, by us
    assert server.connections[0].close_code == 1000


async def test_audio_streamed_across_a_rotation_is_all_heard(backend_name: str) -> None:
    async with FakeLiveServer(auto_reply=False, go_away_time_left=5.0) as server:
        cfg = config_for(server, backend_name, resend=gl.ResendWindow(handle_guard=0.1))
        async with gl.connect(cfg) as session:
            for i in range(10):
                await session.send_audio(chunk(i))
            await server.wait_for_messages(10)
            await server.send_go_away(time_left=5.0)
            for i in range(10, 25):  # 500 ms in all, some during the drain
                await session.send_audio(chunk(i))
            await collect_until(session, lambda e: isinstance(e, ev.Resumed))
            await server.wait_for_messages(1, connection=1)
            while 24 not in consumed_audio_seqs(server):
                await server.wait_for_messages(len(server.received[1]) + 1, connection=1)
            at_risk = session.stats.frames_at_risk
    seqs = consumed_audio_seqs(server)
    assert set(seqs) == set(range(25)), "some audio was never heard"
    assert at_risk == 0
    # duplicates only as one re-sent run (the documented window), never reordered
    first_repeat = next((i for i in range(1, len(seqs)) if seqs[i] <= seqs[i - 1]), len(seqs))
    assert seqs[:first_repeat] == sorted(seqs[:first_repeat])
    assert seqs[first_repeat:] == sorted(seqs[first_repeat:])


async def test_the_turn_in_progress_at_go_away_is_delivered_whole(backend_name: str) -> None:
    tone = Part(inline_data=gl.types.Blob.of(bytes(1920), "audio/pcm;rate=24000"))
    async with (
        FakeLiveServer(auto_reply=False) as server,
        gl.connect(config_for(server, backend_name)) as session,
    ):
        await session.send_text("tell me a story")
        await server.wait_for_messages(1)
        audio = ServerMessage(server_content=ServerContent(model_turn=Content(parts=[tone])))
        for _ in range(5):
            await server.send(audio)
        await server.send_go_away(time_left=0.6)
        for _ in range(15):
            await server.send(audio)
        await server.send(ServerMessage(server_content=ServerContent(turn_complete=True)))
        got = await collect_until(session, lambda e: isinstance(e, ev.Reconnecting))
    assert sum(isinstance(e, ev.ModelAudio) for e in got) == 20
    assert any(isinstance(e, ev.TurnComplete) for e in got)


async def test_a_drop_during_the_flush_after_a_resume_loses_nothing(backend_name: str) -> None:
    async with FakeLiveServer() as server:
        cfg = config_for(
            server, backend_name, reconnect=gl.ReconnectPolicy(base_backoff=0.05, jitter=0)
        )
        session = await gl.connect(cfg)
        try:
            quiet = dataclasses.replace(server.options, send_setup_complete=False)
            loud, server.options = server.options, quiet
            await server.drop()
            await server.wait_for_connections(2)
            await session.send_text("queued while offline")
            await server.wait_for_messages(1, connection=1)  # the resume's setup
            await server.send(ServerMessage(setup_complete=gl.types.SetupComplete()), connection=1)
            await server.close(1011, "Internal error encountered.", connection=1)
            server.options = loud
            await server.wait_until(
                lambda: "queued while offline" in consumed_texts(server), within=10.0
            )
            assert session.error is None
        finally:
            await session.close()
    assert consumed_texts(server).count("queued while offline") == 1


async def test_a_flapping_server_sees_backoff_not_a_storm(backend_name: str) -> None:
    async with FakeLiveServer(auto_reply=False) as server:
        policy = gl.ReconnectPolicy(base_backoff=0.05, max_backoff=0.4, jitter=0, max_attempts=6)
        session = await gl.connect(config_for(server, backend_name, reconnect=policy))
        delays: list[float] = []

        def note(e: ev.Event) -> None:
            if isinstance(e, ev.Reconnecting):
                delays.append(e.delay)

        session.on_event(note)
        try:
            for n in range(1, 5):
                await server.close(1000, "The operation was cancelled.", connection=n - 1)
                await server.wait_for_connections(n + 1, within=5.0)
                await server.wait_for_setup(connection=n)
        finally:
            await session.close()
    # every connection died right after its setup: the delays grow, none is zero
    assert delays[:4] == [0.05, 0.1, 0.2, 0.4]
    assert len(server.connections) == 5


async def test_rotation_holds_input_while_draining_when_asked(backend_name: str) -> None:
    async with FakeLiveServer(go_away_time_left=5.0) as server:
        cfg = config_for(server, backend_name, drain_input="hold")
        async with gl.connect(cfg) as session:
            await session.send_text("one")
            await collect_until(session, is_turn_complete)
            await server.send_go_away(time_left=5.0)
            await collect_until(session, lambda e: isinstance(e, ev.GoAway))
            await session.send_text("two")  # held, then written on the new connection
            got = await collect_until(session, is_turn_complete)
    assert "You said: two" in texts(got)
    first = [m.realtime_input.text for m in server.received[0] if m.realtime_input is not UNSET]
    assert "two" not in first
    assert consumed_texts(server) == ["one", "two"]


async def test_client_messages_sent_raw_are_checked_and_resent(backend_name: str) -> None:
    async with FakeLiveServer() as server, gl.connect(config_for(server, backend_name)) as session:
        with pytest.raises(gl.errors.InvalidMessageError):
            await session.send_message(
                ClientMessage(
                    client_content=gl.types.ClientContent(
                        turns=[Content(parts=[Part(text=5)])],  # type: ignore[arg-type]
                    )
                )
            )
        await session.send_client_content("hello")
        got = await collect_until(session, is_turn_complete)
    assert "hello" in texts(got)
    assert len(server.received[0]) == 2  # setup + the one good message


async def test_many_go_aways_in_a_row_keep_the_conversation(backend_name: str) -> None:
    async with (
        FakeLiveServer(go_away_after_messages=1, go_away_time_left=3.0) as server,
        gl.connect(config_for(server, backend_name)) as session,
    ):
        for i in range(5):
            await session.send_text(f"msg {i}")
            got = await collect_until(session, is_turn_complete)
            assert f"You said: msg {i}" in texts(got)
        async with asyncio.timeout(5):
            while session.stats.go_away_rotations < 4:
                await collect_until(session, lambda e: isinstance(e, ev.Resumed))
    assert consumed_texts(server) == [f"msg {i}" for i in range(5)]
