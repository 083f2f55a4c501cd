"""Encryption at rest: ``cipher=`` on every store, ``AesGcmCipher`` and its failures."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

import gemini_live as gl
from gemini_live.errors import StoreSealError
from gemini_live.history import HistoryEntry
from gemini_live.protocol import ClientProtocol
from gemini_live.store import (
    AesGcmCipher,
    Cipher,
    ConversationRecord,
    ConversationStore,
    MemoryStore,
    encode_record,
)

from .conftest import STORES

Make = Callable[..., ConversationStore]
SETUP = gl.types.Setup(model="models/gemini-3.8-live")
SECRET_TEXT = "my card number is 4111 1111 1111 1111"
K1 = bytes(range(32))
K2 = bytes(range(32, 64))


def _record(cid: str, fence: int) -> ConversationRecord:
    p = ClientProtocol(SETUP)
    p.send_text(SECRET_TEXT, 0.0)
    return ConversationRecord(
        conversation=cid,
        snapshot=p.snapshot(),
        history=[HistoryEntry("user", "text", SECRET_TEXT)],
        epoch=fence,
        text_ids=["t-1"],
    )


async def _save(store: ConversationStore, cid: str) -> ConversationRecord:
    lease = await store.acquire(cid, "owner")
    record = _record(cid, lease.fence)
    await store.save(record, fence=lease.fence)
    await store.release(lease)
    return record


async def _raw(store: ConversationStore, cid: str) -> bytes:
    """The bytes the store holds for ``cid`` (what someone reading the disk sees)."""
    cipher, store.cipher = store.cipher, None
    try:

        class Peek(Exception):
            pass

        seen: list[bytes] = []
        original = store._unpack

        def peek(data: bytes, conversation: str, where: str) -> ConversationRecord:
            seen.append(data)
            raise Peek

        store._unpack = peek  # type: ignore[method-assign]
        with pytest.raises(Peek):
            await store.load(cid)
        store._unpack = original  # type: ignore[method-assign]
        return seen[0]
    finally:
        store.cipher = cipher


@pytest.mark.parametrize("make_store", STORES, indirect=True)
class TestEveryStore:
    async def test_sealed_at_rest_and_opened_on_load(self, make_store: Make) -> None:
        store = make_store(cipher=AesGcmCipher({"k1": K1}, current="k1"))
        record = await _save(store, "c1")
        raw = await _raw(store, "c1")
        assert raw.startswith(b"GLS1\x02k1")
        assert SECRET_TEXT.encode() not in raw
        assert b"t-1" not in raw
        assert await store.load("c1") == record
        # Two seals of one record differ (a random nonce each time).
        again = await _save(store, "c1")
        assert await _raw(store, "c1") != raw
        assert await store.load("c1") == again

    async def test_old_keys_open_after_a_rotation(self, make_store: Make) -> None:
        # One store object whose cipher changes: a restart with a new configuration.
        store = make_store(cipher=AesGcmCipher({"k1": K1}, current="k1"))
        record = await _save(store, "c1")
        store.cipher = AesGcmCipher({"k1": K1, "k2": K2}, current="k2")
        assert await store.load("c1") == record
        await _save(store, "c2")
        assert (await _raw(store, "c2")).startswith(b"GLS1\x02k2")
        # A store that dropped the old key says which key id it lacks (never a key).
        store.cipher = AesGcmCipher({"k2": K2}, current="k2")
        with pytest.raises(StoreSealError, match="key id 'k1'") as caught:
            await store.load("c1")
        assert K1.hex() not in str(caught.value) and repr(K1) not in str(caught.value)

    async def test_a_wrong_key_is_a_typed_error(self, make_store: Make) -> None:
        store = make_store(cipher=AesGcmCipher({"k1": K1}, current="k1"))
        await _save(store, "c1")
        store.cipher = AesGcmCipher({"k1": K2}, current="k1")
        with pytest.raises(StoreSealError, match="does not open") as caught:
            await store.load("c1")
        assert K1.hex() not in str(caught.value) and K2.hex() not in str(caught.value)

    async def test_sealed_and_plain_records_are_not_mixed_up(self, make_store: Make) -> None:
        store = make_store(cipher=AesGcmCipher({"k1": K1}, current="k1"))
        await _save(store, "sealed")
        store.cipher = None
        with pytest.raises(StoreSealError, match="no cipher"):
            await store.load("sealed")
        await _save(store, "plain")
        store.cipher = AesGcmCipher({"k1": K1}, current="k1")
        with pytest.raises(StoreSealError, match="not sealed"):
            await store.load("plain")


def _tampered(store: MemoryStore, cid: str, change: Callable[[bytes], bytes]) -> None:
    data, expires = store._records[cid]
    store._records[cid] = (change(data), expires)


async def test_a_tampered_record_is_a_typed_error() -> None:
    store = MemoryStore(cipher=AesGcmCipher({"k1": K1}, current="k1"))
    await _save(store, "c1")
    _tampered(store, "c1", lambda d: d[:-1] + bytes([d[-1] ^ 1]))
    with pytest.raises(StoreSealError, match="does not open"):
        await store.load("c1")
    await _save(store, "c1")
    _tampered(store, "c1", lambda d: d[:20])
    with pytest.raises(StoreSealError, match="damaged"):
        await store.load("c1")


async def test_a_record_moved_to_another_id_does_not_open() -> None:
    store = MemoryStore(cipher=AesGcmCipher({"k1": K1}, current="k1"))
    await _save(store, "alice")
    store._records["mallory"] = store._records["alice"]
    with pytest.raises(StoreSealError, match="another conversation id"):
        await store.load("mallory")


async def test_a_key_service_plugs_in_and_its_failures_are_typed() -> None:
    class Reversing:
        """A stand-in for a KMS: any object with seal/open."""

        fail = False

        def seal(self, data: bytes, *, associated: bytes) -> bytes:
            return b"X" + associated + b"|" + data[::-1]

        def open(self, data: bytes, *, associated: bytes) -> bytes:
            if self.fail:
                raise RuntimeError("the key service is down: token=abc")
            head = b"X" + associated + b"|"
            assert data.startswith(head)
            return data[len(head) :][::-1]

    cipher = Reversing()
    assert isinstance(cipher, Cipher)
    store = MemoryStore(cipher=cipher)
    record = await _save(store, "c1")
    assert await store.load("c1") == record
    cipher.fail = True
    with pytest.raises(StoreSealError, match="RuntimeError") as caught:
        await store.load("c1")
    assert "token=abc" not in str(caught.value)


def test_cipher_arguments_are_checked_and_keys_never_shown() -> None:
    cipher = AesGcmCipher({"k1": K1, "k2": K2}, current="k2")
    assert repr(cipher) == "AesGcmCipher(key_ids=['k1', 'k2'], current='k2')"
    assert cipher.current == "k2"
    with pytest.raises(gl.ConfigError, match="32 bytes"):
        AesGcmCipher({"k1": b"short"}, current="k1")
    with pytest.raises(gl.ConfigError, match="current"):
        AesGcmCipher({"k1": K1}, current="k9")
    with pytest.raises(gl.ConfigError, match="non-empty"):
        AesGcmCipher({}, current="k1")
    with pytest.raises(gl.ConfigError, match="key id"):
        AesGcmCipher({"bad id!": K1}, current="bad id!")
    with pytest.raises(gl.ConfigError, match="cipher"):
        MemoryStore(cipher=object())  # type: ignore[arg-type]


def test_a_sealed_record_never_looks_like_an_encoded_one() -> None:
    record = _record("c1", 1)
    assert not encode_record(record).startswith(b"GLS1")
    sealed = AesGcmCipher({"k": os.urandom(32)}, current="k").seal(b"x", associated=b"c")
    assert sealed.startswith(b"GLS1")


def test_open_store_passes_the_cipher_on(tmp_path: object) -> None:
    from gemini_live.store import open_store

    cipher = AesGcmCipher({"k": K1}, current="k")
    assert open_store("memory:", cipher=cipher).cipher is cipher
    assert open_store(f"sqlite:///{tmp_path}/x.db", cipher=cipher).cipher is cipher
    assert open_store("redis://127.0.0.1:1/0", cipher=cipher).cipher is cipher
