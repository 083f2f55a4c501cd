"""A page that rejoins after its worker died names the acknowledged texts whose turn end
it never got (``await_turns``); the relay answers each from the stored record: the turn
end when the record has the turn over, ``turn_status`` otherwise. Nothing is sent upstream
for them: a text is never answered twice."""

from __future__ import annotations

import json
from typing import Any

from gemini_live._asgi import Receive, Scope, Send
from gemini_live.errors import StoreError
from gemini_live.store import ConversationRecord, MemoryStore
from gemini_live.testing import FakeLiveServer
from gemini_live.web import ConnectionInfo, Relay, running

from .conftest import fake_config, served_relay
from .test_relay import Inbox, client, close_of


def _by_user(conn: ConnectionInfo) -> str | None:
    return conn.query.get("user")


class DeadWorkerStore(MemoryStore):
    """A shared store whose writer can be declared dead: from then on its saves never
    arrive (a killed process writes nothing), until a new worker takes over."""

    def __init__(self) -> None:
        super().__init__()
        self.dead = False
        self.refused = 0

    async def save(self, record: ConversationRecord, *, fence: int) -> None:
        if self.dead:
            self.refused += 1
            raise StoreError("the worker was killed")
        await super().save(record, fence=fence)


class KillAtTurnEnd:
    """A worker (``app``: a relay, or an app serving one) that is killed -9 as it writes
    the first ``turn_complete``: the save covering the turn completed (the relay holds the
    turn end for it), the turn end never reaches the page and nothing the worker does
    afterwards is stored."""

    def __init__(self, app: Any, store: DeadWorkerStore) -> None:
        self.app = app
        self.store = store
        self.killed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Every write goes through ``send`` (no write-at-once extension): the kill is seen.
        scope = {**scope, "extensions": {}}

        async def cut(message: Any) -> None:
            if self.killed:
                raise OSError("the worker is gone")
            if message.get("type") == "websocket.send" and not self.killed:
                text = message.get("text")
                if text is not None and json.loads(text)["type"] == "turn_complete":
                    self.killed = True
                    self.store.dead = True
                    raise OSError("the worker is gone")
            await send(message)

        await self.app(scope, receive, cut)


async def _sent_and_acked(box: Inbox, text: str, tid: str) -> None:
    await box.ws.send(json.dumps({"type": "text", "text": text, "id": tid}))
    await box.until(lambda b: {"type": "text_ack", "id": tid} in b.json)


async def test_a_page_that_rejoins_gets_the_turn_end_its_dead_worker_never_wrote() -> None:
    store = DeadWorkerStore()
    async with FakeLiveServer() as server:
        killed = Relay(fake_config(server), authorize=_by_user, store=store)
        worker = KillAtTurnEnd(killed, store)
        async with running(worker) as base:
            url = base.replace("http://", "ws://") + "/live"
            async with client(url + "?user=ada") as ws:
                box = Inbox(ws)
                cid = (await box.until_type("ready"))["conversation"]
                await _sent_and_acked(box, "remember the number 7", "n7")
                # The answer is heard; its turn end dies with the worker.
                await box.until(lambda b: any(m["type"] == "output_transcript" for m in b.json))
                await close_of(ws)
            assert worker.killed and "turn_complete" not in box.types()
            await killed.wait_until(lambda: len(killed.finished) == 1)
        assert store.refused >= 1  # the dead worker's close did not save
        store.dead = False
        # Another worker, the same store: the page rejoins and names the text it waits for.
        relay = Relay(fake_config(server), authorize=_by_user, store=store)
        async with served_relay(relay) as url, client(url + f"?user=ada&conversation={cid}") as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            await ws.send(json.dumps({"type": "await_turns", "ids": ["n7"]}))
            end = await box.until_type("turn_complete")
            assert end == {"type": "turn_complete", "id": "n7", "replayed": True}
            # The conversation goes on; the old text was not answered again.
            await _sent_and_acked(box, "and now?", "q2")
            await box.until(lambda b: b.types().count("turn_complete") == 2)
    texts = [t for s in server.sessions.values() for t in s.user_texts]
    assert texts.count("remember the number 7") == 1
    assert relay.stats.turn_ends_replayed == 1


async def test_an_ended_turn_is_replayed_and_an_unknown_id_gets_a_typed_status() -> None:
    store = MemoryStore()
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=_by_user, store=store)
        async with served_relay(relay) as url:
            async with client(url + "?user=ada") as ws:
                box = Inbox(ws)
                cid = (await box.until_type("ready"))["conversation"]
                await _sent_and_acked(box, "hello", "h1")
                await box.until_type("turn_complete")
            async with client(url + f"?user=ada&conversation={cid}") as ws:
                box = Inbox(ws)
                await box.until_type("ready")
                ids = ["h1", "never-sent"]
                await ws.send(json.dumps({"type": "await_turns", "ids": ids}))
                await box.until_type("turn_status")
                answers = [m for m in box.json if m.get("id") in ids]
                assert answers == [
                    {"type": "turn_complete", "id": "h1", "replayed": True},
                    {"type": "turn_status", "id": "never-sent", "state": "unknown"},
                ]
    texts = [t for s in server.sessions.values() for t in s.user_texts]
    assert texts == ["hello"]


async def test_an_accepted_text_whose_turn_is_not_over_is_open() -> None:
    store = MemoryStore()
    # A service that takes texts in and does not answer (yet).
    async with FakeLiveServer(auto_reply=False) as server:
        relay = Relay(fake_config(server), authorize=_by_user, store=store)
        async with served_relay(relay) as url:
            async with client(url + "?user=ada") as ws:
                box = Inbox(ws)
                cid = (await box.until_type("ready"))["conversation"]
                await _sent_and_acked(box, "two", "h2")
            async with client(url + f"?user=ada&conversation={cid}") as ws:
                box = Inbox(ws)
                await box.until_type("ready")
                await ws.send(json.dumps({"type": "await_turns", "ids": ["h2"]}))
                status = await box.until_type("turn_status")
                assert status == {"type": "turn_status", "id": "h2", "state": "open"}
                assert "turn_complete" not in box.types()
    assert relay.stats.turn_ends_replayed == 0


async def test_without_a_store_every_id_is_unknown_and_no_session_opens() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=_by_user)
        async with served_relay(relay) as url, client(url + "?user=ada") as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            await ws.send(json.dumps({"type": "await_turns", "ids": ["a1"]}))
            status = await box.until_type("turn_status")
            assert status == {"type": "turn_status", "id": "a1", "state": "unknown"}
    assert server.connections == []


async def test_await_turns_is_bounded_and_checked() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=_by_user, store=MemoryStore())
        async with served_relay(relay) as url:
            async with client(url + "?user=a") as ws:
                ids = [f"i{n}" for n in range(65)]
                await ws.send(json.dumps({"type": "await_turns", "ids": ids}))
                assert await close_of(ws) == (1003, "bad message: more than 64 ids")
            async with client(url + "?user=a") as ws:
                await ws.send(json.dumps({"type": "await_turns", "ids": ["bad id"]}))
                assert await close_of(ws) == (1003, "bad message: bad text id")
    assert server.connections == []
