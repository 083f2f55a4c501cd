"""The re-send window as compact data (issue 24, memory per active session).

Audio written from PCM is kept as its PCM plus a row of numbers, not as the written
frame: every frame the window gives back (re-sent, snapshotted) must be the frame that was
written, byte for byte, at any sample rate, after evictions, coverage and give-backs.
"""

from __future__ import annotations

import copy
import tracemalloc
from collections.abc import Callable

import msgspec
import pybase64
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemini_live.codec import AudioFrameEncoder
from gemini_live.errors import QueueFullError
from gemini_live.protocol._outbox import (
    Kind,
    Outbox,
    OutboxState,
    RecordState,
    ResendWindow,
    _Window,
)
from gemini_live.protocol._state import Connection, SessionStats, State


def make(*, audio_seconds: float = 5.0, limit: int = 1 << 20, guard: float = 0.0) -> Outbox:
    return Outbox(
        SessionStats(),
        input_rate=16000,
        offline_buffer_bytes=limit,
        max_frame_bytes=1 << 20,
        resend=ResendWindow(audio_seconds, 4, guard),
    )


def pcm(i: int, n: int = 640) -> bytes:
    return bytes((i * 7 + k) % 256 for k in range(n))


def text(name: str) -> bytes:
    return b'{"realtimeInput":{"text":"%s"}}' % name.encode()


def writer(box: Outbox, conn: Connection, wrote: list[bytes]) -> Callable[[object, float], bool]:
    def write(frame: bytes) -> bool:
        wrote.append(frame)
        return True

    return lambda chunk, now: box.write_audio(conn, write, chunk, now)


def started(audio_seconds: float = 5.0) -> tuple[Outbox, Connection, list[bytes]]:
    return make(audio_seconds=audio_seconds), Connection(state=State.OPEN), []


def resent(box: Outbox) -> list[bytes]:
    """What the next connection writes: the window requeued and handed out."""
    box.requeue_window(set())
    return box.hand_out(Connection(state=State.OPEN), 100.0)


def test_a_resent_chunk_is_the_written_frame_and_the_window_holds_only_its_pcm() -> None:
    box, conn, wrote = started()
    write = writer(box, conn, wrote)
    chunks = [pcm(i) for i in range(50)] + [pcm(99, 2), pcm(98, 642), pcm(97, 638)]
    for i, chunk in enumerate(chunks):
        assert write(chunk, float(i)) is True
    win = box._win
    # No record object per chunk: the PCM in one buffer, the numbers in one array.
    assert not win.others
    assert b"".join(win.pcm[win.plo :]) == b"".join(chunks)
    assert len(win) == len(chunks)
    assert box.window_bytes == sum(map(len, wrote))
    assert resent(box) == wrote


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 44100, 48000])
def test_send_audio_at_any_rate_is_resent_byte_for_byte(rate: int) -> None:
    box, conn = make(), Connection(state=State.OPEN)
    wrote: list[bytes] = []
    for i in range(20):
        frame = box.send_audio(pcm(i, 2 * (i + 1)), float(i), rate, conn, True)
        assert frame is not None
        assert frame == AudioFrameEncoder(rate).encode(pcm(i, 2 * (i + 1)))
        wrote.append(frame)
    assert not box._win.others
    assert [o[0] for o in box.window] == wrote
    assert box.window_audio_s == pytest.approx(sum(2 * (i + 1) for i in range(20)) / (2 * rate))
    assert resent(box) == wrote


def test_mixed_rates_and_other_records_keep_their_order() -> None:
    box, conn = make(), Connection(state=State.OPEN)
    wrote: list[bytes] = []
    for i in range(12):
        if i % 4 == 3:
            box.submit(text(f"t{i}"), Kind.TEXT, float(i), conn, True)
            wrote.append(text(f"t{i}"))
            continue
        frame = box.send_audio(pcm(i), float(i), (16000, 24000, None)[i % 3], conn, True)
        assert frame is not None
        wrote.append(frame)
    assert len(box._win.others) == 3  # the texts
    assert [o[0] for o in box.window] == wrote
    assert box.resend_texts() == ["t3", "t7", "t11"]
    assert resent(box) == wrote


def test_eviction_at_the_bound_keeps_the_newest_chunks_and_the_buffers_stay_bounded() -> None:
    box, conn, wrote = started(audio_seconds=0.1)
    write = writer(box, conn, wrote)
    for i in range(3000):
        assert write(pcm(i), float(i)) is True
    win = box._win
    assert len(win) == 5  # 5 × 20 ms
    assert box.stats.frames_at_risk == 3000 - 5
    assert box.window_bytes == sum(map(len, wrote[-5:]))
    assert box.window_audio_s == pytest.approx(0.1)
    # The dead front is dropped as it grows: a bounded buffer, not 3000 chunks.
    assert len(win.pcm) <= 128 + 5
    assert not any(win.pcm[: win.plo])  # the PCM of dropped chunks is released
    assert len(win.rwa) <= 128 + 5
    assert len(win.rows) <= 2 * (64 + 5) * 40
    assert resent(box) == wrote[-5:]


def test_evicting_the_oldest_chunk_behind_a_text_keeps_the_later_chunks_intact() -> None:
    box, conn, wrote = started(audio_seconds=0.06)
    box.submit(text("first"), Kind.TEXT, 0.0, conn, True)
    write = writer(box, conn, wrote)
    for i in range(6):
        assert write(pcm(i), float(i)) is True
    # The text stays first; the audio beyond 60 ms went oldest-first from behind it.
    assert [o[0] for o in box.window] == [text("first"), *wrote[-3:]]
    assert box.stats.frames_at_risk == 3
    assert b"".join(box._win.pcm[box._win.plo :]) == b"".join(pcm(i) for i in range(3, 6))


def test_coverage_and_index_acknowledgement_drop_compact_rows_oldest_first() -> None:
    box, conn, wrote = started()
    write = writer(box, conn, wrote)
    for i in range(10):
        assert write(pcm(i), float(i)) is True
    box.acknowledge_index(3)  # indices 1..3
    assert [o[0] for o in box.window] == wrote[3:]
    box.cover_by_handle(6.0)  # written at 0..6 (guard 0): covered
    assert [o[0] for o in box.window] == wrote[7:]
    box.cover_by_handle(20.0, conn, unsent=len(wrote[-1]))  # the last one still held
    assert [o[0] for o in box.window] == wrote[9:]
    assert box.window_bytes == len(wrote[9])
    box.cover_by_handle(21.0, conn, unsent=0)
    assert box.unacknowledged == 0 and box.window_bytes == 0
    assert box.window_audio_s == pytest.approx(0.0, abs=1e-12)
    assert len(box._win.pcm) == 0 and len(box._win.rows) == 0


def test_queued_audio_handed_out_is_kept_compactly_and_given_back_unchanged() -> None:
    box, conn = make(), Connection(state=State.OPEN)
    queued = [box.send_audio(pcm(i), 0.0, None, None, False) for i in range(4)]
    assert queued == [None] * 4
    frames = box.hand_out(conn, 1.0)
    assert not box._win.others and len(box._win) == 4
    box.written(1)
    box.unwritten(conn)  # three not written: back to the queue, out of the window
    assert [o[0] for o in box.pending] == frames[1:]
    assert [o[0] for o in box.window] == frames[:1]
    assert b"".join(box._win.pcm[box._win.plo :]) == pcm(0)
    assert box.window_bytes == len(frames[0])


def test_audio_not_in_the_template_form_stays_a_record_and_is_resent_as_written() -> None:
    # An audio message sent as a whole ClientMessage may differ from the template (key
    # order, padding): it is kept as written.
    odd = [
        b'{"realtimeInput":{"audio":{"data":"AAA=","mimeType":"audio/pcm;rate=16000"}}}',
        b'{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=16000","data":"AAE"}}}',
        b'{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=11025","data":"AAA="}}}',
    ]
    box, conn = make(), Connection(state=State.OPEN)
    for i, frame in enumerate(odd):
        box.submit(frame, Kind.AUDIO, float(i), conn, True, audio_s=0.001)
    assert len(box._win.others) == 3
    assert resent(box) == odd


def _old_form_state(frames: list[bytes]) -> OutboxState:
    """A snapshot as the tuple window wrote it: every record with its frame."""
    window = [
        RecordState(f, int(Kind.AUDIO), i + 1, False, 0.02, (), float(i), i + 1, 0)
        for i, f in enumerate(frames)
    ]
    return OutboxState(seq=len(frames), window=window, window_audio_s=0.02 * len(frames))


def test_an_old_snapshot_restores_compactly_and_snapshots_the_same() -> None:
    enc = AudioFrameEncoder(16000)
    frames = [enc.encode(pcm(i)) for i in range(5)]
    state = _old_form_state(frames)
    blob = msgspec.msgpack.encode(state)
    box = make()
    box.restore(msgspec.msgpack.decode(blob, type=OutboxState))
    assert not box._win.others and len(box._win) == 5
    again = box.snapshot()
    assert msgspec.msgpack.encode(again) == blob
    assert resent(box) == frames


def test_the_window_costs_little_more_than_its_pcm() -> None:
    box, conn, wrote = started()
    write = writer(box, conn, wrote)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100):
            write(pcm(i), 1000.0 + i / 3)  # a new chunk each time, as from a microphone
        wrote.clear()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Per chunk its 640 PCM bytes (a bytes object: 33 more), a list slot and a 40-byte
    # row, plus spare room; the written frame (~0.9 KiB) and a 9-field record with its
    # numbers (~0.3 KiB) are not kept.
    assert held <= 100 * (640 + 33 + 8 + 40) * 1.1, held


def test_a_mutable_chunk_is_copied_so_a_later_change_does_not_reach_the_resend() -> None:
    box, conn, wrote = started()
    write = writer(box, conn, wrote)
    buf = bytearray(pcm(1))
    view = bytearray(pcm(2))
    assert write(buf, 0.0) is True
    assert write(memoryview(view), 0.1) is True
    frame = box.send_audio(buf, 0.2, 24000, conn, True)
    assert frame is not None
    buf[:] = bytes(640)  # the caller reuses its buffers
    view[:] = bytes(640)
    assert resent(box) == [*wrote, frame]


def counted(box: Outbox, conn: Connection) -> tuple[int, int, int]:
    """The submission number and the connection's next index and offset as they read once
    the open run is counted, read from a copy (the run stays open, as it does between the
    writer's chunks)."""
    box2, conn2 = copy.deepcopy((box, conn))
    box2._settle()
    return box2.seq, conn2.next_index, conn2.bytes_out


def _check(
    box: Outbox, written: dict[int, bytes], where: dict[int, tuple[float, int, int]]
) -> None:
    records = list(box.window)  # packs a run into rows
    for o in records:
        assert o[0] == written[o[2]]
        assert (o[6], o[7], o[8]) == where[o[2]]
    assert box.window_bytes == sum(len(o[0]) for o in records)
    assert box.window_audio_s == pytest.approx(
        sum(o[4] for o in records if o[1] == Kind.AUDIO), abs=1e-9
    )
    win = box._win
    assert sum(map(len, win.pcm[win.plo :])) == sum(
        len(pybase64.b64decode(o[0][o[0].index(b'"data":"') + 8 : -4]))
        for o in records
        if o[2] not in win.others
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("wwwsqtcaxuv"), st.integers(0, 40)), min_size=1, max_size=60)
)
def test_every_frame_the_window_gives_back_is_the_one_written(
    ops: list[tuple[str, int]],
) -> None:
    box, conn = make(audio_seconds=0.2, limit=40_000), Connection(state=State.OPEN)
    written: dict[int, bytes] = {}
    #: Per submission number: when it was handed out, its index and end offset.
    where: dict[int, tuple[float, int, int]] = {}

    wrote: list[bytes] = []

    def write(frame: bytes) -> bool:
        wrote.append(frame)
        return True

    def direct() -> None:
        o = box.last_direct
        assert o is not None
        written[o[2]] = o[0]
        where[o[2]] = (o[6], o[7], o[8])

    now = 0.0
    for op, arg in ops:
        now += 0.01
        if op == "w":  # the fused writer, a few chunks in a row
            for k in range(arg % 7 + 1):
                now += 0.02
                size = 2 * ((arg + k) % 9 + 1) if arg % 2 else 640
                if box.write_audio(conn, write, pcm(arg + k, size), now):
                    seq, nix, out = counted(box, conn)
                    written[seq] = wrote.pop()
                    where[seq] = (now, nix - 1, out)
        elif op == "s":  # send_audio, sometimes at another rate
            rate = (None, 24000)[arg % 2]
            if box.send_audio(pcm(arg, 2 * (arg + 1)), now, rate, conn, True) is not None:
                direct()
        elif op == "q":  # queued, then handed out
            box.send_audio(pcm(arg), now, None, None, False)
            box.submit(text(f"q{arg}"), Kind.TEXT, now, None, False)
            seqs = [o[2] for o in box.pending]
            written.update(zip(seqs, box.hand_out(conn, now), strict=True))
            where.update((o[2], (o[6], o[7], o[8])) for o in box.unconfirmed)
            if arg % 3 == 0:
                box.unwritten(conn)
                written = {s: f for s, f in written.items() if s not in seqs}
            else:
                box.written(len(seqs))
        elif op == "t":
            if box.submit(text(f"t{arg}"), Kind.TEXT, now, conn, True) is not None:
                direct()
        elif op == "c":
            box.cover_by_handle(now - arg * 0.01)
        elif op == "a":
            box.acknowledge_index(arg * 3)
        elif op == "x":
            box.cover_by_handle(now, conn, unsent=arg * 300)
        elif op == "u":
            state = box.snapshot()
            box = make(audio_seconds=0.2, limit=40_000)
            box.restore(msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=OutboxState))
        elif op == "v":
            _check(box, written, where)
        assert box.window_bytes <= 40_000
    _check(box, written, where)


class _WalkingWindow(_Window):
    """The window as it dropped the oldest audio before the marker cursor: every row
    from the front walked, the row deleted in place."""

    __slots__ = ()

    def drop_audio(self) -> tuple[int, int, float] | None:
        for i, p in enumerate(self.positions()):
            if self.kind(p) == Kind.AUDIO:
                return self.remove(i)
        return None


class _WalkingOutbox(Outbox):
    """The outbox as it dropped audio from a mixed window before one pass did it: the
    oldest record if it is audio, then (still over the bound) the oldest audio."""

    __slots__ = ()

    def _evict_mixed(self, held: float, limit: float) -> float:
        self.window_audio_s = self._evict_first_audio(held)
        if self.window_audio_s > limit:
            self._evict(Kind.AUDIO)
        return self.window_audio_s


def _walking(audio_seconds: float, limit: int) -> Outbox:
    """An empty outbox that drops audio as before, with the walking window."""
    box = _WalkingOutbox(
        SessionStats(),
        input_rate=16000,
        offline_buffer_bytes=limit,
        max_frame_bytes=1 << 20,
        resend=ResendWindow(audio_seconds, 4, 0.0),
    )
    box._win = _WalkingWindow()
    box._win.register(box._audio.prefix, 16000)
    box.stats._owe_from(box._win.owing, box._win.dropped)  # the stats read this window
    return box


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("wwwwsmmetvcqu"), st.integers(0, 40)), max_size=80))
def test_dropping_audio_behind_markers_matches_walking_the_window(
    ops: list[tuple[str, int]],
) -> None:
    """Equal windows, numbers and stats, operation by operation, with and without the
    cursor past the markers (random writes, markers, texts, video, covers, queues and
    restores)."""

    def pair() -> list[Outbox]:
        return [
            make(audio_seconds=0.2, limit=30_000),
            _walking(0.2, 30_000),
        ]

    boxes = pair()
    conns = [Connection(state=State.OPEN), Connection(state=State.OPEN)]
    now = 0.0
    for op, arg in ops:
        now += 0.01
        full = []  # writes queued behind a given-back frame may fill the offline buffer
        for box, conn in zip(boxes, conns, strict=True):
            try:
                if op == "w":
                    for k in range(arg % 5 + 1):
                        size = 2 * ((arg + k) % 9 + 1) if arg % 3 == 0 else 640
                        box.write_audio(conn, lambda f: True, pcm(arg + k, size), now + k)
                elif op == "s":
                    box.send_audio(pcm(arg, 2 * (arg + 1)), now, (None, 24000)[arg % 2], conn, True)
                elif op in "me":
                    kind = Kind.ACTIVITY_START if op == "m" else Kind.ACTIVITY_END
                    box.submit(b'{"realtimeInput":{"activityStart":{}}}', kind, now, conn, True)
                elif op == "t":
                    box.submit(text(f"t{arg}"), Kind.TEXT, now, conn, True)
                elif op == "v":
                    box.submit(b"v" * (arg + 1), Kind.VIDEO, now, conn, True)
                elif op == "c":
                    box.cover_by_handle(now - arg * 0.01)
                elif op == "q":
                    box.send_audio(pcm(arg), now, None, None, False)
                    box.hand_out(conn, now)
                    if arg % 2:
                        box.unwritten(conn)
                    else:
                        box.written(1)
            except QueueFullError:
                full.append(True)
            else:
                full.append(False)
        assert full[0] == full[1]  # both refuse alike
        if op == "u":
            states = [b.snapshot() for b in boxes]
            boxes = pair()
            for box, state in zip(boxes, states, strict=True):
                box.restore(state)
        a, b = boxes
        assert a.snapshot() == b.snapshot()
        assert (a.window_bytes, a.window_video, a.stats.frames_at_risk) == (
            b.window_bytes,
            b.window_video,
            b.stats.frames_at_risk,
        )
        assert a._win.mixed == b._win.mixed
        assert a._win.pcm[a._win.plo :] == b._win.pcm[b._win.plo :]


def test_a_full_window_behind_many_markers_does_not_walk_them_at_every_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long call whose service sends no handles keeps every turn's markers; the chunk
    that drops the oldest audio behind them reads a few rows, not all of them."""
    box, conn, _ = started(audio_seconds=1.0)
    now = 0.0
    for turn in range(200):  # 200 turns of 4 chunks (the audio goes, the markers stay)
        kind = Kind.ACTIVITY_START if turn % 2 == 0 else Kind.ACTIVITY_END
        box.submit(b'{"realtimeInput":{"activityStart":{}}}', kind, now, conn, True)
        for _ in range(4):
            now += 0.04
            assert box.write_audio(conn, lambda f: True, pcm(turn), now)
    reads = 0
    kind_of, meta_of = _Window.kind, _Window.meta

    def counted_kind(self: _Window, p: int) -> int:
        nonlocal reads
        reads += 1
        return kind_of(self, p)

    def counted_meta(self: _Window, p: int) -> tuple[int, int, float]:
        nonlocal reads
        reads += 1
        return meta_of(self, p)

    monkeypatch.setattr(_Window, "kind", counted_kind)
    monkeypatch.setattr(_Window, "meta", counted_meta)
    for _ in range(100):
        now += 0.04
        assert box.write_audio(conn, lambda f: True, pcm(7), now)
    assert 0.9 < box.window_audio_s <= 1.0
    assert reads <= 100 * 4


def test_chunks_written_into_a_full_mixed_window_keep_their_numbers() -> None:
    """Each chunk the fused writer adds to a full window that holds a marker (written as
    a row at once, not as a run) is resent with its time, index and end offset, and its
    frame, byte for byte."""
    box, conn, _ = started(audio_seconds=0.2)
    box.submit(b'{"realtimeInput":{"activityStart":{}}}', Kind.ACTIVITY_START, 0.0, conn, True)
    frames: dict[int, bytes] = {}
    where: dict[int, tuple[float, int, int]] = {}

    def write(frame: bytes) -> bool:
        frames[box.seq] = frame
        return True

    for i in range(40):
        now = 0.02 * (i + 1)
        assert box.write_audio(conn, write, pcm(i, 640 if i % 3 else 320), now)
        where[box.seq] = (now, conn.next_index - 1, conn.bytes_out)
    records = list(box.window)
    assert records[0][1] == Kind.ACTIVITY_START
    for o in records[1:]:
        assert (o[6], o[7], o[8]) == where[o[2]]
        assert o[0] == frames[o[2]]
    assert [o[2] for o in records[1:]] == sorted(where)[-len(records) + 1 :]
