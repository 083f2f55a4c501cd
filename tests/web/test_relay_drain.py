"""Drain on deploy: a relay stops admitting (``/readyz`` 503, ``/healthz`` 200), saves each
conversation at its clean point and closes its browser with 4012 ``moved``; the browser
reconnects to another relay on the same store and the conversation goes on, with no turn
lost and none answered twice."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gemini_live.store import SqliteStore
from gemini_live.testing import FakeLiveServer
from gemini_live.web import CLOSE_MOVED, ConnectionInfo, Relay

from .conftest import fake_config, served_relay
from .test_relay import Inbox, client, close_of


def _by_user(conn: ConnectionInfo) -> str | None:
    return conn.query.get("user")


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def _answer(box: Inbox, start: int) -> str:
    await box.until(lambda b: any(m["type"] == "turn_complete" for m in b.json[start:]), 15)
    return "".join(m["text"] for m in box.json[start:] if m["type"] == "output_transcript")


@pytest.mark.timeout(60)
async def test_drain_moves_a_conversation_to_another_relay(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "conversations.db")
    async with FakeLiveServer(reply_chunks=20) as server:
        first = Relay(fake_config(server), authorize=_by_user, store=store)
        second = Relay(fake_config(server), authorize=_by_user, store=store)
        async with served_relay(first) as url1, served_relay(second) as url2:
            http1 = url1.replace("ws://", "http://").removesuffix("/live")
            assert await asyncio.to_thread(_status, http1 + "/readyz") == 200
            async with client(url1 + "?user=ada") as ws:
                box = Inbox(ws)
                cid = (await box.until_type("ready"))["conversation"]
                assert "my name is Ada" in await _answer_to(box, "my name is Ada")
                # A turn in flight when the drain starts: it is answered first.
                start = len(box.json)
                await ws.send(json.dumps({"type": "text", "text": "count to three"}))
                await first.wait_until(
                    lambda: any(c.user_turns == 2 for c in first.connections.values())
                )
                drain = asyncio.create_task(first.drain(within=10))
                await first.wait_until(lambda: first.draining)
                assert await asyncio.to_thread(_status, http1 + "/readyz") == 503
                assert await asyncio.to_thread(_status, http1 + "/healthz") == 200
                assert "count to three" in await _answer(box, start)
                code, reason = await close_of(ws)
                assert (code, reason) == (CLOSE_MOVED, "moved: reconnect")
                assert await asyncio.wait_for(drain, 10) == 1
            assert first.stats.moved == 1 and first.stats.moved_mid_turn == 0
            # A newcomer at the draining relay is sent on at once.
            async with client(url1 + "?user=bob") as ws:
                assert (await close_of(ws))[0] == CLOSE_MOVED
            # The page reconnects (through the load balancer: here, to the second relay).
            async with client(url2 + f"?user=ada&conversation={cid}") as ws:
                box = Inbox(ws)
                await box.until_type("ready")
                answer = await _answer_to(box, "what did I say")
                assert "count to three" in answer  # the fake recalls the last text
                resumed = [m for m in box.json if m["type"] == "state" and m.get("from_store")]
                assert resumed, box.json
    # Every user text reached the model exactly once, over both relays.
    texts = [t for s in server.sessions.values() for t in s.user_texts]
    assert texts.count("my name is Ada") == 1 and texts.count("count to three") == 1


async def _answer_to(box: Inbox, text: str) -> str:
    start = len(box.json)
    await box.ws.send(json.dumps({"type": "text", "text": text}))
    return await _answer(box, start)


async def test_drain_refuses_a_bad_timeout() -> None:
    from gemini_live import ConfigError

    relay = Relay(lambda c: None, authorize=_by_user)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match="drain timeout"):
        await relay.drain(0)
