"""The relay with a conversation store: a page rejoins its conversation after a reload
(a new WebSocket with the id from ``ready``), and only the same identity can."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gemini_live.store import MemoryStore
from gemini_live.testing import FakeLiveServer
from gemini_live.web import ConnectionInfo, Relay

from .conftest import fake_config, served_relay
from .test_relay import Inbox, client, close_of


def _by_user(conn: ConnectionInfo) -> str | None:
    return conn.query.get("user")  # the test's stand-in for a signed session cookie


async def _say(box: Inbox, text: str) -> str:
    """Send a text turn; returns the transcript of the answer."""
    start = len(box.json)
    await box.ws.send(json.dumps({"type": "text", "text": text}))
    await box.until(lambda b: any(m["type"] == "turn_complete" for m in b.json[start:]))
    return "".join(m["text"] for m in box.json[start:] if m["type"] == "output_transcript")


def _states(box: Inbox) -> list[dict[str, Any]]:
    return [m for m in box.json if m["type"] == "state"]


async def test_a_reloaded_page_rejoins_its_conversation() -> None:
    store = MemoryStore()
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=_by_user, store=store)
        async with served_relay(relay) as url:
            async with client(url + "?user=ada") as ws:
                box = Inbox(ws)
                ready = await box.until_type("ready")
                cid = ready["conversation"]
                assert len(cid) >= 16
                assert "You said: my name is Ada" in await _say(box, "my name is Ada")
            # The reload: a new socket with the id the page kept.
            async with client(url + f"?user=ada&conversation={cid}") as ws:
                box = Inbox(ws)
                assert (await box.until_type("ready"))["conversation"] == cid
                answer = await _say(box, "what did I say")
                assert "my name is Ada" in answer
                resumed = [s for s in _states(box) if s.get("from_store")]
                assert resumed and resumed[0]["restored"] is True
            # Another user with the same id gets a conversation of their own.
            async with client(url + f"?user=eve&conversation={cid}") as ws:
                box = Inbox(ws)
                await box.until_type("ready")
                answer = await _say(box, "what did I say")
                assert "Ada" not in answer
                assert not any(s.get("from_store") for s in _states(box))


async def test_a_bad_conversation_id_is_refused() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=_by_user, store=MemoryStore())
        async with served_relay(relay) as url, client(url + "?user=a&conversation=x!") as ws:
            code, reason = await close_of(ws)
    assert (code, reason) == (1003, "bad conversation id")


def test_store_must_be_a_store() -> None:
    import gemini_live as gl

    config = gl.SessionConfig(setup=gl.types.Setup(model="models/gemini-3.8-live"))
    with pytest.raises(gl.ConfigError, match="ConversationStore"):
        Relay(lambda c: config, authorize=_by_user, store=object())  # type: ignore[arg-type]
