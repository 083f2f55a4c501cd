"""The relay's event path (EventPump): nothing lost or reordered when the browser reads
slowly and sends have to wait, and the main stream left off (nothing piles up)."""

from __future__ import annotations

import asyncio
import base64
import json

import gemini_live as gl
from gemini_live._bridge import EventPump
from gemini_live.testing import FakeLiveServer
from gemini_live.types import Blob, Content, Part, ServerContent, ServerMessage, Transcription
from gemini_live.web import ConnectionInfo, Relay

from .conftest import ANYONE, fake_config, served_relay
from .test_relay import Inbox, client, open_session

CHUNKS = 600
CHUNK_BYTES = 16_000  # 9.6 MB in all: more than the sockets' buffers hold


def _chunk(i: int) -> bytes:
    return bytes([i % 251]) * CHUNK_BYTES


def _message(i: int) -> ServerMessage:
    blob = Blob(data=base64.b64encode(_chunk(i)).decode(), mime_type="audio/pcm;rate=24000")
    return ServerMessage(
        server_content=ServerContent(
            model_turn=Content(parts=[Part(inline_data=blob)]),
            output_transcription=Transcription(text=f"{i},"),
        )
    )


async def test_a_slow_browser_gets_every_event_in_order() -> None:
    sessions: list[gl.Session] = []

    def keep(session: gl.Session, _conn: ConnectionInfo) -> None:
        sessions.append(session)

    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=ANYONE, on_session=keep)
        async with served_relay(relay) as url, client(url, max_size=None) as ws:
            box = await open_session(ws)
            session = sessions[0]
            assert session.config.main_stream is False
            pump = next(cb.__self__ for cb in session._listeners if hasattr(cb, "__self__"))
            assert isinstance(pump, EventPump)
            box.json.clear()
            box.audio.clear()
            async with asyncio.timeout(30):
                for i in range(CHUNKS):
                    await server.send(_message(i))

                def all_in(b: Inbox) -> bool:
                    return sum(1 for m in b.json if m["type"] == "output_transcript") == CHUNKS

                await box.until(all_in, within=30)
            texts = [m["text"] for m in box.json if m["type"] == "output_transcript"]
            assert texts == [f"{i}," for i in range(CHUNKS)]
            assert bytes(box.audio) == b"".join(_chunk(i) for i in range(CHUNKS))
            assert pump.deferred > 0  # sends had to wait: the task path ran
            assert pump.dropped == 0 and session.stats.lagged_events == 0
            # Afterwards, the inline path again: a text turn round-trips.
            await ws.send(json.dumps({"type": "text", "text": "again"}))
            await box.until_type("turn_complete")
