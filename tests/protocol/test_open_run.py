"""The fused writer's open run (issue 24: counters derived when read, not per chunk).

While the writer's chunks follow one another, the outbox's submission number and the
connection's frame index and byte offset are not stored per chunk: they follow from the
run and are counted when anything reads or takes them. Whatever the order of chunks,
other sends, refusals, coverage, snapshots and reconnects, every number must be the one an
outbox that counts every chunk at once would have: the same records, the same snapshot,
the same counters.
"""

from __future__ import annotations

import copy

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from gemini_live.protocol._outbox import Kind, Outbox, OutboxState, ResendWindow
from gemini_live.protocol._state import Connection, SessionStats, State


def _box(audio_seconds: float = 0.2) -> Outbox:
    return Outbox(
        SessionStats(),
        input_rate=16000,
        offline_buffer_bytes=60_000,
        max_frame_bytes=1 << 20,
        resend=ResendWindow(audio_seconds, 4, 0.0),
    )


def _pcm(i: int, n: int = 640) -> bytes:
    return bytes((i * 7 + k) % 256 for k in range(n))


def _text(name: str) -> bytes:
    return b'{"realtimeInput":{"text":"%s"}}' % name.encode()


class _Side:
    """One outbox and its connection; ``eager`` counts every chunk at once (the run is
    settled after each one, so every chunk opens a new run: the counters as stored)."""

    def __init__(self, eager: bool) -> None:
        self.eager = eager
        self.box = _box()
        self.conn = Connection(state=State.OPEN)
        self.refuse = False
        self.written: list[bytes] = []

    def write(self, frame: bytes) -> bool:
        if self.refuse:
            return False
        self.written.append(frame)
        return True

    def chunk(self, pcm: bytes, now: float) -> bool:
        ok = self.box.write_audio(self.conn, self.write, pcm, now)
        if self.eager:
            self.box._settle()
        return ok

    def seen(self) -> tuple[bytes, int, int, int, int, int, int, int, int]:
        """Snapshot and counters as they read now, from a copy (this side's run stays
        as it is, open or not); the two lazy stats also as read before anything settles."""
        box, conn = copy.deepcopy((self.box, self.conn))
        sent, at_risk = box.stats.frames_sent, box.stats.frames_at_risk
        state = msgspec.msgpack.encode(box.snapshot())
        stats = box.stats
        return (
            state,
            box.seq,
            conn.next_index,
            conn.bytes_out,
            sent,
            stats.frames_sent,
            at_risk,
            stats.frames_at_risk,
            box.unacknowledged,
        )


def _apply(side: _Side, op: str, arg: int, now: float) -> None:
    box = side.box
    if op == "w":  # a few chunks of one length (sometimes another length)
        n = 640 if arg % 5 else 2 * (arg % 9 + 1)
        for k in range(arg % 6 + 1):
            side.chunk(_pcm(arg + k, n), now + 0.02 * k)
    elif op == "t":  # a text written at once (or queued behind something)
        frame = box.submit(_text(f"t{arg}"), Kind.TEXT, now, side.conn, True)
        if frame is not None:
            side.written.append(frame)
    elif op == "r":  # the transport refuses one chunk; the flush writes the queue
        side.refuse = True
        side.chunk(_pcm(arg), now)
        side.refuse = False
        side.written.extend(box.hand_out(side.conn, now))
        box.written(len(box.unconfirmed))
    elif op == "g":  # handed out and given back (not written)
        box.send_audio(_pcm(arg), now, None, None, False)
        box.hand_out(side.conn, now)
        box.unwritten(side.conn)
        side.written.extend(box.hand_out(side.conn, now))
        box.written(len(box.unconfirmed))
    elif op == "c":
        box.cover_by_handle(now - arg * 0.01)
    elif op == "x":
        box.cover_by_handle(now, side.conn, unsent=arg * 300)
    elif op == "a":
        box.acknowledge_index(arg * 3)
    elif op == "u":  # saved and restored (a new process)
        state = box.snapshot()
        side.box = _box()
        side.box.restore(msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=OutboxState))
    elif op == "n":  # the connection is replaced; the window is written again on the new one
        side.conn.state = State.CLOSED
        side.conn = Connection(state=State.OPEN)
        box.opened(0.01)
        box.requeue_window(set())
        side.written.extend(box.hand_out(side.conn, now))
        box.written(len(box.unconfirmed))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("wwwwwtrgcxaun"), st.integers(0, 40)), max_size=50))
def test_an_open_run_reads_as_counting_every_chunk_at_once(ops: list[tuple[str, int]]) -> None:
    lazy, eager = _Side(eager=False), _Side(eager=True)
    now = 0.0
    for op, arg in ops:
        now += 0.15
        for side in (lazy, eager):
            _apply(side, op, arg, now)
        assert lazy.seen() == eager.seen(), (op, arg)
        assert lazy.written == eager.written


def test_a_long_run_counts_every_chunk_through_drops_and_compaction() -> None:
    # 1,000 chunks through a window of 10: the oldest is dropped at every chunk, the run's
    # front is compacted every 128 drops, and nothing is counted until it is read.
    side = _Side(eager=False)
    box, conn = side.box, side.conn
    for i in range(1000):
        assert side.chunk(_pcm(i), i * 0.02)
    assert box._win.rn == 640  # still open: nothing read the numbers
    assert conn.next_index == 2 and box.seq == 1  # only the run's first chunk counted
    state = box.snapshot()
    assert box.seq == 1000
    assert conn.next_index == 1 + 1000
    assert conn.bytes_out == sum(map(len, side.written))
    assert box.stats.frames_sent == 1000
    assert box.stats.frames_at_risk == 1000 - 10
    assert [r.seq for r in state.window] == list(range(991, 1001))
    assert [r.index for r in state.window] == list(range(991, 1001))  # the setup is 0
    assert [r.frame for r in state.window] == side.written[-10:]
    ends = [sum(map(len, side.written[: k + 1])) for k in range(990, 1000)]
    assert [r.end for r in state.window] == ends


def test_the_stats_object_counts_an_open_runs_chunks_without_closing_it() -> None:
    # frames_sent is public and a reader may hold the stats object: it reads every
    # chunk written, while the run stays open (reading settles nothing).
    side = _Side(eager=False)
    box = side.box
    stats = box.stats
    assert type(stats) is SessionStats
    for i in range(7):
        side.chunk(_pcm(i), i * 0.02)
        assert stats.frames_sent == i + 1
    assert box._win.rn == 640 and box.seq == 1  # still open, nothing settled
    assert stats == copy.deepcopy(stats) and repr(stats).count("frames_sent=7") == 1
    assert msgspec.to_builtins(stats)["frames_sent"] == 7
    frozen, deep = copy.copy(stats), copy.deepcopy(stats)
    box._settle()
    assert stats.frames_sent == 7 and box.seq == 7
    assert frozen.frames_sent == 7 and deep.frames_sent == 7  # copies keep what they read
    stats.frames_sent += 2  # a store keeps the sum it was given, run or not
    side.chunk(_pcm(8), 0.2)
    side.chunk(_pcm(9), 0.22)
    assert stats.frames_sent == 11


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("wwwwwwcau"), st.integers(0, 200)), max_size=40))
def test_every_chunk_is_in_the_window_covered_or_at_risk(ops: list[tuple[str, int]]) -> None:
    # The writer's drops are counted when read (_Window.dropped): whatever else moves the
    # window (coverage, acknowledgement, compaction, a restore), every chunk written is
    # still held, was covered, or is counted at risk.
    side = _Side(eager=False)
    written = covered = 0
    now = 0.0
    for op, arg in ops:
        box = side.box
        if op == "w":
            for _ in range(arg):
                now += 0.02
                assert side.chunk(_pcm(written), now)
                written += 1
        else:
            before = len(box._win)
            if op == "c":
                box.cover_by_handle(now - arg * 0.002)
            elif op == "a":
                box.acknowledge_index(box._win.seqs()[0] + arg % 5 if len(box._win) else 0)
            else:  # saved and restored: the stats as read, a new window
                state = box.snapshot()
                stats = msgspec.convert(msgspec.to_builtins(box.stats), SessionStats)
                side.box = Outbox(
                    stats,
                    input_rate=16000,
                    offline_buffer_bytes=60_000,
                    max_frame_bytes=1 << 20,
                    resend=ResendWindow(0.2, 4, 0.0),
                )
                side.box.restore(state)
            covered += before - len(side.box._win)
        stats = side.box.stats
        assert stats.frames_at_risk == written - covered - len(side.box._win), (op, arg)
        assert stats.frames_sent == written


def test_a_restored_outbox_counts_on_from_the_saved_stats() -> None:
    side = _Side(eager=False)
    for i in range(5):
        side.chunk(_pcm(i), i * 0.02)
    saved = msgspec.convert(msgspec.to_builtins(side.box.stats), SessionStats)
    assert type(saved) is SessionStats and saved.frames_sent == 5
    again = Outbox(
        saved,
        input_rate=16000,
        offline_buffer_bytes=60_000,
        max_frame_bytes=1 << 20,
        resend=ResendWindow(0.2, 4, 0.0),
    )
    assert again.stats is saved and saved.frames_sent == 5
    conn = Connection(state=State.OPEN)
    for i in range(3):
        assert again.write_audio(conn, lambda f: True, _pcm(i), 1 + i * 0.02)
    assert saved.frames_sent == 8


def test_a_text_after_a_run_takes_the_next_number_index_and_offset() -> None:
    side = _Side(eager=False)
    box, conn = side.box, side.conn
    for i in range(5):
        side.chunk(_pcm(i), i * 0.02)
    frame = box.submit(_text("hi"), Kind.TEXT, 0.2, conn, True)
    assert frame is not None
    out = box.last_direct
    assert out is not None
    # (frame, kind, seq, turn end, seconds, tool ids, written at, index, end offset)
    assert (out[2], out[7], out[8]) == (6, 6, sum(map(len, side.written)) + len(frame))
    side.chunk(_pcm(9), 0.3)  # a new run after it
    box._settle()
    assert (box.seq, conn.next_index) == (7, 8)


def test_a_chunk_on_a_new_connection_is_numbered_on_it() -> None:
    side = _Side(eager=False)
    box = side.box
    for i in range(3):
        side.chunk(_pcm(i), i * 0.02)
    old = side.conn
    old.state = State.CLOSED
    side.conn = Connection(state=State.OPEN)
    box.opened(0.01)
    side.chunk(_pcm(7), 0.1)
    box._settle()
    assert old.next_index == 1 + 3 and old.bytes_out == sum(map(len, side.written[:3]))
    assert side.conn.next_index == 2 and side.conn.bytes_out == len(side.written[3])
    assert box.seq == 4


def test_a_refused_chunk_after_a_run_is_queued_with_the_next_number() -> None:
    side = _Side(eager=False)
    box = side.box
    for i in range(4):
        side.chunk(_pcm(i), i * 0.02)
    side.refuse = True
    assert side.chunk(_pcm(4), 0.1) is False
    assert [o[2] for o in box.pending] == [5]
    assert box.seq == 5 and side.conn.next_index == 5  # the run counted, the chunk not sent


def test_a_write_that_reenters_the_outbox_keeps_the_numbers_in_order() -> None:
    # A transport whose write sends something itself (a custom one): the text takes the
    # next number inside the write, the chunk the one after, and the run is not resumed.
    side = _Side(eager=False)
    box, conn = side.box, side.conn
    side.chunk(_pcm(0), 0.0)
    texts: list[bytes] = []

    def write(frame: bytes) -> bool:
        got = box.submit(_text("inner"), Kind.TEXT, 0.01, conn, True)
        if got is not None:
            texts.append(got)
        side.written.append(frame)
        return True

    assert box.write_audio(conn, write, _pcm(1), 0.02)
    state = box.snapshot()
    assert [r.seq for r in state.window] == [1, 2, 3]
    assert box.seq == 3 and conn.next_index == 4
