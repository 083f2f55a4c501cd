"""The store contract, run on every store: records, versions, leases, fencing, expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gemini_live as gl
from gemini_live.errors import ConversationBusy, StaleFenceError, StoreFormatError
from gemini_live.history import HistoryEntry
from gemini_live.protocol import ClientProtocol
from gemini_live.store import (
    RECORD_VERSION,
    ConversationRecord,
    ConversationStore,
    TaskRecord,
    decode_record,
    encode_record,
    open_store,
    setup_fingerprint,
)

from .conftest import STORES, FakeClock

MODEL = "models/gemini-3.8-live"
Make = Callable[..., ConversationStore]
pytestmark = pytest.mark.parametrize("make_store", STORES, indirect=True)


def _setup() -> gl.types.Setup:
    return gl.types.Setup(
        model=MODEL, generation_config=gl.types.GenerationConfig(response_modalities=["TEXT"])
    )


def _record(cid: str, fence: int, *texts: str) -> ConversationRecord:
    p = ClientProtocol(_setup())
    for i, text in enumerate(texts):
        p.send_text(text, float(i))
    return ConversationRecord(
        conversation=cid,
        snapshot=p.snapshot(),
        history=[HistoryEntry("user", "text", t) for t in texts],
        setup_fingerprint=setup_fingerprint(_setup()),
        owner="o",
        epoch=fence,
        saved_at=1.0,
    )


async def test_empty_store_has_no_record(make_store: Make) -> None:
    store = make_store()
    assert await store.load("nobody") is None


async def test_save_and_load_round_trip(make_store: Make) -> None:
    store = make_store()
    lease = await store.acquire("c1", "owner-a")
    record = _record("c1", lease.fence, "hello", "again")
    await store.save(record, fence=lease.fence)
    loaded = await store.load("c1")
    assert loaded == record
    restored = ClientProtocol.restore(loaded.snapshot)
    assert restored.snapshot() == record.snapshot
    assert restored.queued == 2


async def test_a_record_survives_a_new_store_object(make_store: Make) -> None:
    """The same backing (file, server) read by a new store object: a process restart."""
    first = make_store()
    lease = await first.acquire("c1", "owner-a")
    await first.save(_record("c1", lease.fence, "kept"), fence=lease.fence)
    await first.aclose()
    second = make_store()
    loaded = await second.load("c1")
    if isinstance(first, gl.store.MemoryStore):
        assert loaded is None  # memory belongs to one object
    else:
        assert loaded is not None and loaded.history[0].text == "kept"


async def test_save_without_a_lease_is_refused(make_store: Make) -> None:
    store = make_store()
    with pytest.raises(StaleFenceError, match="not the latest"):
        await store.save(_record("c1", 1), fence=1)
    assert await store.load("c1") is None


async def test_fences_grow_and_a_stale_fence_is_refused(make_store: Make) -> None:
    clock = FakeClock()
    store = make_store(clock=clock, lease_ttl=5.0)
    a = await store.acquire("c1", "owner-a")
    await store.save(_record("c1", a.fence, "from a"), fence=a.fence)
    await store.release(a)
    b = await store.acquire("c1", "owner-b")
    assert b.fence > a.fence
    with pytest.raises(StaleFenceError):
        await store.save(_record("c1", a.fence, "stale"), fence=a.fence)
    with pytest.raises(StaleFenceError):
        await store.renew(a)
    loaded = await store.load("c1")
    assert loaded is not None and loaded.history[0].text == "from a"
    await store.save(_record("c1", b.fence, "from b"), fence=b.fence)
    assert (await store.load("c1")).history[0].text == "from b"  # type: ignore[union-attr]


async def test_a_live_lease_keeps_others_out(make_store: Make) -> None:
    store = make_store(lease_ttl=30.0)
    a = await store.acquire("c1", "owner-a")
    with pytest.raises(ConversationBusy) as info:
        await store.acquire("c1", "owner-b")
    assert 0 < info.value.expires_in <= 30.0
    renewed = await store.renew(a)
    assert renewed.fence == a.fence
    other = await store.acquire("c2", "owner-b")  # other conversations are free
    assert other.conversation == "c2"


async def test_release_lets_the_next_owner_in_at_once(make_store: Make) -> None:
    store = make_store(lease_ttl=30.0)
    a = await store.acquire("c1", "owner-a")
    await store.release(a)
    b = await store.acquire("c1", "owner-b")
    assert b.fence > a.fence


async def test_racing_owners_exactly_one_wins(make_store: Make) -> None:
    first = make_store(lease_ttl=30.0)
    # Memory: one store shared by tasks; sqlite and Redis: one client per owner.
    shared = isinstance(first, gl.store.MemoryStore)
    stores = [first] + [first if shared else make_store(lease_ttl=30.0) for _ in range(7)]

    async def take(i: int) -> int | None:
        try:
            lease = await stores[i].acquire("race", f"owner-{i}")
        except ConversationBusy:
            return None
        return lease.fence

    async with asyncio.timeout(20):
        results = await asyncio.gather(*(take(i) for i in range(8)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1, results


async def test_an_expired_lease_is_taken_over(make_store: Make) -> None:
    clock = FakeClock()
    store = make_store(clock=clock, lease_ttl=0.3)
    a = await store.acquire("c1", "crashed")
    await store.save(_record("c1", a.fence, "before the crash"), fence=a.fence)
    if isinstance(store, gl.store.RedisStore):
        # The server's clock: wait (bounded) until the lease has run out.
        async with asyncio.timeout(5):
            while True:
                try:
                    b = await store.acquire("c1", "successor")
                    break
                except ConversationBusy as exc:
                    await asyncio.sleep(exc.expires_in)
    else:
        with pytest.raises(ConversationBusy):
            await store.acquire("c1", "successor")
        clock.now += 0.31
        b = await store.acquire("c1", "successor")
    assert b.fence > a.fence
    loaded = await store.load("c1")
    assert loaded is not None and loaded.history[0].text == "before the crash"
    with pytest.raises(StaleFenceError):
        await store.save(_record("c1", a.fence, "late"), fence=a.fence)


async def test_records_expire(make_store: Make) -> None:
    clock = FakeClock()
    store = make_store(clock=clock, lease_ttl=0.1, record_ttl=0.3)
    a = await store.acquire("c1", "owner-a")
    await store.save(_record("c1", a.fence, "short-lived"), fence=a.fence)
    assert await store.load("c1") is not None
    if isinstance(store, gl.store.RedisStore):
        async with asyncio.timeout(5):
            # The server's clock expires the key: poll it (bounded), nothing to await.
            while await store.load("c1") is not None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    else:
        clock.now += 0.31
        assert await store.load("c1") is None


async def test_delete_forgets_and_fences_the_owner_out(make_store: Make) -> None:
    store = make_store()
    a = await store.acquire("c1", "owner-a")
    await store.save(_record("c1", a.fence, "x"), fence=a.fence)
    await store.delete("c1")
    assert await store.load("c1") is None
    with pytest.raises(StaleFenceError):
        await store.save(_record("c1", a.fence, "x"), fence=a.fence)
    b = await store.acquire("c1", "owner-b")
    assert b.fence > a.fence  # tokens never repeat


async def test_bad_arguments_are_typed_errors(make_store: Make) -> None:
    store = make_store()
    with pytest.raises(gl.ConfigError, match="conversation id"):
        await store.load("has space")
    with pytest.raises(gl.ConfigError, match="conversation id"):
        await store.acquire("x" * 201, "o")
    with pytest.raises(gl.ConfigError, match="owner"):
        await store.acquire("c1", "")
    with pytest.raises(gl.ConfigError, match="ConversationRecord"):
        await store.save("nope", fence=1)  # type: ignore[arg-type]


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts=st.lists(st.text(min_size=1, max_size=40), max_size=6))
async def test_snapshot_save_load_restore_is_equal(make_store: Make, texts: list[str]) -> None:
    store = make_store()
    p = ClientProtocol(_setup())
    for i, text in enumerate(texts):
        p.send_text(text, float(i))
    lease = await store.acquire("prop", "owner")
    record = ConversationRecord(
        conversation="prop", snapshot=p.snapshot(), owner="owner", epoch=lease.fence
    )
    await store.save(record, fence=lease.fence)
    await store.release(lease)
    loaded = await store.load("prop")
    assert loaded is not None
    assert ClientProtocol.restore(loaded.snapshot).snapshot() == p.snapshot()
    await store.aclose()


def test_a_record_of_another_version_is_refused(make_store: Make) -> None:
    record = _record("c1", 1, "x")
    data = msgspec.msgpack.encode({**msgspec.to_builtins(record), "version": RECORD_VERSION + 1})
    with pytest.raises(StoreFormatError, match="newer release"):
        decode_record(data)
    assert decode_record(encode_record(record)) == record
    with pytest.raises(StoreFormatError, match="damaged"):
        decode_record(b"\x00garbage")


def test_open_store_urls(make_store: Make, tmp_path: object) -> None:
    assert isinstance(open_store("memory:"), gl.store.MemoryStore)
    assert isinstance(open_store("sqlite:///tmp/x.db"), gl.store.SqliteStore)
    r = open_store("redis://:s3cretpass@127.0.0.1:1/0")
    assert "s3cretpass" not in repr(r)
    with pytest.raises(gl.ConfigError):
        open_store("ftp://x")


def test_a_version_1_record_is_read_as_version_2_without_tasks(make_store: Make) -> None:
    record = _record("c1", 1, "x")
    v1 = msgspec.msgpack.decode(encode_record(record))
    del v1["tasks"]
    v1["version"] = 1
    loaded = decode_record(msgspec.msgpack.encode(v1))
    assert loaded.version == RECORD_VERSION == 2
    assert loaded.tasks == []
    assert loaded.snapshot == record.snapshot


def test_task_records_round_trip(make_store: Make) -> None:
    task = TaskRecord(task="T1", call_id="c9", name="book", args={"n": 2}, idempotent=True)
    record = msgspec.structs.replace(_record("c1", 1, "x"), tasks=[task])
    assert decode_record(encode_record(record)).tasks == [task]
