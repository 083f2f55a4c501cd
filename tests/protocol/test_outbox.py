"""Pure tests of the outbox (queue, handed-out frames, re-send window), without the facade.

Frames are opaque bytes here: the outbox never looks inside one except to find the texts
a fresh session's seed leaves out (``resend_texts``).
"""

from __future__ import annotations

import collections
import logging

import msgspec
import pytest

from gemini_live import errors
from gemini_live.protocol._outbox import Kind, Outbox, OutboxState, ResendWindow
from gemini_live.protocol._state import Connection, SessionStats, State

CHUNK = bytes(640)  # 20 ms at 16 kHz


def make(
    *, audio_seconds: float = 5.0, video_frames: int = 4, limit: int = 1 << 20, guard: float = 0.5
) -> Outbox:
    return Outbox(
        SessionStats(),
        input_rate=16000,
        offline_buffer_bytes=limit,
        max_frame_bytes=1 << 20,
        resend=ResendWindow(audio_seconds, video_frames, guard),
    )


def open_conn() -> Connection:
    return Connection(state=State.OPEN)


def text(name: str) -> bytes:
    return b'{"realtimeInput":{"text":"%s"}}' % name.encode()


def window_frames(box: Outbox) -> list[bytes]:
    return [o[0] for o in box.window]


def test_a_direct_frame_is_numbered_handed_out_and_kept_in_the_window() -> None:
    box, conn = make(), open_conn()
    assert box.submit(text("a"), Kind.TEXT, 1.0, conn, True) == text("a")
    assert conn.next_index == 2
    assert box.stats.frames_sent == 1
    assert box.unacknowledged == 1 and box.queued == 0
    assert box.uncovered_input  # a text ends a user turn


def test_nothing_goes_direct_past_a_queued_frame() -> None:
    box, conn = make(), open_conn()
    assert box.submit(text("a"), Kind.TEXT, 0.0, conn, False) is None
    assert box.submit(text("b"), Kind.TEXT, 0.0, conn, True) is None  # "a" waits before it
    assert box.hand_out(conn, 0.1) == [text("a"), text("b")]


def test_offline_queue_is_bounded_and_a_refused_frame_takes_no_number() -> None:
    box = make(limit=100)
    assert box.submit(b"x" * 60, Kind.TEXT, 0.0, None, False) is None
    with pytest.raises(errors.QueueFullError):
        box.submit(b"y" * 60, Kind.TEXT, 0.0, None, False)
    assert box.seq == 1 and box.queued == 1 and box.stats.frames_queued_offline == 1


def test_too_large_a_frame_is_refused_before_anything_changes() -> None:
    box = Outbox(
        SessionStats(),
        input_rate=16000,
        offline_buffer_bytes=1000,
        max_frame_bytes=10,
        resend=ResendWindow(),
    )
    with pytest.raises(errors.MessageTooLargeError):
        box.submit(b"z" * 11, Kind.TEXT, 0.0, open_conn(), True)
    assert box.seq == 0 and box.unacknowledged == 0


def test_the_audio_hot_path_and_the_general_path_keep_the_same_bound() -> None:
    fast, slow = make(audio_seconds=0.1), make(audio_seconds=0.1)
    cf, cs = open_conn(), open_conn()
    for i in range(8):  # 160 ms
        assert fast.send_audio(CHUNK, i * 0.02, None, cf, True) is not None
        frame = slow.send_audio(CHUNK, i * 0.02, None, cs, False)  # general path
        assert frame is None
        slow.hand_out(cs, i * 0.02)
        slow.written(1)
    assert fast.unacknowledged == slow.unacknowledged == 5
    assert fast.stats.frames_at_risk == slow.stats.frames_at_risk == 3
    assert fast.window_audio_s == pytest.approx(slow.window_audio_s) == pytest.approx(0.1)


def test_video_beyond_its_bound_is_dropped_oldest_first() -> None:
    box, conn = make(video_frames=2), open_conn()
    for i in range(3):
        box.submit(b"v%d" % i, Kind.VIDEO, 0.0, conn, True)
    assert window_frames(box) == [b"v1", b"v2"]
    assert box.stats.frames_at_risk == 1


def test_the_byte_bound_drops_any_kind_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    box, conn = make(limit=25), open_conn()
    with caplog.at_level(logging.WARNING, "gemini_live.protocol"):
        for name in ("aaaa", "bbbb"):
            box.submit(text(name), Kind.TEXT, 0.0, conn, True)
    assert [o[0] for o in box.window] == []  # each text alone is above 25 bytes
    assert box.stats.frames_at_risk == 2
    assert "dropped a TEXT frame" in caplog.text


def test_unwritten_frames_go_back_in_order_and_free_their_indices() -> None:
    box, conn = make(), open_conn()
    box.submit(text("a"), Kind.TEXT, 0.0, None, False)
    box.submit(text("b"), Kind.TEXT, 0.0, None, False)
    assert box.hand_out(conn, 0.1) == [text("a"), text("b")]
    box.written(1)
    box.unwritten(conn)
    assert conn.next_index == 2  # "b" (index 2) was given back
    assert next(iter(box.pending))[0] == text("b")
    assert window_frames(box) == [text("a")]
    assert box.stats.frames_sent == 1


def test_a_frame_acknowledged_while_its_write_was_pending_is_not_written_again() -> None:
    box, conn = make(guard=0.0), open_conn()
    box.submit(text("a"), Kind.TEXT, 0.0, None, False)
    box.hand_out(conn, 0.0)
    box.cover_by_handle(1.0)  # older than the guard: covered
    box.unwritten(conn)
    assert box.queued == 0 and box.unacknowledged == 0


def test_records_are_matched_by_number_not_by_identity() -> None:
    # A runtime (or a compiled build) may hand back an equal copy of a tuple: giving the
    # frames back must still find them in the window and requeue them, none lost.
    box, conn = make(), open_conn()
    box.submit(text("a"), Kind.TEXT, 0.0, None, False)
    box.submit(text("b"), Kind.TEXT, 0.0, None, False)
    box.hand_out(conn, 0.1)
    box.window = collections.deque(o[:1] + o[1:] for o in box.window)  # equal copies
    box.unconfirmed = collections.deque(o[:1] + o[1:] for o in box.unconfirmed)
    assert all(a is not b for a, b in zip(box.window, box.unconfirmed, strict=True))
    state = box.snapshot()
    assert state.unconfirmed_in_window == [0, 1]
    box.unwritten(conn)
    assert [o[0] for o in box.pending] == [text("a"), text("b")]
    assert box.unacknowledged == 0 and conn.next_index == 1


def test_direct_failed_puts_the_frame_at_the_head() -> None:
    box, conn = make(), open_conn()
    box.submit(text("a"), Kind.TEXT, 0.0, conn, True)
    box.direct_failed(conn)
    assert box.queued == 1 and box.unacknowledged == 0 and conn.next_index == 1
    box.direct_failed(conn)  # nothing handed out directly: no-op
    assert box.queued == 1


def test_a_handle_covers_what_the_model_answered_and_what_is_older_than_the_guard() -> None:
    box, conn = make(guard=0.5), open_conn()
    box.submit(text("one"), Kind.TEXT, 0.0, conn, True)
    box.model_started()  # the reply to "one"
    box.submit(text("two"), Kind.TEXT, 0.25, conn, True)
    box.cover_by_handle(0.3)
    assert window_frames(box) == [text("two")]
    box.cover_by_handle(0.9)
    assert box.unacknowledged == 0


def test_the_guard_follows_the_slowest_setup_round_trip_within_bounds() -> None:
    box = Outbox(
        SessionStats(),
        input_rate=16000,
        offline_buffer_bytes=1000,
        max_frame_bytes=1000,
        resend=ResendWindow(),
    )
    assert box.handle_guard == 0.2
    box.opened(0.3)
    assert box.handle_guard == pytest.approx(0.6)
    box.opened(0.1)
    assert box.handle_guard == pytest.approx(0.6)
    box.opened(5.0)
    assert box.handle_guard == 1.0


def test_transparent_acknowledgement_by_index() -> None:
    box, conn = make(), open_conn()
    for name in "abc":
        box.submit(text(name), Kind.TEXT, 0.0, conn, True)
    box.acknowledge_index(2)
    assert window_frames(box) == [text("c")]


def test_requeue_puts_the_window_first_and_drops_answers_to_forgotten_calls() -> None:
    box, conn = make(), open_conn()
    box.submit(text("a"), Kind.TEXT, 0.0, conn, True)
    box.submit(b"answer", Kind.TOOL_RESPONSE, 0.0, conn, True, tool_ids=("c1",))
    box.submit(text("queued"), Kind.TEXT, 0.0, None, False)
    box.requeue_window({"c1"})
    assert [o[0] for o in box.pending] == [text("a"), text("queued")]
    assert box.stats.stale_tool_responses_dropped == 1
    assert box.stats.replayed_frames == 1
    assert box.unacknowledged == 0 and box.window_bytes == 0


def test_the_seed_goes_first_and_is_never_kept_for_re_sending() -> None:
    box, conn = make(), open_conn()
    box.submit(text("queued"), Kind.TEXT, 0.0, None, False)
    box.set_seed([b"history"])
    assert box.release_seed()
    assert box.hand_out(conn, 0.0) == [b"history", text("queued")]
    assert window_frames(box) == [text("queued")]
    assert not box.release_seed()


def test_resend_texts_lists_window_and_queue_oldest_first() -> None:
    box, conn = make(), open_conn()
    box.submit(text("a"), Kind.TEXT, 0.0, conn, True)
    box.submit(text("b"), Kind.TEXT, 0.0, None, False)
    assert box.resend_texts() == ["a", "b"]


def test_discard_forgets_what_was_never_written() -> None:
    box, conn = make(), open_conn()
    box.submit(text("a"), Kind.TEXT, 0.0, None, False)
    box.submit(text("b"), Kind.TEXT, 0.0, None, False)
    box.hand_out(conn, 0.0)
    box.submit(text("c"), Kind.TEXT, 0.0, None, False)
    assert box.discard() == 3
    assert box.queued == 0 and box.pending_bytes == 0


def test_a_snapshot_is_plain_data_and_restores_the_sharing_unwritten_needs() -> None:
    box, conn = make(), open_conn()
    box.submit(text("a"), Kind.TEXT, 0.0, None, False)
    box.submit(text("b"), Kind.TEXT, 0.0, None, False)
    box.hand_out(conn, 0.1)
    box.send_audio(CHUNK, 0.2, None, conn, True)
    box.submit(text("later"), Kind.TEXT, 0.3, None, False)
    state = box.snapshot()
    data = msgspec.msgpack.encode(state)
    again = make()
    again.restore(msgspec.msgpack.decode(data, type=OutboxState))
    assert again.snapshot() == state
    assert msgspec.json.decode(msgspec.json.encode(state), type=OutboxState) == state
    # The handed-out frames and their window entries are one record again: giving them
    # back moves them out of the window, exactly as on the original.
    conn2 = Connection(state=State.OPEN, next_index=conn.next_index)
    box.unwritten(conn)
    again.unwritten(conn2)
    assert again.snapshot() == box.snapshot()
    assert conn2.next_index == conn.next_index
