"""The record format: version 2 (client text ids) and reading version-1 records."""

from __future__ import annotations

import msgspec
import pytest

import gemini_live as gl
from gemini_live.errors import StoreFormatError
from gemini_live.protocol import ClientProtocol
from gemini_live.store import RECORD_VERSION, ConversationRecord, decode_record, encode_record
from gemini_live.store._record import MAX_TEXT_IDS

SETUP = gl.types.Setup(model="models/gemini-3.8-live")


def _record(text_ids: list[str] | None = None) -> ConversationRecord:
    return ConversationRecord(
        conversation="c1", snapshot=ClientProtocol(SETUP).snapshot(), text_ids=text_ids or []
    )


def test_text_ids_round_trip() -> None:
    assert RECORD_VERSION == 2
    record = _record(text_ids=["a", "b"])
    assert decode_record(encode_record(record)).text_ids == ["a", "b"]


def test_a_version_1_record_is_read_without_text_ids() -> None:
    old = msgspec.to_builtins(_record())
    del old["text_ids"]
    old["version"] = 1
    record = decode_record(msgspec.msgpack.encode(old))
    assert record.version == RECORD_VERSION
    assert record.text_ids == []
    assert record.conversation == "c1"


def test_a_version_0_record_is_refused() -> None:
    old = {**msgspec.to_builtins(_record()), "version": 0}
    with pytest.raises(StoreFormatError, match="older release"):
        decode_record(msgspec.msgpack.encode(old))


def test_too_many_text_ids_is_a_damaged_record() -> None:
    record = _record(text_ids=[str(i) for i in range(MAX_TEXT_IDS + 1)])
    with pytest.raises(StoreFormatError, match="damaged"):
        decode_record(encode_record(record))


def test_ended_text_ids_round_trip_and_out_of_range_is_damaged() -> None:
    record = _record(text_ids=["a", "b"])
    record.text_ids_ended = 1
    assert decode_record(encode_record(record)).text_ids_ended == 1
    for bad in (-1, 3):
        record.text_ids_ended = bad
        with pytest.raises(StoreFormatError, match="text_ids_ended"):
            decode_record(encode_record(record))


def test_a_record_without_ended_text_ids_reads_none_ended() -> None:
    old = msgspec.to_builtins(_record(text_ids=["a"]))
    del old["text_ids_ended"]
    assert decode_record(msgspec.msgpack.encode(old)).text_ids_ended == 0
