"""Inbound audio played out by deadline instead of by queue depth.

aiortc's receiver keeps audio RTP packets in a jitter buffer that releases a frame only
once several later ones arrived, and after a loss waits until it is full; both add delay
that never goes away. :class:`PlayoutBuffer` replaces that for one receiver:

* a packet that is next in sequence goes out at once (no wait when nothing is wrong);
* packets ahead of a missing one wait; the missing frame is given up once its
  *deadline* passes: its expected arrival (the earliest transit seen lately, plus its
  media time) plus ``delay`` (the reordering tolerance); it comes out as a gap, which
  the caller fills (silence) so the sample clock stays right;
* a packet for a frame already played or given up is late: dropped and counted;
* at most :data:`MAX_FILL` frames are held ahead; a bigger jump (an outage, a sender
  restart) starts over at the new packet without filling.

The class is pure (the caller passes the clock), so it is tested with a fake one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final

#: Frames held ahead of the next one at most, and the longest gap filled (500 ms of 20 ms).
MAX_FILL: Final = 25
#: Arrivals over which the earliest transit is taken (about 2 s of 20 ms packets).
_TRANSIT_WINDOW: Final = 100


@dataclass(frozen=True, slots=True)
class Slot:
    """One frame in play-out order: ``payload`` None is a gap to fill.

    ``pts`` counts samples of the RTP clock from the first packet received.
    """

    seq: int
    pts: int
    payload: bytes | None


class PlayoutBuffer:
    """A small reordering window that releases frames by deadline (see the module)."""

    def __init__(self, delay: float, clock_rate: int = 48000, frame_samples: int = 960) -> None:
        if not delay >= 0:
            raise ValueError("delay must be >= 0")
        self.delay = delay
        self.clock_rate = clock_rate
        self._step = frame_samples
        self._next: int | None = None  # the next sequence number to play out
        self._played_last: tuple[int, int] | None = None  # (seq, pts) of the last packet out
        self._next_pts = 0
        self._held: dict[int, tuple[int, bytes]] = {}  # seq -> (pts, payload)
        self._ts_origin = 0
        self._ts_last = 0
        self._pts_last = 0
        # (index, transit) pairs, transit increasing: the window's minimum is first.
        self._transits: deque[tuple[int, float]] = deque()
        self._arrivals = 0
        #: Frames played out from a packet.
        self.played = 0
        #: Gaps given up at their deadline (filled by the caller).
        self.gaps = 0
        #: Packets that came after their frame was played or given up (dropped).
        self.late = 0
        #: Packets received twice (dropped).
        self.duplicates = 0
        #: Packets that arrived out of order and were put back in order.
        self.reordered = 0
        #: Packets dropped when a jump beyond :data:`MAX_FILL` started over.
        self.discarded = 0

    @property
    def step(self) -> int:
        """Samples per packet (learned from consecutive packets)."""
        return self._step

    def __len__(self) -> int:
        return len(self._held)

    def _unwrap(self, timestamp: int) -> int:
        diff = (timestamp - self._ts_last) & 0xFFFFFFFF
        if diff >= 0x80000000:
            diff -= 0x100000000
        self._ts_last = timestamp
        self._pts_last += diff
        return self._pts_last

    def _note_transit(self, pts: int, now: float) -> None:
        transit = now - pts / self.clock_rate
        self._arrivals += 1
        window = self._transits
        while window and window[-1][1] >= transit:
            window.pop()
        window.append((self._arrivals, transit))
        while window[0][0] <= self._arrivals - _TRANSIT_WINDOW:
            window.popleft()

    def push(self, seq: int, timestamp: int, payload: bytes, now: float) -> None:
        """One RTP packet (sequence number, RTP timestamp, Opus payload) arrived at ``now``."""
        seq &= 0xFFFF
        if self._next is None:
            self._next = seq
            self._ts_last = timestamp & 0xFFFFFFFF
            self._pts_last = 0
            self._next_pts = 0
            pts = 0
        else:
            ahead = (seq - self._next) & 0xFFFF
            if ahead >= 0x8000:
                self.late += 1
                return
            if seq in self._held:
                self.duplicates += 1
                return
            if ahead >= MAX_FILL:
                self.discarded += len(self._held)
                self._held.clear()
                self._next = seq
                pts = self._unwrap(timestamp)
                self._next_pts = pts
                self._transits.clear()
            else:
                pts = self._unwrap(timestamp)
                if any((s - seq) & 0xFFFF < 0x8000 for s in self._held):
                    self.reordered += 1
        self._note_transit(pts, now)
        self._held[seq] = (pts, payload)

    def deadline(self) -> float | None:
        """When the next frame is given up, or None when nothing waits for it."""
        if not self._held or self._next in self._held or not self._transits:
            return None
        return self._transits[0][1] + self._next_pts / self.clock_rate + self.delay

    def pop(self, now: float) -> list[Slot]:
        """The frames due at ``now``, in order: every packet next in sequence, and each
        missing frame whose deadline passed (as a gap)."""
        out: list[Slot] = []
        while self._next is not None and self._held:
            seq = self._next
            held = self._held.pop(seq, None)
            if held is not None:
                pts, payload = held
                last = self._played_last
                if last is not None and (seq - last[0]) & 0xFFFF == 1:
                    step = pts - last[1]
                    if 0 < step <= self.clock_rate // 8:  # the sender's packet time
                        self._step = step
                self._played_last = (seq, pts)
                self.played += 1
                out.append(Slot(seq, pts, payload))
            else:
                due = self.deadline()
                if due is None or now < due:
                    break
                pts = self._next_pts
                self.gaps += 1
                out.append(Slot(seq, pts, None))
            self._next = (seq + 1) & 0xFFFF
            self._next_pts = pts + self._step
        return out

    def stats(self) -> dict[str, Any]:
        return {
            "played": self.played,
            "gaps": self.gaps,
            "late": self.late,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "discarded": self.discarded,
        }
