"""Soak: stream numbered audio chunks while the server injects 200+ faults.

Transparent resumption (Vertex): every chunk arrives exactly once, in order.
Plain resumption: no duplicates, no reordering; losses happen only at connections the
server cut, and never exceed what the session reports as ``stats.frames_at_risk``.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer
from gemini_live.types import SessionResumptionConfig, Setup

from .conftest import MODEL, config_for

FAULTS = 200
CHUNKS_PER_FAULT = 6
VERTEX_MODEL = "projects/p/locations/us-central1/publishers/google/models/m"

pytestmark = [pytest.mark.soak, pytest.mark.timeout(60)]


def chunk(seq: int) -> bytes:
    """20 ms of 16 kHz PCM16 whose first 4 bytes carry the sequence number."""
    return struct.pack("<I", seq) + bytes(636)


def received_sequence(server: FakeLiveServer, *, consumed: bool) -> list[int]:
    """Sequence numbers the server got, in order.

    ``consumed=True`` reads the server's session state: messages a later resume rolled back
    (they came after the handle's checkpoint) are left out, as the real service forgets them.
    """
    out: list[int] = []
    for conn in server.consumed if consumed else server.received:
        for msg in conn:
            ri = msg.realtime_input
            if ri is not gl.types.UNSET and ri.audio is not gl.types.UNSET:
                out.append(struct.unpack_from("<I", ri.audio.decoded())[0])
    return out


def saw_text(server: FakeLiveServer, text: str) -> bool:
    return any(
        m.realtime_input is not gl.types.UNSET and m.realtime_input.text == text
        for conn in server.received
        for m in conn
    )


async def inject_faults(server: FakeLiveServer, stop: asyncio.Event) -> int:
    injected = 0
    kinds = ("drop", "go_away", "close")
    while injected < FAULTS and not stop.is_set():
        n_conn = len(server.connections)
        await server.wait_for_messages(CHUNKS_PER_FAULT, connection=n_conn - 1)
        kind = kinds[injected % 3]
        if kind == "drop":
            await server.drop()
        elif kind == "go_away":
            await server.send_go_away(time_left=0.5)
        else:
            await server.close(1011, "Internal error encountered.")
        injected += 1
        await server.wait_for_connections(n_conn + 1)
    return injected


@pytest.mark.parametrize("transparent", [True, False], ids=["transparent", "plain"])
@pytest.mark.parametrize("backend_name", ["memory", "picows", "websockets"])
async def test_soak_faults(backend_name: str, transparent: bool) -> None:
    async with FakeLiveServer(transparent=transparent, auto_reply=False) as server:
        if transparent:
            url = server.url_for(kind="vertex", version="v1beta1")
            setup = Setup(
                model=VERTEX_MODEL,
                session_resumption=SessionResumptionConfig(transparent=True),
            )
        else:
            url = server.url
            setup = Setup(model=MODEL)
        cfg = config_for(
            server,
            backend_name,
            url=url,
            setup=setup,
            reconnect=gl.ReconnectPolicy(base_backoff=0.001, max_backoff=0.002, max_attempts=None),
            subscriber_queue=100_000,
        )
        async with asyncio.timeout(50):
            session = await gl.connect(cfg)
            stop = asyncio.Event()
            injector = asyncio.create_task(inject_faults(server, stop))
            sent = 0
            while not injector.done():
                await session.send_audio(chunk(sent))
                sent += 1
                if sent % 2 == 0:
                    # Pace at ~40x real time: fast, yet a reconnect never has to absorb
                    # more than the offline buffer holds.
                    await asyncio.sleep(0.001)
            injected = injector.result()
            # Finish cleanly: let the last connection receive what is queued.
            await session.send_text("end")
            while not saw_text(server, "end"):
                await server.wait_for_messages(len(server.received[-1]) + 1, connection=-1)
            queued_left = len(session._queue)
            stats = session.stats
            await session.close()
            events: list[ev.Event] = []
            while (item := await session.next_event()) is not None:
                events.append(item)

    assert injected >= FAULTS
    seq = received_sequence(server, consumed=transparent)
    assert len(seq) == len(set(seq)), "a chunk arrived twice"
    assert seq == sorted(seq), "chunks were reordered"
    lost = sent - len(seq)
    if transparent:
        assert lost == 0
        assert seq == list(range(sent))
    else:
        assert 0 <= lost <= stats.frames_at_risk
    assert queued_left == 0
    # The app saw each connection's setupComplete once and one Resumed per reconnect.
    n_conns = len(server.connections)
    assert sum(isinstance(e, ev.SetupComplete) for e in events) == n_conns
    assert sum(isinstance(e, ev.Resumed) for e in events) == n_conns - 1
    assert not any(isinstance(e, ev.Lagged) for e in events)
    assert isinstance(events[-1], ev.Closed)
    assert session.protocol.unacknowledged <= 64
