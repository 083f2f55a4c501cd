"""Soak: a conversation of numbered audio chunks and text turns while the server injects
faults (drops, goAways, 1011 closes).

The fake server forgets, on every resume, whatever it consumed after the handle the
client resumed from, as the service does. So:

* Plain resumption (1,000 faults per run): every chunk and every text is in the
  session's state at the end (nothing lost beyond ``stats.frames_at_risk``); texts exactly
  once; audio never reordered, and repeated only as re-sent runs (the documented window).
  Every frame the server sent on a connection the client rotated away from was delivered.
* Transparent resumption (Vertex): every chunk exactly once, in order.
"""

from __future__ import annotations

import asyncio
import json
import struct

import pytest

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer
from gemini_live.types import UNSET, SessionResumptionConfig, Setup

from .conftest import MODEL, config_for

CHUNKS_PER_FAULT = 6
TICK_EVERY = 10  # a text turn every 10 chunks: the service answers and issues a handle
VERTEX_MODEL = "projects/p/locations/us-central1/publishers/google/models/m"

pytestmark = [pytest.mark.soak, pytest.mark.timeout(120)]


def chunk(seq: int) -> bytes:
    """20 ms of 16 kHz PCM16 whose first 4 bytes carry the sequence number."""
    return struct.pack("<I", seq) + bytes(636)


def consumed(server: FakeLiveServer) -> tuple[list[list[int]], list[str]]:
    """Per connection: audio sequence numbers in the session state; and all texts."""
    audio: list[list[int]] = []
    texts: list[str] = []
    for conn in server.consumed:
        seqs = []
        for msg in conn:
            ri = msg.realtime_input
            if ri is UNSET:
                continue
            if ri.audio is not UNSET:
                seqs.append(struct.unpack_from("<I", ri.audio.decoded())[0])
            elif ri.text is not UNSET:
                texts.append(ri.text)
        audio.append(seqs)
    return audio, texts


def saw_text(server: FakeLiveServer, text: str) -> bool:
    return any(
        m.realtime_input is not UNSET and m.realtime_input.text == text
        for conn in server.received
        for m in conn
    )


async def inject_faults(server: FakeLiveServer, faults: int, stop: asyncio.Event) -> int:
    injected = 0
    kinds = ("drop", "go_away", "close")
    while injected < faults and not stop.is_set():
        n_conn = len(server.connections)
        await server.wait_for_messages(CHUNKS_PER_FAULT, connection=n_conn - 1, within=10.0)
        kind = kinds[injected % 3]
        if kind == "drop":
            await server.drop()
        elif kind == "go_away":
            await server.send_go_away(time_left=2.0)
        else:
            await server.close(1011, "Internal error encountered.")
        injected += 1
        await server.wait_for_connections(n_conn + 1, within=10.0)
    return injected


def turn_completes_sent(record: object) -> int:
    n = 0
    for raw in getattr(record, "sent", []):
        obj = json.loads(raw)
        if obj.get("serverContent", {}).get("turnComplete") is True:
            n += 1
    return n


@pytest.mark.parametrize(
    ("transparent", "faults"), [(True, 300), (False, 1000)], ids=["transparent", "plain"]
)
@pytest.mark.parametrize("backend_name", ["memory", "picows", "websockets"])
async def test_soak_faults(backend_name: str, transparent: bool, faults: int) -> None:
    async with FakeLiveServer(
        transparent=transparent, auto_reply=not transparent, reply_chunks=1
    ) as server:
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
            reconnect=gl.ReconnectPolicy(
                base_backoff=0.001, max_backoff=0.002, max_attempts=None, healthy_after=0.001
            ),
            subscriber_queue=1_000_000,
            metrics=False,
        )
        per_conn_turns: list[int] = [0]
        async with asyncio.timeout(110):
            session = await gl.connect(cfg)

            def count(e: ev.Event) -> None:
                if isinstance(e, ev.SetupComplete):
                    per_conn_turns.append(0)
                elif isinstance(e, ev.TurnComplete):
                    per_conn_turns[-1] += 1

            session.on_event(count)
            stop = asyncio.Event()
            injector = asyncio.create_task(inject_faults(server, faults, stop))
            sent = 0
            ticks = 0
            while not injector.done():
                await session.send_audio(chunk(sent))
                sent += 1
                if not transparent and sent % TICK_EVERY == 0:
                    await session.send_text(f"tick {ticks}")
                    ticks += 1
                if sent % 2 == 0:
                    # Pace at ~40x real time: fast, yet a reconnect never has to absorb
                    # more than the offline buffer holds.
                    await asyncio.sleep(0.001)
            injected = injector.result()
            # Finish cleanly: let the last connection receive what is queued.
            await session.send_text("end")
            while not saw_text(server, "end"):
                await server.wait_for_messages(
                    len(server.received[-1]) + 1, connection=-1, within=10.0
                )
            queued_left = session.protocol.queued
            stats = session.stats
            await session.close()
            events: list[ev.Event] = []
            while (item := await session.next_event()) is not None:
                events.append(item)

    assert injected >= faults
    audio, texts = consumed(server)
    flat = [s for conn in audio for s in conn]
    lost = set(range(sent)) - set(flat)
    assert len(lost) <= stats.frames_at_risk, f"lost {len(lost)} chunks"
    assert queued_left == 0
    for conn in audio:
        assert conn == sorted(set(conn)), "audio reordered or repeated within a connection"
    if transparent:
        assert flat == list(range(sent)), "transparent: every chunk exactly once, in order"
    else:
        assert stats.frames_at_risk == 0
        assert texts == [f"tick {i}" for i in range(ticks)] + ["end"], "texts not exactly once"
        # repeats only as the re-sent head of a connection
        assert len(flat) - len(set(flat)) <= stats.replayed_frames
        # connections we rotated away from (goAway): every turn the server sent arrived
        client_turns = per_conn_turns  # counting starts on the first connection
        rotated = [
            i
            for i, rec in enumerate(server.connections[:-1])
            if rec.close_code == 1000 and i < len(client_turns)
        ]
        assert rotated, "no goAway rotation happened"
        for i in rotated:
            assert client_turns[i] == turn_completes_sent(server.connections[i]), i
    # The app saw each connection's setupComplete once and one Resumed per reconnect.
    n_conns = len(server.connections)
    assert sum(isinstance(e, ev.SetupComplete) for e in events) == n_conns
    assert sum(isinstance(e, ev.Resumed) for e in events) == n_conns - 1
    assert not any(isinstance(e, ev.Lagged) for e in events)
    assert isinstance(events[-1], ev.Closed)
    assert session.protocol.unacknowledged <= 256
