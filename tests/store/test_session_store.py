"""A session bound to a stored conversation, end to end against the fake server.

The fake forgets what it consumed after the handle a client resumes from (as the
service does), so a lost or doubled user turn shows in its conversation state.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.errors import StaleFenceError
from gemini_live.store import ConversationStore, MemoryStore, SqliteStore
from gemini_live.testing import FakeLiveServer

from .conftest import FakeClock

MODEL = "models/gemini-3.8-live"
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
async def server() -> AsyncIterator[FakeLiveServer]:
    async with FakeLiveServer(reply_chunks=1) as srv:
        yield srv


def _options(server: FakeLiveServer, **extra: object) -> dict[str, object]:
    options: dict[str, object] = {
        "url": server.url,
        "backend": server.memory_backend(),
        "model": MODEL,
        "output_audio_transcription": True,
        "reconnect": gl.ReconnectPolicy(base_backoff=0.01, max_backoff=0.05),
        "open_timeout": 5.0,
        "setup_timeout": 5.0,
    }
    options.update(extra)
    return options


async def _until(
    session: gl.Session, kind: type[ev.Event], within: float = 5.0, *, handle: bool = False
) -> list[ev.Event]:
    """Events of the main stream up to and including the first ``kind`` (with
    ``handle``: the first resumable handle update)."""
    seen: list[ev.Event] = []
    async with asyncio.timeout(within):
        async for event in session:
            seen.append(event)
            if isinstance(event, kind) and (
                not handle or (isinstance(event, ev.SessionResumptionUpdate) and event.resumable)
            ):
                return seen
    raise AssertionError(f"the stream ended before {kind.__name__}: {seen}")


async def _turn(session: gl.Session, text: str) -> list[ev.Event]:
    await session.send_text(text)
    events = await _until(session, ev.SessionResumptionUpdate, handle=True)  # reply, handle
    link = session.conversation
    assert link is not None
    async with asyncio.timeout(5):  # the saver writes the state after the handle
        await link.wait_saved(lambda: (link.saved_at or 0) >= (link.handle_at or 1e18))
    return events


def _crash(session: gl.Session) -> None:
    """What a process that dies leaves: no last save, no release, no clean close."""
    link = session.conversation
    assert link is not None
    link.abandon()
    transport = session._connector.transport
    if transport is not None:
        transport.abort()
    assert session._runner is not None
    session._runner.cancel()


def _answers(events: list[ev.Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, ev.ModelText | ev.OutputTranscription))


async def test_a_new_conversation_just_starts_and_is_saved(server: FakeLiveServer) -> None:
    store = MemoryStore()
    async with gl.connect(conversation="c-new", store=store, **_options(server)) as s:  # type: ignore[arg-type]
        assert s.conversation is not None and s.conversation.fence == 1
        events = await _turn(s, "hello")
        assert not any(isinstance(e, ev.Resumed) for e in events)
    record = await store.load("c-new")
    assert record is not None and [e.text for e in record.history][:1] == ["hello"]
    assert record.snapshot.resume_handle is not None
    # closed cleanly: the lease is free at once
    lease = await store.acquire("c-new", "next")
    assert lease.fence == 2


async def test_resume_from_the_store_after_a_crash(server: FakeLiveServer) -> None:
    store = MemoryStore(lease_ttl=0.5)
    a = await gl.connect(conversation="c1", store=store, **_options(server))  # type: ignore[arg-type]
    await _turn(a, "first")
    await _turn(a, "second")
    sid = a.session_id
    _crash(a)
    async with gl.connect(conversation="c1", store=store, **_options(server)) as b:  # type: ignore[arg-type]
        events = await _until(b, ev.Resumed)
        resumed = events[-1]
        assert isinstance(resumed, ev.Resumed)
        assert resumed.state_restored and resumed.from_store and not resumed.reseeded
        assert resumed.handle_age is not None and 0 <= resumed.handle_age < 30
        assert b.session_id == sid
        reply = await _turn(b, "third")
        assert "You said: third" in _answers(reply)
    conv = server.conversation(sid)
    assert conv.user_texts == ("first", "second", "third")  # each once, in order
    assert len(conv.answers) == 3


async def test_unsent_text_is_sent_after_a_crash(server: FakeLiveServer) -> None:
    """A text queued while the connection was down when the process died goes out from
    the new process, once."""
    store = MemoryStore(lease_ttl=0.5)
    a = await gl.connect(conversation="c2", store=store, **_options(server))  # type: ignore[arg-type]
    await _turn(a, "one")
    link = a.conversation
    assert link is not None
    server.reject_next_setups(10_000, (1011, "Internal error encountered."))
    a._connector.transport.abort()  # type: ignore[union-attr]
    before = link.saves
    await a.send_text("two")  # queued while reconnecting; the save holds it
    async with asyncio.timeout(5):
        await link.wait_saved(lambda: link.saves > before)
    _crash(a)
    server.reject_next_setups(0, (1011, "Internal error encountered."))
    async with gl.connect(conversation="c2", store=store, **_options(server)) as b:  # type: ignore[arg-type]
        events = await _until(b, ev.TurnComplete)
        assert any(isinstance(e, ev.Resumed) and e.from_store and e.state_restored for e in events)
        assert "You said: two" in _answers(events)
        sid = b.session_id
    assert server.conversation(sid).user_texts == ("one", "two")


async def test_a_rejected_handle_reseeds_from_the_stored_history(server: FakeLiveServer) -> None:
    store = MemoryStore(lease_ttl=0.5)
    a = await gl.connect(conversation="c3", store=store, **_options(server))  # type: ignore[arg-type]
    await _turn(a, "my name is Ada")
    old = a.session_id
    _crash(a)
    server.expire_handles()
    async with gl.connect(conversation="c3", store=store, **_options(server)) as b:  # type: ignore[arg-type]
        events = await _until(b, ev.Resumed)
        resumed = events[-1]
        assert isinstance(resumed, ev.Resumed)
        assert not resumed.state_restored and resumed.reseeded and resumed.from_store
        assert resumed.turns >= 1 and resumed.handle_age is not None
        assert b.session_id != old
        reply = await _turn(b, "what did I say")
        assert "my name is Ada" in _answers(reply)


async def test_another_setup_reseeds_instead_of_resuming(server: FakeLiveServer) -> None:
    store = MemoryStore(lease_ttl=0.5)
    a = await gl.connect(conversation="c4", store=store, **_options(server))  # type: ignore[arg-type]
    await _turn(a, "remember blue")
    old = a.session_id
    await a.close()
    options = _options(server, system_instruction="You are terse.")
    async with gl.connect(conversation="c4", store=store, **options) as b:  # type: ignore[arg-type]
        events = await _until(b, ev.Resumed)
        resumed = events[-1]
        assert isinstance(resumed, ev.Resumed)
        assert resumed.from_store and not resumed.state_restored and resumed.reseeded
        assert resumed.handle_age is None
        assert b.session_id != old
        reply = await _turn(b, "what did I say")
        assert "remember blue" in _answers(reply)


async def test_a_stale_owner_is_ended_with_a_clear_error(server: FakeLiveServer) -> None:
    clock = FakeClock()
    store = MemoryStore(lease_ttl=60.0, clock=clock)
    a = await gl.connect(conversation="c5", store=store, **_options(server))  # type: ignore[arg-type]
    await _turn(a, "hello")
    clock.now += 61  # a's lease ran out (it looked dead) and another worker took over
    thief = await store.acquire("c5", "other-worker")
    await a.send_text("are you there")  # the save after it is refused
    events = await _until(a, ev.Closed)
    closed = events[-1]
    assert isinstance(closed, ev.Closed) and "save refused" in closed.reason
    assert isinstance(a.error, StaleFenceError)
    await a.close()
    record = await store.load("c5")
    assert record is not None and record.epoch < thief.fence


async def test_a_live_owner_keeps_a_second_one_out(server: FakeLiveServer) -> None:
    store = MemoryStore(lease_ttl=0.3)
    async with gl.connect(conversation="c6", store=store, **_options(server)) as a:  # type: ignore[arg-type]
        with pytest.raises(gl.errors.ConversationBusy):
            async with asyncio.timeout(5):
                await gl.connect(conversation="c6", store=store, **_options(server))  # type: ignore[arg-type]
        assert not a.closed


async def test_a_handle_rejected_on_the_first_connect_says_so(server: FakeLiveServer) -> None:
    """No store: a handle in the setup that the service rejects gives Resumed(False)."""
    setup = gl.types.Setup(
        model=MODEL,
        output_audio_transcription=gl.types.AudioTranscriptionConfig(),
        session_resumption=gl.types.SessionResumptionConfig(handle="gone-handle"),
    )
    options = _options(server, setup=setup, history=[("user", "I like tea")])
    del options["model"], options["output_audio_transcription"]
    async with gl.connect(**options) as s:  # type: ignore[arg-type]
        events = await _until(s, ev.Resumed)
        resumed = events[-1]
        assert isinstance(resumed, ev.Resumed)
        assert not resumed.state_restored and resumed.reseeded and not resumed.from_store


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import gemini_live as gl
    from gemini_live import events as ev
    from gemini_live.store import SqliteStore

    async def main() -> None:
        store = SqliteStore(sys.argv[2], lease_ttl=1.0)
        s = await gl.connect(
            url=sys.argv[1], model="models/gemini-3.8-live", output_audio_transcription=True,
            conversation="killed", store=store, backend="websockets",
        )
        await s.send_text("before the kill")
        async with asyncio.timeout(10):
            async for event in s:
                if isinstance(event, ev.SessionResumptionUpdate) and event.resumable:
                    break
            link = s.conversation
            await link.wait_saved(lambda: (link.saved_at or 0) >= link.handle_at)
        print("READY", s.session_id, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_resume_after_sigkill(server: FakeLiveServer, tmp_path: Path) -> None:
    db = tmp_path / "conv.db"
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        server.url,
        str(db),
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("READY"), line
        sid = line.split()[1]
    finally:
        proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(10):
            await proc.wait()
    store = SqliteStore(db, lease_ttl=1.0)
    options = _options(server)
    options["backend"] = "websockets"
    async with gl.connect(conversation="killed", store=store, **options) as b:  # type: ignore[arg-type]
        events = await _until(b, ev.Resumed, within=10)
        resumed = events[-1]
        assert isinstance(resumed, ev.Resumed) and resumed.from_store and resumed.state_restored
        assert b.session_id == sid
        reply = await _turn(b, "after the kill")
        assert "You said: after the kill" in _answers(reply)
    assert server.conversation(sid).user_texts == ("before the kill", "after the kill")
    await store.aclose()


def test_store_needs_a_conversation_and_a_real_store() -> None:
    with pytest.raises(gl.ConfigError, match="needs conversation"):
        gl.build_config(store=MemoryStore())
    with pytest.raises(gl.ConfigError, match="ConversationStore"):
        gl.build_config(conversation="x", store=object())  # type: ignore[arg-type]
    with pytest.raises(gl.ConfigError, match="conversation id"):
        gl.build_config(conversation="no spaces please")
    assert isinstance(gl.build_config(conversation="ok").store, type(None))
    _ = ConversationStore


async def test_a_conversation_that_never_connected_is_not_written() -> None:
    store = MemoryStore()
    async with FakeLiveServer(reject_setup=(1011, "Internal error encountered.")) as server:
        with pytest.raises(gl.GeminiLiveError):
            await gl.connect(conversation="never", store=store, **_options(server))  # type: ignore[arg-type]
    assert await store.load("never") is None
    lease = await store.acquire("never", "next")  # released on the way out
    assert lease.fence == 2


async def test_audio_is_not_saved_per_chunk_and_is_counted(server: FakeLiveServer) -> None:
    store = MemoryStore()
    async with gl.connect(conversation="audio", store=store, **_options(server)) as s:  # type: ignore[arg-type]
        await _turn(s, "hello")
        link = s.conversation
        assert link is not None and link.unsaved_frames == 0
        saves = link.saves
        for _ in range(10):
            await s.send_audio(bytes(640))  # 20 ms of silence each
        assert not link._dirty and link.saves == saves  # no save is pending for audio
        assert link.unsaved_frames == 10  # what a crash now would lose
        await _turn(s, "and text")
        assert link.unsaved_frames == 0


async def test_text_ids_are_saved_with_their_text_and_restored(server: FakeLiveServer) -> None:
    store = MemoryStore(lease_ttl=0.5)
    a = await gl.connect(conversation="c-ids", store=store, **_options(server))  # type: ignore[arg-type]
    with pytest.raises(gl.ConfigError, match="text_id"):
        await a.send_text("never sent", text_id="not an id!")
    await a.send_text("first", text_id="t-1")
    link = a.conversation
    assert link is not None and link.has_text("t-1") and link.texts_unsaved == 1
    async with asyncio.timeout(5):
        await link.wait_texts_saved()
    record = await store.load("c-ids")
    assert record is not None and record.text_ids == ["t-1"]
    await _until(a, ev.SessionResumptionUpdate, handle=True)
    async with asyncio.timeout(5):
        await link.wait_saved(lambda: (link.saved_at or 0) >= (link.handle_at or 1e18))
    sid = a.session_id
    _crash(a)
    async with gl.connect(conversation="c-ids", store=store, **_options(server)) as b:  # type: ignore[arg-type]
        assert b.conversation is not None and b.conversation.has_text("t-1")
        assert not b.conversation.has_text("t-2")
        await _turn(b, "second")
    assert server.conversation(sid).user_texts == ("first", "second")


async def test_the_reconnect_counters_come_back_from_the_store(server: FakeLiveServer) -> None:
    store = MemoryStore(lease_ttl=0.5)
    a = await gl.connect(conversation="c-backoff", store=store, **_options(server))  # type: ignore[arg-type]
    await _turn(a, "hello")
    # As after an outage of three failed attempts and one rejected handle.
    a.protocol.reconnect.attempt = 3
    a.protocol.reconnect.fresh_in_a_row = 1
    assert a.conversation is not None
    await a.conversation.save_now()
    _crash(a)
    async with gl.connect(conversation="c-backoff", store=store, **_options(server)) as b:  # type: ignore[arg-type]
        counters = b._connector.reconnect.counters
        assert counters is b.protocol.reconnect
        assert (counters.attempt, counters.fresh_in_a_row) == (3, 1)


async def test_a_text_ends_with_the_turn_end_a_saved_handle_covers(server: FakeLiveServer) -> None:
    store = MemoryStore(lease_ttl=0.5)
    a = await gl.connect(conversation="c-ends", store=store, **_options(server))  # type: ignore[arg-type]
    link = a.conversation
    assert link is not None
    await a.send_text("first", text_id="e-1")
    assert link.text_state("e-1") == "open" and link.text_state("e-2") == "unknown"
    await _until(a, ev.TurnComplete)
    await _until(a, ev.SessionResumptionUpdate, handle=True)
    async with asyncio.timeout(5):
        await link.wait_saved(lambda: link.text_state("e-1") == "ended")
    record = await store.load("c-ends")
    assert record is not None and (record.text_ids, record.text_ids_ended) == (["e-1"], 1)
    # Accepted and saved, its turn not over in the record: open, across a crash too.
    await a.send_text("second", text_id="e-2")
    async with asyncio.timeout(5):
        await link.wait_texts_saved()
    if link.text_state("e-2") == "open":  # (its answer may have been quick)
        _crash(a)  # no await since: the record is the state just read
        async with gl.connect(conversation="c-ends", store=store, **_options(server)) as b:  # type: ignore[arg-type]
            other = b.conversation
            assert other is not None
            assert (other.text_state("e-1"), other.text_state("e-2")) == ("ended", "open")
    else:
        await a.close()
