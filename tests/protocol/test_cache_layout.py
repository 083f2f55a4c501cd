"""Where the per-message paths' data sits (issue 24: cache misses per W2 message).

With hundreds of sessions in one process taking turns, each cache line of a session that
a message touches is usually a miss. The fused audio writer binds only objects shared by
every session for its constants (no per-session int, float or bytes whose header each
call writes to), and the slotted objects of the hot paths keep the slots a message reads
next to their header. No behaviour depends on either: these tests keep the layout from
drifting back (a formatter sorting the slots, a writer binding a fresh object).
"""

from __future__ import annotations

import math

import pytest

from gemini_live._observe import SessionRecord
from gemini_live.protocol._outbox import (
    _SHARED,
    _SHARED_MAX,
    Outbox,
    ResendWindow,
    _shared,
    _Window,
)
from gemini_live.protocol._state import Connection, SessionStats, State
from gemini_live.transport._picows import PicowsTransport


def _outbox(rate: int = 16000, limit: int = 123_457, seconds: float = 5.25) -> Outbox:
    # Values computed at run time, as a session's config gives them: equal, not identical.
    return Outbox(
        SessionStats(),
        input_rate=int(str(rate)),
        offline_buffer_bytes=int(str(limit)),
        max_frame_bytes=int(str(1 << 20)),
        resend=ResendWindow(float(str(seconds)), 4),
    )


def _writer_constants(box: Outbox) -> tuple[object, ...]:
    writer = box.audio_writer(Connection(state=State.OPEN), lambda frame: None)
    defaults = writer.__defaults__
    assert defaults is not None
    # head, bytes per second, offline limit, audio seconds.
    return defaults[3:7]


def test_the_writers_of_two_sessions_bind_the_same_constant_objects() -> None:
    a, b = _writer_constants(_outbox()), _writer_constants(_outbox())
    assert a == b
    for x, y in zip(a, b, strict=True):
        assert x is y, (x, y)
    # The head (bytes) is built per session and shared all the same.
    assert isinstance(a[0], bytes) and a[0].startswith(b'{"realtimeInput"')


def test_the_writers_keep_their_own_values() -> None:
    a = _writer_constants(_outbox(rate=16000, limit=123_457, seconds=5.25))
    b = _writer_constants(_outbox(rate=24000, limit=99_999, seconds=0.0))
    assert a[0] != b[0] and a[1] == 32000 and b[1] == 48000
    assert a[2] == 123_457 and b[2] == 99_999
    assert a[3] == 5.25 and b[3] == 0.0


def test_shared_keeps_equal_values_of_other_types_and_signs_apart() -> None:
    assert _shared(float(str(-0.0))) is not _shared(float(str(0.0)))
    assert math.copysign(1.0, _shared(float(str(-0.0)))) == -1.0
    assert _shared(float(str(2.0))) is not _shared(int(str(2)))
    assert type(_shared(int(str(2)))) is int
    nan = _shared(float("nan"))
    assert math.isnan(nan)
    big = int(str(10**30))
    assert _shared(big) is _shared(int(str(10**30)))


def test_shared_is_bounded() -> None:
    before = dict(_SHARED)
    try:
        for k in range(_SHARED_MAX + 10):
            _shared(bytes(str(k + 10**40), "ascii"))
        assert len(_SHARED) == _SHARED_MAX
        fresh = bytes(str(10**50), "ascii")
        assert _shared(fresh) is fresh  # past the bound: the value itself, not kept
        assert (bytes, fresh) not in _SHARED
    finally:
        _SHARED.clear()
        _SHARED.update(before)


@pytest.mark.parametrize(
    ("cls", "hot"),
    [
        (Outbox, {"input_at", "window_audio_s", "window_bytes"}),
        (_Window, {"rn", "rconn", "rwa", "pcm", "mixed", "plo", "lo"}),
        (SessionRecord, {"_answering", "usage", "watchdog", "_emit", "input_at"}),
        (PicowsTransport, {"_fragments", "_on_frame"}),
    ],
)
def test_the_slots_a_message_touches_come_first(cls: type, hot: set[str]) -> None:
    slots = cls.__dict__["__slots__"]
    assert set(slots[: len(hot)]) == hot, slots
