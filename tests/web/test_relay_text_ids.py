"""Exactly-once texts through the relay: the page gives each text an id, the relay
acknowledges it once the conversation record holding it is saved, and a re-sent id the
record has already is acknowledged without being sent again. A ``turn_complete`` reaches
the page only once a record covers the answered turn (a handle issued after it)."""

from __future__ import annotations

import asyncio
import json

from gemini_live.store import ConversationRecord, MemoryStore
from gemini_live.testing import FakeLiveServer
from gemini_live.web import ConnectionInfo, Relay

from .conftest import fake_config, served_relay
from .test_relay import Inbox, client, close_of


def _by_user(conn: ConnectionInfo) -> str | None:
    return conn.query.get("user")


def _only_record(store: MemoryStore) -> ConversationRecord:
    (key,) = store._records
    data, _ = store._records[key]
    return store._unpack(data, key, "test")


def _uncovered(record: ConversationRecord) -> bytes:
    """The frames a restore of ``record`` would send again."""
    out = record.snapshot.outbox
    return b"".join(r.frame for r in [*out.window, *out.pending])


async def _text(box: Inbox, text: str, tid: str) -> dict[str, object]:
    start = len(box.json)
    await box.ws.send(json.dumps({"type": "text", "text": text, "id": tid}))
    await box.until(lambda b: any(m["type"] == "text_ack" for m in b.json[start:]))
    return next(m for m in box.json[start:] if m["type"] == "text_ack")


async def test_a_resent_text_id_is_acknowledged_and_not_sent_again() -> None:
    store = MemoryStore()
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=_by_user, store=store)
        async with served_relay(relay) as url:
            async with client(url + "?user=ada") as ws:
                box = Inbox(ws)
                cid = (await box.until_type("ready"))["conversation"]
                ack = await _text(box, "my name is Ada", "t1-abc")
                assert ack == {"type": "text_ack", "id": "t1-abc"}
                # Acknowledged only once saved: the record holds the id.
                assert _only_record(store).text_ids == ["t1-abc"]
                await box.until_type("turn_complete")
            # The page reconnects (a move, a crash of the worker) and re-sends the text
            # it had not seen acknowledged: the conversation has it already.
            async with client(url + f"?user=ada&conversation={cid}") as ws:
                box = Inbox(ws)
                await box.until_type("ready")
                ack = await _text(box, "my name is Ada", "t1-abc")
                assert ack == {"type": "text_ack", "id": "t1-abc", "duplicate": True}
                # A new text goes on in the same conversation.
                await _text(box, "what did I say", "t2-def")
                await box.until_type("turn_complete")
    texts = [t for s in server.sessions.values() for t in s.user_texts]
    assert texts.count("my name is Ada") == 1
    assert relay.stats.duplicate_texts == 1
    assert _only_record(store).text_ids == ["t1-abc", "t2-def"]


async def test_without_a_store_a_text_is_acknowledged_once_sent() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=_by_user)
        async with served_relay(relay) as url, client(url + "?user=ada") as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            assert await _text(box, "hello", "x1") == {"type": "text_ack", "id": "x1"}
            # A text without an id (an older page) is sent and not acknowledged.
            await ws.send(json.dumps({"type": "text", "text": "again"}))
            await box.until(lambda b: b.types().count("turn_complete") == 2)
            assert box.types().count("text_ack") == 1


async def test_a_bad_text_id_is_refused() -> None:
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=_by_user, store=MemoryStore())
        async with served_relay(relay) as url, client(url + "?user=a") as ws:
            await ws.send(json.dumps({"type": "text", "text": "hi", "id": "no spaces!"}))
            code, reason = await close_of(ws)
    assert (code, reason) == (1003, "bad message: bad text id")


class SlowStore(MemoryStore):
    """A store whose saves take a while (a remote store under load)."""

    async def save(self, record: ConversationRecord, *, fence: int) -> None:
        await asyncio.sleep(0.2)  # the store's latency, not a synchronization
        await super().save(record, fence=fence)


async def test_turn_complete_waits_for_a_record_that_covers_the_turn() -> None:
    store = SlowStore()
    async with FakeLiveServer() as server:
        relay = Relay(fake_config(server), authorize=_by_user, store=store)
        async with served_relay(relay) as url, client(url + "?user=ada") as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            await _text(box, "remember the number 7", "n7")
            await box.until_type("turn_complete")
            # What a worker restoring the conversation right now would re-send: not the
            # answered text (the page saw its answer end).
            record = _only_record(store)
            assert record.handle_at is not None
            assert b"remember the number 7" not in _uncovered(record)
    assert relay.stats.turns_not_covered == 0


async def test_without_handles_turn_ends_are_held_once_then_forwarded_at_once() -> None:
    store = MemoryStore()
    # A service that never says the session is resumable: no handle follows a turn.
    async with FakeLiveServer(resumable=False) as server:
        relay = Relay(fake_config(server), authorize=_by_user, store=store)
        async with served_relay(relay) as url, client(url + "?user=ada") as ws:
            box = Inbox(ws)
            await box.until_type("ready")
            await _text(box, "one", "a1")
            await box.until(lambda b: b.types().count("turn_complete") == 1, within=10)
            await _text(box, "two", "a2")
            await box.until(lambda b: b.types().count("turn_complete") == 2, within=10)
    # The first waited out its bound; the connection then stopped holding turn ends.
    assert relay.stats.turns_not_covered == 2
