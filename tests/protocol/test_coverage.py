"""What a plain resumption handle covers when the I/O layer says what has not left this
host (``ClientProtocol.unsent_bytes``): never a frame still in the transport's buffers,
and the guard counts from the moment a frame was known to have left (issue 20)."""

from __future__ import annotations

import pytest

from gemini_live import events as ev
from gemini_live.config import ResendWindow
from gemini_live.protocol import SNAPSHOT_VERSION, ClientProtocol

from .test_client import (
    CHUNK,
    MODEL_TEXT,
    TURN_COMPLETE,
    connect,
    drop,
    flush,
    handle_update,
    make,
)


class Probe:
    """What the transport reports: bytes written and not yet gone."""

    def __init__(self) -> None:
        self.unsent: int | None = 0
        self.calls = 0

    def __call__(self) -> int | None:
        self.calls += 1
        return self.unsent


def probed(guard: float = 0.1) -> tuple[ClientProtocol, Probe]:
    p = make(resend=ResendWindow(handle_guard=guard))
    probe = Probe()
    p.unsent_bytes = probe
    connect(p)
    return p, probe


def audio_frames(p: ClientProtocol, n: int, start: float = 0.0) -> list[bytes]:
    frames = []
    for i in range(n):
        out = p.send_audio(CHUNK, start + i * 0.02)
        assert out is not None
        frames.append(out)
    return frames


def test_a_frame_still_in_the_buffers_is_never_covered() -> None:
    p, probe = probed()
    frames = audio_frames(p, 10)
    probe.unsent = sum(len(f) for f in frames)  # nothing left: a stalled uplink
    p.receive(handle_update("h1"), 1.0)
    p.receive(handle_update("h2"), 5.0)  # long after the writes, still nothing left
    assert p.unacknowledged == 10
    assert p.stats.frames_at_risk == 0
    assert probe.calls == 2  # once per handle, never per frame


def test_the_guard_counts_from_when_a_frame_was_known_to_have_left() -> None:
    p, probe = probed(guard=0.1)
    frames = audio_frames(p, 10)
    size = len(frames[0])
    probe.unsent = 4 * size  # the last 4 chunks are still here
    # Written long before, but first known gone now: this handle covers none of them.
    p.receive(handle_update("h1"), 1.0)
    assert p.unacknowledged == 10
    probe.unsent = 0
    p.receive(handle_update("h2"), 1.05)  # h1's probe point is younger than the guard
    assert p.unacknowledged == 10
    p.receive(handle_update("h3"), 1.12)  # what had left by h1 (6 chunks) is covered
    assert p.unacknowledged == 4
    p.receive(handle_update("h4"), 1.2)  # what had left by h2: all
    assert p.unacknowledged == 0


def test_a_transport_that_cannot_tell_covers_by_the_clock_and_counts_at_risk() -> None:
    p, probe = probed(guard=0.1)
    audio_frames(p, 10)
    probe.unsent = None
    p.receive(handle_update("h1"), 0.21)  # 6 chunks written up to 0.11 s
    assert p.unacknowledged == 4
    assert p.stats.frames_at_risk == 6


def test_a_probe_that_raises_counts_as_cannot_tell() -> None:
    p = make(resend=ResendWindow(handle_guard=0.1))

    def broken() -> int | None:
        raise RuntimeError("boom")

    p.unsent_bytes = broken
    connect(p)
    audio_frames(p, 10)
    p.receive(handle_update("h1"), 0.21)
    assert p.unacknowledged == 4
    assert p.stats.frames_at_risk == 6


def test_without_a_probe_a_frame_leaves_when_written() -> None:
    p = make(resend=ResendWindow(handle_guard=0.1))
    connect(p)
    audio_frames(p, 10)
    p.receive(handle_update("h1"), 0.21)
    assert p.unacknowledged == 4
    assert p.stats.frames_at_risk == 0


def test_a_late_answer_lengthens_the_guard() -> None:
    p, _ = probed(guard=0.1)
    assert p.send_text("one", 0.0) is not None
    audio_frames(p, 5, start=0.1)  # 0.10 .. 0.18
    p.receive(MODEL_TEXT, 1.0)  # the answer to "one" took 1 s: the service is slow
    assert p.coverage_guard == pytest.approx(1.0)
    p.receive(handle_update("h1"), 1.0)  # covers "one" (answered), not the audio
    assert p.unacknowledged == 5
    p.receive(handle_update("h2"), 1.5)  # h1's probe point is younger than 1 s
    assert p.unacknowledged == 5
    p.receive(handle_update("h3"), 2.0)
    assert p.unacknowledged == 0


def test_frames_given_back_unwritten_free_their_bytes() -> None:
    p, probe = probed(guard=0.1)
    p.direct_writes = False
    assert p.send_audio(CHUNK, 0.0) is None
    assert len(p.data_to_send(0.0)) == 1
    p.unwritten()  # the write failed: the frame is queued again
    assert p._conn is not None and p._conn.bytes_out == 0
    (again,) = p.data_to_send(0.1)
    p.written(1)
    probe.unsent = 0
    p.receive(handle_update("h1"), 0.2)
    p.receive(handle_update("h2"), 0.4)
    assert p.unacknowledged == 0
    assert p._conn is not None and p._conn.bytes_out == len(again)


def test_offsets_count_per_connection_and_the_window_is_resent() -> None:
    p, probe = probed(guard=0.1)
    frames = audio_frames(p, 3)
    probe.unsent = sum(len(f) for f in frames)
    p.receive(handle_update("h1"), 1.0)
    drop(p)
    connect(p, 2.0)
    assert p._conn is not None and p._conn.bytes_out == 0
    assert flush(p, 2.0) == ["<audio>"] * 3
    assert p._conn.bytes_out == sum(len(f) for f in frames)
    probe.unsent = 0
    p.receive(handle_update("h2"), 2.1)
    p.receive(handle_update("h3"), 2.3)
    assert p.unacknowledged == 0


def test_probe_points_survive_a_snapshot() -> None:
    p, probe = probed(guard=0.1)
    audio_frames(p, 4)
    probe.unsent = 0
    p.receive(handle_update("h1"), 1.0)
    snap = p.snapshot()
    assert snap.version == SNAPSHOT_VERSION == 3
    assert snap.outbox.probes == [(1.0, snap.conn.bytes_out if snap.conn else -1)]
    q = ClientProtocol.restore(snap)
    assert q.snapshot() == snap
    q.unsent_bytes = Probe()
    q.receive(handle_update("h2"), 1.2)
    assert q.unacknowledged == 0
    events = q.receive(handle_update("h3"), 1.3)
    assert any(isinstance(e, ev.SessionResumptionUpdate) for e in events)


def test_an_answer_on_a_lost_connection_covers_nothing_re_sent() -> None:
    # The model answered "tick" on the first connection, which dropped before a handle
    # covered it: the next connection resumes from an older handle, so the answer is
    # forgotten and the re-sent turn is not covered until it is answered again.
    p, _ = probed(guard=0.1)
    audio_frames(p, 3)
    assert p.send_text("tick", 0.1) is not None
    p.receive(MODEL_TEXT, 0.2)
    drop(p)
    connect(p, 1.0)
    assert flush(p, 1.0) == ["<audio>"] * 3 + ["tick"]
    p.receive(handle_update("h-at-resume"), 1.0)  # the service's state as resumed
    assert p.unacknowledged == 4
    p.receive(MODEL_TEXT, 1.05)  # answered again: the turn is in the service's state
    p.receive(handle_update("h2"), 1.06)
    assert p.unacknowledged == 0


def test_a_late_answer_to_one_turn_does_not_cover_the_next() -> None:
    # The service lags: its answer to "tick 1" (and the handle after it) arrive after the
    # client wrote more audio and "tick 2". The handle holds "tick 1", not what followed.
    p, _ = probed(guard=0.1)
    assert p.send_text("tick 1", 0.0) is not None
    audio_frames(p, 3, start=0.01)
    assert p.send_text("tick 2", 0.1) is not None
    p.receive(MODEL_TEXT, 0.15)  # the answer to "tick 1"
    p.receive(TURN_COMPLETE, 0.15)
    p.receive(handle_update("h1"), 0.15)
    assert p.unacknowledged == 4  # three chunks and "tick 2"
    p.receive(MODEL_TEXT, 0.2)  # the answer to "tick 2"
    p.receive(handle_update("h2"), 0.2)
    assert p.unacknowledged == 0
