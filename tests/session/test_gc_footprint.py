"""What a connected session holds for the cyclic garbage collector (issue 24, W2).

A full collection walks every GC-tracked object of the process: with hundreds of sessions
in one loop, each object a session keeps for its whole life adds to every generation-2
pause. A served session keeps no ``asyncio.wait`` machinery, no setup futures, no closure
cells in its per-connection functions and no empty containers a tuple can stand in for.
``python -m bench.memory --tracked`` counts the objects by type.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import gemini_live as gl
from gemini_live.history import History, _Text
from gemini_live.testing import FakeLiveServer

from .conftest import config_for


def _await_chain(task: asyncio.Task[Any]) -> list[str]:
    """The names of the coroutines a task is suspended in, outermost first."""
    names = []
    coro: Any = task.get_coro()
    while coro is not None and hasattr(coro, "cr_await"):
        names.append(coro.__qualname__)
        coro = coro.cr_await
    return names


async def _served(session: gl.Session) -> None:
    async with asyncio.timeout(5):
        first = await session.next_event()
    assert isinstance(first, gl.events.SetupComplete)
    connector = session._connector
    for _ in range(100):  # loop steps until the runner takes up its wait (no time passes)
        if connector._wake is not None and not connector._wake.done():
            break
        await asyncio.sleep(0)
    assert connector._wake is not None and not connector._wake.done()


async def test_a_served_session_waits_on_one_future_and_keeps_no_setup_futures(
    server: FakeLiveServer, backend_name: str
) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        await _served(session)
        connector = session._connector
        assert connector.task is not None
        chain = _await_chain(connector.task)
        assert chain[-1] == "Connector._serve_connection"  # awaits its wake future itself
        assert "wait" not in chain and "_wait" not in chain
        assert connector._wake is not None and not connector._wake.done()
        handler = connector.handler
        assert handler is not None and handler.closed is None
        assert connector._setup_waiter is None
        assert session._first_ready is None
        # Still woken by the socket's close (a poke: tests/session/test_idle_footprint.py).
        await server.drop()
        async with asyncio.timeout(5):
            async for event in session:
                if isinstance(event, gl.events.Resumed):
                    break
        assert session.stats.reconnects == 1
    assert session.status == "closed"


async def test_per_connection_functions_hold_no_cells(
    server: FakeLiveServer, backend_name: str
) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        await _served(session)
        handler = session._connector.handler
        assert handler is not None
        assert handler.on_frame.__closure__ is None
        writer = session._write_audio
        if writer is not None:  # the transport writes synchronously
            assert writer.__closure__ is None
        # And both still do their work: audio goes out, frames come in.
        await session.send_audio(b"\x01\x00" * 320)
        await session.send_audio_stream_end()
        async with asyncio.timeout(5):
            async for event in session:
                if isinstance(event, gl.events.TurnComplete):
                    break


async def test_an_idle_session_keeps_no_empty_lists_a_tuple_stands_in_for(
    server: FakeLiveServer, backend_name: str
) -> None:
    async with gl.connect(config_for(server, backend_name, metrics=True)) as session:
        await _served(session)
        outbox = session.protocol._outbox
        assert outbox.seed == () and outbox.pending == () and outbox.unconfirmed == ()
        assert outbox.unanswered == () and outbox.probes == ()
        win = outbox._win
        gc.collect()
        for table in (win.heads, win.sizes, win.bps):
            assert type(table) is tuple and not gc.is_tracked(table)
        history = session.history
        assert history is not None
        assert history._pending.user.parts == () and history._pending.model.parts == ()
        assert session.usage is not None and session.usage._session_changes == ()
        transport = session._connector.transport
        if backend_name == "picows":
            assert not hasattr(transport, "__dict__")
            assert transport._drain_waiters == ()  # type: ignore[union-attr]


def test_text_fragments_go_back_to_an_empty_tuple() -> None:
    text = _Text()
    assert text.parts == () and not text
    assert text.add("hello ", 100) == 0
    assert text.add("world", 100) == 0
    parts: object = text.parts
    assert type(parts) is list and list(text) == ["hello ", "world"]
    assert text.take() == ("hello world", 0)
    assert text.parts == () and not text and text.chars == 0
    assert text.add("abcdef", 4) == 2  # cut from the front (a deque from here on)
    assert list(text) == ["cdef"]
    assert text.take() == ("cdef", 2)
    assert text.parts == ()
    assert text.add("xy", 4) == 0
    assert list(text) == ["xy"]
    history = History(max_chars=8)
    history.observe_words("")  # nothing: still no container
    assert history._pending.model.parts == ()
    history.observe_words("one ")
    history.observe_words("two ")
    history.observe_words("three")
    assert "".join(history._pending.model) == "wo three"
    assert history._pending.model.chars == 8 and history.cut_chars == 5


def test_the_outbox_queues_go_back_to_an_empty_tuple() -> None:
    from gemini_live.protocol._outbox import Kind, Outbox, ResendWindow
    from gemini_live.protocol._state import Connection, SessionStats, State

    # Any: the test reads the queues after each step (mypy would keep the narrowing).
    box: Any = Outbox(
        SessionStats(),
        input_rate=16000,
        offline_buffer_bytes=1 << 20,
        max_frame_bytes=1 << 20,
        resend=ResendWindow(),
    )
    assert box.pending == () and box.unconfirmed == ()
    assert box.submit(b'{"a":1}', Kind.TEXT, 0.0, None, False) is None  # offline: queued
    assert [o[0] for o in box.pending] == [b'{"a":1}']
    conn = Connection()
    conn.state = State.OPEN
    assert box.hand_out(conn, 1.0) == [b'{"a":1}']
    assert box.pending == () and len(box.unconfirmed) == 1
    box.unwritten(conn)  # back to the queue, in order
    assert box.unconfirmed == () and [o[0] for o in box.pending] == [b'{"a":1}']
    assert box.hand_out(conn, 2.0) == [b'{"a":1}']
    box.written(1)
    assert box.pending == () and box.unconfirmed == ()
    box.set_seed([])
    assert box.seed == ()
    box.set_seed([b'{"seed":1}'])
    assert box.release_seed() and box.seed == ()
    assert box.discard() == 1 and box.pending == ()
