"""The microphone's play-out buffer, on a fake clock (gemini_live.webrtc._playout)."""

from __future__ import annotations

import pytest

from gemini_live.webrtc._playout import MAX_FILL, PlayoutBuffer, Slot

FRAME = 0.020
TRANSIT = 0.040
DELAY = 0.040
TS0 = 123_456


def sent(k: int) -> float:
    """When frame ``k`` arrives without jitter (its capture plus the link's transit)."""
    return 10.0 + k * FRAME + TRANSIT


class Rig:
    def __init__(self, first_seq: int = 1000, delay: float = DELAY) -> None:
        self.buf = PlayoutBuffer(delay)
        self.first_seq = first_seq

    def push(self, k: int, at: float | None = None) -> None:
        seq = (self.first_seq + k) & 0xFFFF
        ts = (TS0 + k * 960) & 0xFFFFFFFF
        self.buf.push(seq, ts, b"opus%d" % k, sent(k) if at is None else at)

    def pop(self, at: float) -> list[tuple[int, bool]]:
        """(frame index, from a packet) of what comes out at ``at``."""
        out = self.buf.pop(at)
        return [(s.pts // 960, s.payload is not None) for s in out]


def test_in_order_packets_go_out_as_they_arrive() -> None:
    rig = Rig()
    for k in range(20):
        rig.push(k)
        assert rig.pop(sent(k)) == [(k, True)]  # no wait at all
        assert len(rig.buf) == 0
    assert rig.buf.deadline() is None
    assert (rig.buf.played, rig.buf.gaps, rig.buf.late) == (20, 0, 0)


def test_slots_carry_the_payload_and_the_media_time() -> None:
    rig = Rig()
    rig.push(0)
    rig.push(1)
    assert rig.buf.pop(sent(1)) == [
        Slot(1000, 0, b"opus0"),
        Slot(1001, 960, b"opus1"),
    ]


def test_a_packet_reordered_within_the_window_is_put_back_in_order() -> None:
    rig = Rig()
    rig.push(0)
    assert rig.pop(sent(0)) == [(0, True)]
    rig.push(2)  # 1 is late on the wire, not lost
    assert rig.pop(sent(2)) == []
    assert rig.buf.deadline() == pytest.approx(sent(1) + DELAY)
    rig.push(1, at=sent(2) + 0.010)
    assert rig.pop(sent(2) + 0.010) == [(1, True), (2, True)]
    assert rig.buf.reordered == 1
    assert (rig.buf.gaps, rig.buf.late) == (0, 0)


def test_a_lost_packet_is_skipped_at_its_deadline() -> None:
    rig = Rig()
    rig.push(0)
    rig.pop(sent(0))
    rig.push(2)
    rig.push(3)
    due = sent(1) + DELAY
    assert rig.pop(due - 0.001) == []  # still waiting for 1
    assert rig.pop(due) == [(1, False), (2, True), (3, True)]  # a gap, then on
    assert rig.buf.gaps == 1
    rig.push(4)
    assert rig.pop(sent(4)) == [(4, True)]


def test_a_packet_after_its_deadline_is_dropped_and_counted() -> None:
    rig = Rig()
    rig.push(0)
    rig.push(2)
    assert rig.pop(sent(1) + DELAY) == [(0, True), (1, False), (2, True)]
    rig.push(1, at=sent(1) + DELAY + 0.005)  # too late: its 20 ms were filled
    assert rig.pop(sent(3)) == []
    assert rig.buf.late == 1
    rig.push(2, at=sent(3))  # one already played: late as well
    assert rig.buf.late == 2
    rig.push(3)
    rig.push(3)
    assert rig.buf.duplicates == 1
    assert rig.pop(sent(3)) == [(3, True)]


def test_no_backlog_after_a_burst_of_loss() -> None:
    rig = Rig()
    for k in range(5):
        rig.push(k)
        rig.pop(sent(k))
    # Frames 5..14 are lost (200 ms); 15 arrives on time.
    rig.push(15)
    out = rig.pop(sent(15))
    # Every gap whose deadline passed is filled at once; 14's is 20 ms away.
    assert out == [(k, False) for k in range(5, 14)]
    assert rig.buf.deadline() == pytest.approx(sent(14) + DELAY)
    assert rig.pop(sent(14) + DELAY) == [(14, False), (15, True)]
    # From the next packet on, each goes out the moment it arrives: nothing queued.
    for k in range(16, 40):
        rig.push(k)
        assert rig.pop(sent(k)) == [(k, True)]
        assert len(rig.buf) == 0
    assert rig.buf.gaps == 10 and rig.buf.late == 0


def test_the_deadline_follows_the_earliest_transit() -> None:
    rig = Rig()
    rig.push(0, at=sent(0) + 0.100)  # the first packet was held up on the way
    rig.pop(sent(0) + 0.100)
    rig.push(1)  # the others are on time
    rig.pop(sent(1))
    rig.push(3)
    # 2 is expected at sent(2), not 100 ms later: the held-up first one sets nothing.
    assert rig.buf.deadline() == pytest.approx(sent(2) + DELAY)


def test_zero_delay_skips_a_gap_when_it_was_due() -> None:
    rig = Rig(delay=0.0)
    rig.push(0)
    rig.pop(sent(0))
    rig.push(2)
    assert rig.pop(sent(2)) == [(1, False), (2, True)]


def test_sequence_numbers_and_timestamps_wrap() -> None:
    rig = Rig(first_seq=0xFFFE)
    for k in range(5):
        rig.push(k)
        assert rig.pop(sent(k)) == [(k, True)]
    assert rig.buf.late == 0


def test_a_jump_beyond_the_window_starts_over_without_filling() -> None:
    rig = Rig()
    rig.push(0)
    rig.pop(sent(0))
    rig.push(3)  # held, waiting for 1 and 2
    rig.push(MAX_FILL + 10, at=sent(3))
    assert rig.buf.discarded == 1
    assert rig.pop(sent(3)) == [(MAX_FILL + 10, True)]
    assert rig.buf.gaps == 0
    assert len(rig.buf) == 0


def test_what_is_held_is_bounded() -> None:
    rig = Rig()
    rig.push(0)
    rig.pop(sent(0))
    for k in range(2, 2 * MAX_FILL):
        rig.push(k, at=sent(1))
    assert len(rig.buf) <= MAX_FILL


def test_a_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="delay"):
        PlayoutBuffer(-0.001)


def _opus_packets(n: int) -> list[bytes]:
    """``n`` 20 ms Opus packets of a tone, as a browser would send them."""
    import fractions
    import math

    import av
    from aiortc import RTCRtpCodecParameters
    from aiortc.codecs import get_encoder

    encoder = get_encoder(
        RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
    )
    out: list[bytes] = []
    for k in range(n):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        pcm = b"".join(
            int(8000 * math.sin(2 * math.pi * 440 * (k * 960 + i) / 48000)).to_bytes(
                2, "little", signed=True
            )
            for i in range(960)
        )
        frame.planes[0].update(pcm)
        frame.sample_rate = 48000
        frame.pts = k * 960
        frame.time_base = fractions.Fraction(1, 48000)
        payloads, _ts = encoder.encode(frame)
        out.extend(payloads)
    return out


async def test_the_link_fills_a_gap_with_silence_on_the_sample_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the link makes of released slots: decoded sound, a gap as 20 ms of silence
    (flagged while it is handed over), an undecodable packet filled and counted."""
    import av
    from aiortc import RTCRtpCodecParameters

    import gemini_live as gl
    from gemini_live.web import Relay
    from gemini_live.webrtc import WebRTCRelay
    from gemini_live.webrtc._peer import _ReceiverFeed, _RtcLink

    relay = Relay(lambda conn: gl.build_config(api_key="k"), authorize=Relay.ALLOW_ANYONE)
    rtc = WebRTCRelay(relay)
    link = _RtcLink(rtc, "v=0")
    seen: list[tuple[int, float, bool]] = []

    def record(self: _RtcLink, pcm16k: bytes, capture_pts: float) -> None:
        seen.append((len(pcm16k), capture_pts, self.inbound_filled))

    monkeypatch.setattr(_RtcLink, "_on_inbound_audio", record)

    class Transceiver:
        def __init__(self) -> None:
            self._codecs = [
                RTCRtpCodecParameters(
                    mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111
                )
            ]

    class Packet:
        def __init__(self, seq: int, payload: bytes) -> None:
            self.payload_type = 111
            self.sequence_number = seq
            self.timestamp = seq * 960
            self.payload = payload

    feed = _ReceiverFeed(Transceiver(), 0.040, link._arrived.set)
    packets = _opus_packets(8)
    for seq in (0, 1, 2, 3):
        assert feed.add(Packet(seq, packets[seq])) == (False, None)
    feed.add(Packet(5, packets[5]))  # 4 is lost
    feed.add(Packet(6, b"\xff"))  # not Opus
    link._resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    assert feed.playout is not None
    slots = feed.playout.pop(1e9)  # every deadline passed
    assert [s.payload is None for s in slots] == [False] * 4 + [True, False, False]
    for slot in slots:
        link._play(feed, slot)
    assert seen[-3][2] is True and seen[-2][2] is False and seen[-1][2] is True
    assert [round(pts * 50) for _, pts, _ in seen[-3:]] == [4, 5, 6]  # 20 ms steps
    assert all(n == 640 for n, _, _ in seen[2:])  # 20 ms at 16 kHz each, filled or not
    assert rtc.stats.audio_undecodable_packets == 1
    assert not link.inbound_filled
